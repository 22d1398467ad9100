#!/usr/bin/env bash
# Fails if the library's default build pulls in C: any `-sys` crate or the
# `cc` build helper among its normal and build dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p kafkawire -e normal,build --prefix none --format '{p}')
offenders=$(printf '%s\n' "$tree" | awk '{print $1}' | sort -u | grep -E -- '-sys$|^cc$' || true)
if [ -n "$offenders" ]; then
  echo "check-no-c: the default build of kafkawire depends on C: $offenders" >&2
  exit 1
fi
echo "check-no-c: ok ($(printf '%s\n' "$tree" | awk '{print $1}' | sort -u | wc -l) crates, no -sys crate, no cc)"
