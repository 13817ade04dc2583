#!/usr/bin/env bash
# Hot reload under load: wrk keeps calling a bearer route through the gateway while gateway.toml
# is rewritten REWRITES times (renewal policy single <-> multi; odd saves by atomic rename, even
# ones by truncate-and-write in place). Prints the count of non-2xx answers, which must be 0.
#
#   benches/load/reload.sh                       # DURATION=15 CONNS=32 THREADS=2 REWRITES=10
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-15}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
REWRITES=${REWRITES:-10}

source benches/load/common.sh
install_tools wrk curl python3
cargo build --release --locked
bin=$PWD/target/release/tokengate

gw_port=$(free_port)
up_port=$(free_port)

"$bin" demo-upstream --listen "127.0.0.1:$up_port" 2>/dev/null &
pids+=($!)

secret_sha256=$(printf 'bench-secret\n' | "$bin" hash-secret)
conf() { # $1 = true (multi) | false (single)
  cat <<TOML
[server]
listen = "127.0.0.1:$gw_port"
threads = 2
data_dir = "data"
grace_period_secs = 0
[oauth]
issuer = "http://127.0.0.1:$gw_port"
jwt_algorithm = "ES256"
[oauth.jwt.renew_token_without_revoking_existing]
enable = $1
[oauth.opaque.renew_token_without_revoking_existing]
enable = $1
[[clients]]
id = "bench-app"
secret_sha256 = "$secret_sha256"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
[[routes]]
path_prefix = "/api/orders"
upstream = "127.0.0.1:$up_port"
scopes = ["orders:read"]
TOML
}
conf false >"$work/single.toml"
conf true >"$work/multi.toml"
cp "$work/single.toml" "$work/gateway.toml"

RUST_LOG=tokengate=info,warn "$bin" --conf "$work/gateway.toml" 2>"$work/gateway.log" &
pids+=($!)
base="http://127.0.0.1:$gw_port"
wait_ready "$gw_port" || { echo "the gateway did not start; its log:" >&2; cat "$work/gateway.log" >&2; exit 1; }
token=$(curl -fs -u bench-app:bench-secret -d grant_type=client_credentials -d scope=orders:read \
  "$base/oauth2/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "no token; gateway log:" >&2; cat "$work/gateway.log" >&2; exit 1; }

wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s benches/load/non2xx.lua \
  -H "Authorization: Bearer $token" "$base/api/orders" >"$work/wrk.out" &
wrk_pid=$!
# Spread the saves over the run, leaving time for the last one to apply.
gap=$(awk -v d="$DURATION" -v n="$REWRITES" 'BEGIN { printf "%.2f", (d - 3) / n }')
sleep 1
for i in $(seq "$REWRITES"); do
  if [ $((i % 2)) -eq 1 ]; then
    cp "$work/multi.toml" "$work/gateway.toml.tmp" && mv "$work/gateway.toml.tmp" "$work/gateway.toml"
  else
    cat "$work/single.toml" >"$work/gateway.toml"
  fi
  sleep "$gap"
done
wait "$wrk_pid"

cat "$work/wrk.out"
applied=$(grep -c "config reloaded" "$work/gateway.log" || true)
refused=$(grep -c "refused" "$work/gateway.log" || true)
echo "config rewrites: $REWRITES, reloads applied: $applied, refused: $refused"
grep "^non-2xx:" "$work/wrk.out"
