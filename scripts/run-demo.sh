#!/usr/bin/env bash
# Quick start: build tokengate (release) and run it on the bundled conf/gateway.toml, with a
# demo upstream on 127.0.0.1:9000 that echoes the identity headers. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/tokengate"
"$bin" demo-upstream --listen 127.0.0.1:9000 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT
"$bin" --conf conf/gateway.toml
