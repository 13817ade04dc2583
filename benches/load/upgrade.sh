#!/usr/bin/env bash
# Zero downtime under load: two wrk runs over HTTPS (one calling a bearer route, one asking the
# token endpoint) while, one after the other,
#   1. the certificate is renewed (new files, SIGHUP) and the new one is seen served,
#   2. the JWT signing key is rotated (config saved with a new key, the old one in
#      jwt_previous_keys) and the JWKS is seen publishing both,
#   3. the gateway is replaced: a new process started with --upgrade, SIGQUIT to the old one,
#      which finishes and exits; the new one serves on the same sockets.
# Prints each wrk's responses, socket errors and non-2xx answers, which must all be 0 (the
# bearer token was issued by the old process before every step). wrk reconnects after an answer
# with `Connection: close`, which is how the old process ends its keep-alive connections.
#
#   benches/load/upgrade.sh                 # DURATION=30 CONNS=32 THREADS=2
#   BIN=path/to/tokengate benches/load/upgrade.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-30}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}

source benches/load/common.sh
install_tools wrk curl openssl python3
bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/tokengate
fi

gw_port=$(free_port)
ops_port=$(free_port)
up_port=$(free_port)

# Polls `$2...` (a command) every 0.1 s for up to $1 seconds; fails the run when it never holds.
wait_for() {
  local limit=$1
  shift
  for _ in $(seq $((limit * 10))); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $*" >&2
  exit 1
}

"$bin" demo-upstream --listen "127.0.0.1:$up_port" 2>/dev/null &
pids+=($!)

certificate() { # $1 = name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/$1-key.pem" -out "$work/$1-cert.pem" 2>/dev/null
}
certificate old
certificate new
cp "$work/old-cert.pem" "$work/cert.pem"
cp "$work/old-key.pem" "$work/key.pem"

secret_sha256=$(printf 'bench-secret\n' | "$bin" hash-secret)
conf() { # $1 = extra [oauth] lines
  cat <<TOML
[server]
listen = "127.0.0.1:$gw_port"
metrics_listen = "127.0.0.1:$ops_port"
tls_cert = "cert.pem"
tls_key = "key.pem"
threads = 2
data_dir = "data"
grace_period_secs = 10
[oauth]
issuer = "https://127.0.0.1:$gw_port"
jwt_algorithm = "ES256"
$1
[[clients]]
id = "bench-app"
secret_sha256 = "$secret_sha256"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
[[clients]]
id = "token-app"
secret_sha256 = "$secret_sha256"
token_type = "opaque"
grant_types = ["client_credentials"]
[[routes]]
path_prefix = "/api/orders"
upstream = "127.0.0.1:$up_port"
scopes = ["orders:read"]
TOML
}
conf "" >"$work/gateway.toml"

RUST_LOG=tokengate=info,pingora_core=info,warn "$bin" --conf "$work/gateway.toml" 2>"$work/old.log" &
old_pid=$!
pids+=("$old_pid")
base="https://127.0.0.1:$gw_port"
served() { curl -fsk "$base/.well-known/oauth-authorization-server" >/dev/null; }
wait_for 30 served
token=$(curl -fsk -u bench-app:bench-secret -d grant_type=client_credentials -d scope=orders:read \
  "$base/oauth2/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "no token; gateway log:" >&2; cat "$work/old.log" >&2; exit 1; }

cat benches/load/token.lua benches/load/non2xx.lua >"$work/token.lua"
# Answers take longer than wrk's default 2 s timeout only if the handover stalls: give 10 s, so
# a stall shows as slow, not as errors, and real errors stay errors.
BASIC=$(printf 'token-app:bench-secret' | base64) \
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$work/token.lua" \
  "$base/oauth2/token" >"$work/wrk-token.out" &
wrk_token=$!
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s benches/load/non2xx.lua \
  -H "Authorization: Bearer $token" "$base/api/orders" >"$work/wrk-bearer.out" &
wrk_bearer=$!
sleep 2

echo "1. certificate renewal"
cp "$work/new-cert.pem" "$work/cert.pem"
cp "$work/new-key.pem" "$work/key.pem"
kill -HUP "$old_pid"
new_served() { curl -fs --cacert "$work/new-cert.pem" "$base/.well-known/oauth-authorization-server" >/dev/null; }
wait_for 30 new_served
sleep 2

echo "2. JWT signing key rotation"
conf "jwt_signing_key = \"jwt-next.pem\"
jwt_previous_keys = [\"data/jwt-es256.pem\"]" >"$work/gateway.toml.tmp"
mv "$work/gateway.toml.tmp" "$work/gateway.toml"
both_keys() { [ "$(curl -fsk "$base/oauth2/jwks" | grep -o '"kid"' | wc -l)" -eq 2 ]; }
wait_for 30 both_keys
sleep 2

echo "3. graceful upgrade"
RUST_LOG=tokengate=info,pingora_core=info,warn "$bin" --conf "$work/gateway.toml" --upgrade 2>"$work/new.log" &
new_pid=$!
pids+=("$new_pid")
waiting() { grep -q "waiting on" "$work/new.log"; }
wait_for 30 waiting
kill -QUIT "$old_pid"
wait "$old_pid" || { echo "the old process exited with $?" >&2; exit 1; }
kill -0 "$new_pid" || { echo "the new process is gone; its log:" >&2; cat "$work/new.log" >&2; exit 1; }
echo "   the old process exited; the new one ($new_pid) serves"

if ! kill -0 "$wrk_token" 2>/dev/null || ! kill -0 "$wrk_bearer" 2>/dev/null; then
  echo "wrk ended before the upgrade did: raise DURATION" >&2
  exit 1
fi
wait "$wrk_token" "$wrk_bearer"

echo "--- token endpoint (token-app)"
cat "$work/wrk-token.out"
echo "--- bearer route (token issued before the steps)"
cat "$work/wrk-bearer.out"
echo "--- the new process: the old token and the JWKS"
curl -s -o /dev/null -w "bearer call with the token of before: %{http_code}\n" --cacert "$work/new-cert.pem" \
  -H "Authorization: Bearer $token" "$base/api/orders"
echo "keys published: $(curl -fsk "$base/oauth2/jwks" | grep -o '"kid"' | wc -l)"
echo "health on the handed-over metrics listener: $(curl -fs "http://127.0.0.1:$ops_port/healthz")"
echo "--- summary (token endpoint, then bearer route): all must be 0"
grep -h "^non-2xx:\|^socket errors:" "$work/wrk-token.out" "$work/wrk-bearer.out"
