#!/usr/bin/env bash
# Builds the fuzz targets with a nightly toolchain and the instrumentation cargo-fuzz would add
# (for machines without cargo-fuzz), then runs each for SECONDS (default 30).
#   fuzz/run.sh [SECONDS] [TARGET...]      # targets: form basic bearer config
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(form basic bearer config)
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
cargo +nightly build --release --target "$triple" --bins
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  "target/$triple/release/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -max_len=4096
done
