#!/usr/bin/env bash
# Runs every fuzz target for a bounded time.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# New inputs go to fuzz/work/<target> (ignored by git); the committed seeds
# in fuzz/corpus/<target> are read, never written. Crashes land in
# fuzz/artifacts/<target>. Needs a nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly --profile minimal`,
#  `cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/corpus/$t"
  echo "=== $t: ${secs}s"
  if ! cargo +nightly fuzz run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1; then
    echo "!!! $t found a failure (see fuzz/artifacts/$t)"
    status=1
  fi
done
exit $status
