#!/usr/bin/env bash
# Load harness: tokengate against a bare pingora passthrough and HAProxy (plain, and with a
# bearer lookup in a map: the issue's long goal), nginx as the upstream, wrk as the client,
# alternating rounds so every scenario sees the same machine conditions.
#
#   benches/load/run.sh [SECONDS_PER_RUN=10] [ROUNDS=5]      env: CONNS=32 THREADS=1
#
# GATEWAY=path measures that gateway binary instead of a fresh release build (for instance the
# profile-guided one from scripts/pgo-build.sh); the passthrough is always the plain release build.
#
# Prints requests/s (median of the rounds) and p99 per scenario, then the ratios the
# performance targets are about. Absolute figures vary by machine; ratios come from one run.
# Two routes measure the upstream features against the one-server public route: one with two
# servers (nginx on two ports: the balancer's cost) and one over HTTPS to nginx (the TLS cost).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
ROUNDS=${2:-5}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}

source benches/load/common.sh
install_tools wrk nginx=nginx-light curl haproxy openssl
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
scripts/deps.sh
if [ -n "${GATEWAY:-}" ]; then
  cargo build --release --locked --example passthrough 2>&1 | tail -1
else
  cargo build --release --locked --bin tokengate --example passthrough 2>&1 | tail -1
  GATEWAY=./target/release/tokengate
fi

UP=18081
UP2=18083     # the same nginx on a second port: the two-server route
UPTLS=18084   # and over HTTPS, with a certificate from a CA made here
ports_free 18081 18082 18083 18084 18090 18091 18092 18093 18094 18095
# The HTTPS upstream's certificate, for 127.0.0.1, from a CA the gateway is told to trust.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/upstream.key" -out "$work/upstream.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$work/upstream.ext"
openssl x509 -req -in "$work/upstream.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/upstream.ext" -out "$work/upstream.pem" 2>/dev/null
start_nginx_upstream $UP $UP2 "$UPTLS:$work/upstream.pem:$work/upstream.key"
declare -A PID   # port -> process, for the CPU each request costs it
./target/release/examples/passthrough 127.0.0.1:18082 127.0.0.1:$UP "$THREADS" 2>"$work/passthrough.log" & pids+=($!)
PID[18082]=$!

gateway() { # name port algorithm enable
  local dir="$work/$1"; mkdir -p "$dir"
  {
    cat <<TOML
[server]
listen = "127.0.0.1:$2"
threads = $THREADS
data_dir = "data"
[store]
sweep_interval_secs = 3600
[oauth]
issuer = "http://127.0.0.1:$2"
jwt_algorithm = "$3"
# One client per scenario issues for 5 x 8 s: millions of tokens, past the bound per client.
max_live_tokens_per_client = 0
[oauth.jwt.renew_token_without_revoking_existing]
enable = $4
[oauth.opaque.renew_token_without_revoking_existing]
enable = $4
TOML
    client_toml jwt-app jwt
    client_toml opaque-app opaque
    client_toml jwt-bearer jwt
    client_toml opaque-bearer opaque
    routes_toml $UP
    cat <<TOML
[[routes]]
path_prefix = "/two"
upstreams = ["127.0.0.1:$UP", "127.0.0.1:$UP2"]
auth = false
[[routes]]
path_prefix = "/tls"
upstream = "127.0.0.1:$UPTLS"
upstream_tls = true
upstream_ca = "$work/ca.pem"
auth = false
TOML
  } > "$dir/gateway.toml"
  RUST_LOG=warn "$GATEWAY" --conf "$dir/gateway.toml" 2>"$dir/log" & pids+=($!)
  PID[$2]=$!
}
gateway single 18090 RS256 false
gateway multi 18091 RS256 true
gateway es256 18092 ES256 true
gateway eddsa 18093 EdDSA true

for port in 18081 18082 18090 18091 18092 18093; do
  wait_ready $port || { echo "run.sh: nothing answers on port $port" >&2; exit 1; }
