#!/usr/bin/env bash
# A profile-guided release build of the gateway: build it instrumented, run the load harness's
# scenarios against it for a few seconds each (proxied routes, token issuance of every kind),
# merge the profile, and build again with it. Prints the path of the optimised binary.
#
#   scripts/pgo-build.sh            -> target/pgo/release/tokengate
#   GATEWAY=$(scripts/pgo-build.sh | tail -1) benches/load/run.sh 8 5
#
# Needs what benches/load/run.sh needs (it installs wrk, nginx and curl if missing) and rustup's
# llvm-tools component (added here) for llvm-profdata matching rustc's LLVM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
rustup component add llvm-tools >/dev/null
host=$(rustc -vV | awk '/^host:/ {print $2}')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[ -x "$profdata" ] || { echo "pgo-build.sh: no llvm-profdata at $profdata" >&2; exit 1; }

raw=$(pwd)/target/pgo-profiles
merged=$(pwd)/target/pgo-profiles.profdata

echo "pgo-build.sh: instrumented build (target/pgo-gen)" >&2
RUSTFLAGS="-Cprofile-generate=$raw" \
  cargo build --release --locked --bin tokengate --target-dir target/pgo-gen >&2
# Build scripts ran instrumented too: only the gateway's own runs may make the profile.
rm -rf "$raw"

echo "pgo-build.sh: training on the load scenarios, 2 s each (log: target/pgo-training.log)" >&2
if ! GATEWAY=target/pgo-gen/release/tokengate benches/load/run.sh 2 1 >target/pgo-training.log 2>&1; then
  tail -5 target/pgo-training.log >&2
  echo "pgo-build.sh: the training run failed" >&2
  exit 1
fi
ls "$raw"/*.profraw >/dev/null 2>&1 || { echo "pgo-build.sh: the training wrote no profile" >&2; exit 1; }
"$profdata" merge -o "$merged" "$raw"

echo "pgo-build.sh: optimised build (target/pgo)" >&2
RUSTFLAGS="-Cprofile-use=$merged" \
  cargo build --release --locked --bin tokengate --target-dir target/pgo >&2
echo target/pgo/release/tokengate
