#!/usr/bin/env bash
# DPoP's cost under load: a DPoP-bound proxied request against a bearer one, and DPoP issuance
# against bearer issuance, in alternating rounds of one run (one gateway, nginx as the upstream,
# wrk as the client). A proof is accepted once, so every request of the DPoP scenarios carries a
# proof of its own, made before the round (examples/dpop_proofs.rs) and read by dpop.lua.
#
#   benches/load/dpop.sh [SECONDS_PER_RUN=5] [ROUNDS=3]      env: CONNS=32 THREADS=1
#
# Prints requests/s (median of the rounds) per scenario and the ratios, also taken per round.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-5}
ROUNDS=${2:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
# Proofs made per second of a run: above what one gateway thread serves here.
PROXY_RATE=${PROXY_RATE:-45000}
TOKEN_RATE=${TOKEN_RATE:-12000}

source benches/load/common.sh
install_load_tools
scripts/deps.sh
cargo build --release --locked --bin tokengate --example dpop_proofs 2>&1 | tail -1
PROOFS_BIN=./target/release/examples/dpop_proofs

UP=18181
GW=18190
ports_free $UP $GW
start_nginx_upstream $UP

mkdir -p "$work/gw"
{
  cat <<TOML
[server]
listen = "127.0.0.1:$GW"
threads = $THREADS
data_dir = "data"
[store]
sweep_interval_secs = 3600
[oauth]
issuer = "http://127.0.0.1:$GW"
max_live_tokens_per_client = 0
# Proofs are made before each round: they must stay acceptable through it.
dpop_proof_max_age_secs = 3600
[oauth.jwt.renew_token_without_revoking_existing]
enable = true
[[routes]]
path_prefix = "/api"
upstream = "127.0.0.1:$UP"
scopes = ["orders:read"]
TOML
  for id in jwt-app dpop-app jwt-bearer dpop-bearer; do client_toml $id jwt; done
} > "$work/gw/gateway.toml"
RUST_LOG=warn ./target/release/tokengate --conf "$work/gw/gateway.toml" 2>"$work/gw/log" & pids+=($!)
GW_PID=$!
wait_ready $GW || { echo "dpop.sh: the gateway did not start: $(cat "$work/gw/log")" >&2; exit 1; }

BASE="http://127.0.0.1:$GW"
KEY="$work/client-key.pem"
access_token() { sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
BEARER=$(curl -s -u jwt-bearer:demo-secret -d grant_type=client_credentials "$BASE/oauth2/token" | access_token)
proof=$("$PROOFS_BIN" "$KEY" POST "$BASE/oauth2/token" 1)
BOUND=$(curl -s -u dpop-bearer:demo-secret -H "DPoP: $proof" -d grant_type=client_credentials "$BASE/oauth2/token" | access_token)
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: DPoP $BOUND" \
  -H "DPoP: $("$PROOFS_BIN" "$KEY" GET "$BASE/api/x" 1 "$BOUND")" "$BASE/api/x")" = 200 ] ||
  { echo "dpop.sh: the bound token does not pass" >&2; exit 1; }

results="$work/results"
: > "$results"
run() { # round name wrk-args...
  local r=$1 name=$2; shift 2
  local out
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@")
  local rps non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
  if grep -q "RAN OUT" <<<"$out"; then echo "dpop.sh: $name ran out of proofs; raise its rate" >&2; exit 1; fi
  printf '%s|%s|%s|%s\n' "$r" "$name" "$rps" "${non2xx:-0}" >> "$results"
  printf 'round %s %-14s %10s req/s  non-2xx %s\n' "$r" "$name" "$rps" "${non2xx:-0}"
}
BASIC_BEARER=$(printf 'jwt-app:demo-secret' | base64)
BASIC_DPOP=$(printf 'dpop-app:demo-secret' | base64)
for r in $(seq 1 "$ROUNDS"); do
  "$PROOFS_BIN" "$KEY" GET "$BASE/api/x" $((PROXY_RATE * DUR)) "$BOUND" > "$work/api.proofs"
  "$PROOFS_BIN" "$KEY" POST "$BASE/oauth2/token" $((TOKEN_RATE * DUR)) > "$work/token.proofs"
  run "$r" bearer -s benches/load/non2xx.lua -H "Authorization: Bearer $BEARER" "$BASE/api/x"
  export TOKEN=$BOUND PROOFS="$work/api.proofs"
  run "$r" dpop -s benches/load/dpop.lua "$BASE/api/x"
  unset TOKEN
  export BASIC=$BASIC_BEARER
  run "$r" issue-bearer -s benches/load/token.lua "$BASE/oauth2/token"
  export BASIC=$BASIC_DPOP PROOFS="$work/token.proofs"
  run "$r" issue-dpop -s benches/load/dpop.lua "$BASE/oauth2/token"
  unset BASIC PROOFS
done

rps() { awk -F'|' -v n="$1" '$2 == n {print $3}' "$results" | median; }
echo
echo "commit $(git rev-parse --short HEAD), $(date -u +%F), ${DUR}s x $ROUNDS rounds, $CONNS connections, $THREADS gateway thread(s)"
for s in bearer dpop issue-bearer issue-dpop; do printf '%-14s %10s req/s (median)\n' "$s" "$(rps $s)"; done
echo "DPoP-bound / bearer route       per round: $(paired dpop bearer)"
echo "DPoP issuance / bearer issuance per round: $(paired issue-dpop issue-bearer)"
grep -v "|0$" "$results" | sed 's/^/non-2xx answers: /' || true
