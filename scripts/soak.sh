#!/usr/bin/env bash
# The reliability suite (protocol-tests/tests/reliability.rs) in its long
# form: each fault scenario keeps injecting faults for its share of MINUTES
# (default 40) against a fresh 3-broker Kafka 4.x cluster, then the checker
# judges everything produced. Bounded: the run is killed after MINUTES + 15.
# Then the exactly-once copier's rolling-restart shape in its long form
# (750 records per transaction, every third aborted, 100,000 records,
# KAFKAWIRE_COPIER_ROLLING_BOUNCES (default 9) rolling broker bounces,
# alternately SIGKILL and SIGTERM, 12 instance kills), bounded to 45 minutes.
# Then the coordinator-kill loop of transactions_failover at
# KAFKAWIRE_TXN_KILLS (default 100) kills, bounded to 60 minutes.
#
#   scripts/soak.sh [MINUTES]
#
# Prints the RELIABILITY summary lines at the end; the full log is kept in
# target/soak-<timestamp>.log. KAFKAWIRE_FAULT_SEED replays the proxy
# scenario's fault sequence; KAFKAWIRE_KILL_EVERY_SECS (default 30) sets the
# leader-kill period.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-40}
[[ $minutes =~ ^[0-9]+$ && $minutes -ge 1 ]] || { echo "usage: scripts/soak.sh [MINUTES]" >&2; exit 2; }
KL=compose/kafka-local
name=${KAFKAWIRE_SOAK_CLUSTER:-soak-3}
scenarios=6
# Four fifths of the time injecting faults, the rest for setup and checking.
per=$((minutes * 60 * 4 / 5 / scenarios))
log=target/soak-$(date +%Y%m%d-%H%M%S).log
mkdir -p target

cleanup() { "$KL" --name "$name" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

cargo build -p protocol-tests --tests --locked
"$KL" --kafka 4 --brokers 3 --name "$name" up
echo "soak: ${minutes} min, ${per} s of faults per scenario, cluster $name, log $log"
set +e
KAFKAWIRE_BOOTSTRAP=$("$KL" --name "$name" bootstrap) KAFKAWIRE_CLUSTER=$name KAFKAWIRE_KAFKA=4 \
  KAFKAWIRE_SOAK_SECS=$per KAFKAWIRE_FAULT_RATE=${KAFKAWIRE_FAULT_RATE:-1000} \
  timeout $((minutes * 60 + 900)) \
  cargo test -p protocol-tests --locked --test reliability -- --test-threads 1 --nocapture 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
KAFKAWIRE_BOOTSTRAP=$("$KL" --name "$name" bootstrap) KAFKAWIRE_CLUSTER=$name KAFKAWIRE_KAFKA=4 \
  KAFKAWIRE_COPIER_ROLLING_RECORDS=${KAFKAWIRE_COPIER_ROLLING_RECORDS:-100000} \
  KAFKAWIRE_COPIER_ROLLING_BOUNCES=${KAFKAWIRE_COPIER_ROLLING_BOUNCES:-9} \
  KAFKAWIRE_COPIER_KILLS=${KAFKAWIRE_COPIER_KILLS:-12} \
  timeout 2700 \
  cargo test -p protocol-tests --locked --test copier -- copier_rolling_bounces_aborting_every_third \
  --test-threads 1 --nocapture 2>&1 | tee -a "$log"
copier_rc=${PIPESTATUS[0]}
[[ $rc -ne 0 ]] || rc=$copier_rc
# The transaction coordinator's broker SIGKILLed during commit, 100 times
# (as scripts/test.sh does): every transaction wholly committed or wholly
# aborted.
KAFKAWIRE_BOOTSTRAP=$("$KL" --name "$name" bootstrap) KAFKAWIRE_CLUSTER=$name KAFKAWIRE_KAFKA=4 \
  KAFKAWIRE_TXN_KILLS=${KAFKAWIRE_TXN_KILLS:-100} \
  timeout 3600 \
  cargo test -p protocol-tests --locked --test transactions_failover -- --test-threads 1 --nocapture 2>&1 | tee -a "$log"
kills_rc=${PIPESTATUS[0]}
[[ $rc -ne 0 ]] || rc=$kills_rc
set -e
echo
echo "==== soak summary ($log) ===="
grep '^RELIABILITY' "$log" || echo "(no summary lines)"
grep -E '^(copied|\[.*\] )|coordinator kills:' "$log" || true
exit "$rc"
