#!/usr/bin/env bash
# Token issuance while the sweeper purges expired tokens: wrk asks for opaque tokens (multi mode,
# durable) for DURATION seconds, with tokens that live TTL seconds and a sweep every SWEEP
# seconds, so each sweep finds the tokens of the previous seconds expired and purges them while
# the requests go on. Prints wrk's latency (its Max is the longest a request waited, a purge
# included), then the store's files at the end of the load and once the last tokens have expired
# and been swept (the disk should follow the live tokens back down).
#
#   benches/load/sweep.sh                # DURATION=40 TTL=10 SWEEP=5 CONNS=32, one worker thread
#
# GATEWAY=path measures that binary instead of a fresh release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-40}
TTL=${TTL:-10}
SWEEP=${SWEEP:-5}
CONNS=${CONNS:-32}

source benches/load/common.sh
install_tools wrk curl python3
scripts/deps.sh
if [ -z "${GATEWAY:-}" ]; then
  cargo build --release --locked --bin tokengate 2>&1 | tail -1
  GATEWAY=$PWD/target/release/tokengate
fi
bin=$GATEWAY
port=$(free_port)

{
  cat <<TOML
[server]
listen = "127.0.0.1:$port"
threads = 1
data_dir = "data"
[store]
sweep_interval_secs = $SWEEP
[oauth]
issuer = "http://127.0.0.1:$port"
access_token_ttl_secs = $TTL
max_live_tokens_per_client = 0
[oauth.opaque.renew_token_without_revoking_existing]
enable = true
TOML
  client_toml opaque-app opaque
} > "$work/gateway.toml"
RUST_LOG=info "$bin" --conf "$work/gateway.toml" 2>"$work/log" & pids+=($!)
wait_ready "$port" || { echo "sweep.sh: the gateway did not start: $(cat "$work/log")" >&2; exit 1; }

files() { # the store's files, in MB
  for f in tokens.db tokens.db-wal; do
    printf '%s %.1f MB  ' "$f" "$(stat -c %s "$work/data/$f" 2>/dev/null | awk '{print $1 / 1e6}')"
  done
  echo
}
BASIC=$(printf 'opaque-app:demo-secret' | base64) \
  wrk -t1 "-c$CONNS" "-d${DURATION}s" --latency -s benches/load/token.lua "http://127.0.0.1:$port/oauth2/token"
echo "end of load:       $(files)"
sleep $((TTL + 2 * SWEEP + 1))
echo "all expired, swept: $(files)"
