#!/usr/bin/env bash
# Regenerates the golden record-batch vectors in this directory from real
# Kafka: the Java client and librdkafka produce, kafkawire fetches the raw
# bytes (see protocol-tests/src/bin/capture_vectors.rs).
#
# Uses the cluster in KAFKAWIRE_BOOTSTRAP if set (with KAFKAWIRE_KAFKA for
# its major version); otherwise starts a one-broker Kafka 4 cluster named
# vectors-1 and stops it on exit. Then run the decode test:
#   cargo test --test record vectors
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$here/../..
KL=$root/compose/kafka-local
if [ -z "${KAFKAWIRE_BOOTSTRAP:-}" ]; then
  name=vectors-1
  trap '"$KL" --name "$name" down >/dev/null 2>&1 || true' EXIT
  "$KL" --kafka 4 --brokers 1 --name "$name" up
  export KAFKAWIRE_BOOTSTRAP=$("$KL" --name "$name" bootstrap) KAFKAWIRE_KAFKA=4
fi
rm -f "$here"/*.bin "$here"/manifest.json
cd "$root"
cargo run --locked --quiet -p protocol-tests --bin capture_vectors -- "$here"