done
token() { curl -s -u "$2:demo-secret" -d grant_type=client_credentials "http://127.0.0.1:$1/oauth2/token" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
# Bearer tokens of clients the issuance runs do not use (single mode would revoke them).
OPAQUE=$(token 18090 opaque-bearer)
JWT=$(token 18090 jwt-bearer)
BASIC_JWT=$(printf 'jwt-app:demo-secret' | base64)
BASIC_OPAQUE=$(printf 'opaque-app:demo-secret' | base64)

# HAProxy with as many threads as the gateways: plain, and the issue's bearer check (the token
# looked up in a map file holding the same opaque token, 401 when absent, Authorization
# dropped, the client id and scope passed on, X-Forwarded-For added), both to the same nginx.
printf '%s opaque-bearer\n' "$OPAQUE" > "$work/tokens.map"
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend plain
  bind 127.0.0.1:18094
  default_backend up
frontend bearer
  bind 127.0.0.1:18095
  option forwardfor
  http-request set-var(txn.client) req.hdr(authorization),word(2,' '),map($work/tokens.map)
  http-request deny deny_status 401 unless { var(txn.client) -m found }
  http-request del-header authorization
  http-request set-header X-Client-Id %[var(txn.client)]
  http-request set-header X-Scope orders:read
  default_backend up
backend up
  http-reuse always
  server nginx 127.0.0.1:$UP
HAPROXY
"$HAPROXY" -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)
PID[18094]=$!; PID[18095]=$!
for port in 18094 18095; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -H "Authorization: Bearer $OPAQUE" "http://127.0.0.1:$port/public/x" && break
    sleep 0.1
  done
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:18095/api/x")" = 401 ] ||
  { echo "run.sh: HAProxy's bearer check lets a request without a token through" >&2; exit 1; }

# name | url | lua script | env
scenarios=(
  "passthrough (bare pingora)|http://127.0.0.1:18082/public/x||"
  "public route|http://127.0.0.1:18090/public/x||"
  "public route, same JWT header|http://127.0.0.1:18090/public/x|bearer.lua|TOKEN=$JWT"
  "opaque bearer route|http://127.0.0.1:18090/api/x|bearer.lua|TOKEN=$OPAQUE"
  "JWT bearer route|http://127.0.0.1:18090/api/x|bearer.lua|TOKEN=$JWT"
  "metadata (static local answer)|http://127.0.0.1:18090/.well-known/oauth-authorization-server||"
  "issue opaque cc single|http://127.0.0.1:18090/oauth2/token|token.lua|BASIC=$BASIC_OPAQUE"
  "issue opaque cc multi (durable)|http://127.0.0.1:18091/oauth2/token|token.lua|BASIC=$BASIC_OPAQUE"
  "issue JWT RS256 cc single|http://127.0.0.1:18090/oauth2/token|token.lua|BASIC=$BASIC_JWT"
  "issue JWT RS256 cc multi|http://127.0.0.1:18091/oauth2/token|token.lua|BASIC=$BASIC_JWT"
  "issue JWT ES256 cc multi|http://127.0.0.1:18092/oauth2/token|token.lua|BASIC=$BASIC_JWT"
  "issue JWT EdDSA cc multi|http://127.0.0.1:18093/oauth2/token|token.lua|BASIC=$BASIC_JWT"
  "HAProxy plain|http://127.0.0.1:18094/public/x||"
  "HAProxy bearer map|http://127.0.0.1:18095/api/x|bearer.lua|TOKEN=$OPAQUE"
  "public route, two servers|http://127.0.0.1:18090/two/x||"
  "public route, HTTPS upstream|http://127.0.0.1:18090/tls/x||"
)

results="$work/results"
: > "$results"
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!scenarios[@]}"; do
    IFS='|' read -r name url script envs <<<"${scenarios[$i]}"
    args=(-t1 "-c$CONNS" "-d${DUR}s" --latency)
    [ -n "$script" ] && args+=(-s "benches/load/$script")
    port=$(sed 's#^http://[^:]*:\([0-9]*\)/.*#\1#' <<<"$url")
    before=$(cpu_ticks "${PID[$port]}")
    out=$(env $envs wrk "${args[@]}" "$url")
    after=$(cpu_ticks "${PID[$port]}")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    # The serving process's user+system CPU per request, in microseconds (clock ticks of 10 ms):
    # steadier than req/s, which moves with where the scheduler puts wrk, nginx and the worker.
    cpu=$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$HZ" 'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx/ {print $5}' <<<"$out"); errs=${errs:-0}
    echo "$i|$rps|$p99|$errs|$cpu|$round" >> "$results"
    printf 'round %d  %-34s %10s req/s  p99 %8s ms  non-2xx %s  cpu %s us/req\n' "$round" "$name" "$rps" "$p99" "$errs" "$cpu" >&2
  done
done

