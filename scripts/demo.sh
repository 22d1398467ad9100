#!/usr/bin/env bash
# Runs the README demo against a local one-broker Kafka 4.x cluster, starting
# the cluster first if it is not running (it is left running; stop it with
# `compose/kafka-local down`).
set -euo pipefail
cd "$(dirname "$0")/.."
compose/kafka-local --kafka 4 --brokers 1 up
bootstrap=$(compose/kafka-local --kafka 4 --brokers 1 bootstrap)
KAFKAWIRE_BOOTSTRAP="$bootstrap" cargo run --quiet --example demo
