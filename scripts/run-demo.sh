#!/usr/bin/env bash
# Quick start: build tokengate (release) and run it on the bundled conf/gateway.toml, with a
# demo upstream on 127.0.0.1:9000 that echoes the identity headers. Metrics and health are on
# 127.0.0.1:9091 (/metrics, /healthz).
#
#   scripts/run-demo.sh                 # build, then run both until stopped
#   GATEWAY=path scripts/run-demo.sh    # run that tokengate binary instead of building one
#
# Ctrl-C, SIGTERM or SIGHUP to this script stops the gateway (gracefully: SIGTERM) and the demo
# upstream too, and waits for them, so neither is left running. The two run in process groups of
# their own, so a Ctrl-C reaches this script alone and each child gets exactly one SIGTERM (the
# gateway is not sent SIGINT by the terminal and SIGTERM by the trap at once).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${GATEWAY:-}" ]; then
  bin=$GATEWAY
else
  scripts/deps.sh
  cargo build --release --locked
  bin="${CARGO_TARGET_DIR:-target}/release/tokengate"
fi

children=()
stop() {
  trap - EXIT INT TERM HUP
  if ((${#children[@]})); then
    kill -TERM "${children[@]}" 2>/dev/null || true
    wait "${children[@]}" 2>/dev/null || true
  fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

set -m # job control: each background child in a process group of its own
"$bin" demo-upstream --listen 127.0.0.1:9000 &
children+=("$!")
"$bin" --conf conf/gateway.toml &
gateway=$!
children+=("$gateway")
# Returns when the gateway exits, or at once when a trapped signal arrives (the trap then stops both).
wait "$gateway"