echo
echo "tokengate load figures: wrk -t1 -c$CONNS, ${DUR}s runs, $ROUNDS alternating rounds, $THREADS worker thread(s), nginx upstream, gateway $GATEWAY"
printf '%-34s %12s %10s %8s %12s\n' scenario "req/s (med)" "p99 ms" non-2xx "CPU us/req"
declare -A RPS CPU P99
for i in "${!scenarios[@]}"; do
  IFS='|' read -r name _ <<<"${scenarios[$i]}"
  rps=$(awk -F'|' -v i="$i" '$1 == i {print $2}' "$results" | median)
  p99=$(awk -F'|' -v i="$i" '$1 == i {print $3}' "$results" | median)
  errs=$(awk -F'|' -v i="$i" '$1 == i {s += $4} END {print s + 0}' "$results")
  cpu=$(awk -F'|' -v i="$i" '$1 == i {print $5}' "$results" | median)
  RPS[$i]=$rps
  CPU[$i]=$cpu
  P99[$i]=$p99
  printf '%-34s %12.0f %10.3f %8s %12.2f\n' "$name" "$rps" "$p99" "$errs" "$cpu"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The same ratio taken within each round (the two scenarios ran minutes apart at most, so a
# drift of the machine between rounds cancels out): "median, min-max" over the rounds. It takes
# the place of common.sh's paired, as these results carry the scenario first and the round last.
paired() {
  awk -F'|' -v a="$1" -v b="$2" '$1 == a {x[$6] = $2} $1 == b {y[$6] = $2}
    END {for (r in x) if (y[r] > 0) printf "%.4f\n", x[r] / y[r]}' "$results" |
    sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "per round: median %.2f, %.2f-%.2f", m, v[1], v[NR]}'
}
echo
# Indexes into scenarios: 0 passthrough, 1 public, 2 public + JWT header, 3 opaque bearer,
# 4 JWT bearer, 5 metadata, 6 opaque single, 7 opaque multi, 8 RS256 single, 9 RS256 multi,
# 10 ES256 multi, 11 EdDSA multi, 12 HAProxy plain, 13 HAProxy bearer map, 14 public route with
# two servers, 15 public route over HTTPS to the upstream.
echo "opaque bearer / public route              $(ratio "${RPS[3]}" "${RPS[1]}")   (target >= 0.97); $(paired 3 1)"
echo "JWT bearer / public route                 $(ratio "${RPS[4]}" "${RPS[1]}")   (target >= 0.97); $(paired 4 1)"
echo "JWT bearer / public route, same header    $(ratio "${RPS[4]}" "${RPS[2]}")   (validation cost alone)"
echo "public route / bare passthrough           $(ratio "${RPS[1]}" "${RPS[0]}")   (target >= 1.10); $(paired 1 0)"
echo "CPU per request (process serving it), the same comparisons the other way round (lower is better):"
echo "  public route / bare passthrough         $(ratio "${CPU[1]}" "${CPU[0]}")"
echo "  opaque bearer / public route            $(ratio "${CPU[3]}" "${CPU[1]}")"
echo "  JWT bearer / public route               $(ratio "${CPU[4]}" "${CPU[1]}")"
echo "  durable opaque issuance / metadata      $(ratio "${CPU[7]}" "${CPU[5]}")"
echo "durable opaque issuance / metadata        $(ratio "${RPS[7]}" "${RPS[5]}")   (target >= 0.80); $(paired 7 5)"
echo "ES256 issuance / metadata                 $(ratio "${RPS[10]}" "${RPS[5]}")   (target >= 0.60); $(paired 10 5)"
echo "EdDSA issuance / metadata                 $(ratio "${RPS[11]}" "${RPS[5]}")   (target >= 0.60); $(paired 11 5)"
echo "opaque bearer / HAProxy bearer map        $(ratio "${RPS[3]}" "${RPS[13]}")   (long goal >= 1.00, same threads); $(paired 3 13)"
echo "public route / HAProxy plain              $(ratio "${RPS[1]}" "${RPS[12]}")"
echo "two servers / one server (public route)   $(ratio "${RPS[14]}" "${RPS[1]}")   (the balancer's cost: within noise); $(paired 14 1); p99 ${P99[14]} vs ${P99[1]} ms"
echo "HTTPS upstream / plain (public route)     $(ratio "${RPS[15]}" "${RPS[1]}")   (the TLS cost to the upstream); $(paired 15 1); p99 ${P99[15]} vs ${P99[1]} ms"
echo "  CPU per request: opaque bearer / HAProxy bearer map  $(ratio "${CPU[3]}" "${CPU[13]}")"
if command -v openssl >/dev/null; then
  sign=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
  [ -n "$sign" ] && echo "RS256 multi issuance / openssl rsa2048 sign/s ($sign, one core) $(ratio "${RPS[9]}" "$sign")   (target >= 0.80)"
fi
