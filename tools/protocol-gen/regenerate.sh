#!/usr/bin/env bash
# Regenerates src/protocol/messages/ from the JSON message schemas inside
# Apache Kafka's kafka-clients jar. Needs mvn, unzip, cargo and rustfmt.
#
#   tools/protocol-gen/regenerate.sh            # Kafka 4.4.0
#   KAFKA_VERSION=4.4.0 tools/protocol-gen/regenerate.sh
#
# The version is also named in the generated files' header line
# (tools/protocol-gen/src/emit.rs, HEADER_LINE); change both together.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/src/protocol/messages"
M2="${MAVEN_REPO:-$HOME/.m2/repository}"
JAR="$M2/org/apache/kafka/kafka-clients/$KAFKA_VERSION/kafka-clients-$KAFKA_VERSION.jar"

if [ ! -f "$JAR" ]; then
    mvn -q dependency:get -Dartifact="org.apache.kafka:kafka-clients:$KAFKA_VERSION" -Dtransitive=false
fi

SCHEMAS="$(mktemp -d)"
trap 'rm -rf "$SCHEMAS"' EXIT
unzip -q "$JAR" 'common/message/*.json' -d "$SCHEMAS"

cargo run --quiet --release --manifest-path "$ROOT/tools/protocol-gen/Cargo.toml" -- \
    "$SCHEMAS/common/message" "$OUT"
rustfmt --edition 2021 "$OUT"/*.rs
echo "regenerated $OUT from kafka-clients $KAFKA_VERSION"
