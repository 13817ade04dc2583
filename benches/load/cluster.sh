#!/usr/bin/env bash
# Cluster harness: the PostgreSQL store against the embedded SQLite store, and a cluster node's
# bearer route against its public route, in alternating rounds of one run; then how fast a
# revocation reaches the other node.
#
#   benches/load/cluster.sh [SECONDS_PER_RUN=10] [ROUNDS=3] [REVOCATIONS=500]
#   env: CONNS=32 THREADS=1 PG=postgres://postgres@127.0.0.1:5432/test GATEWAY=path
#
# The bearer route also runs on the SQLite gateway, to tell what cluster mode adds to it from what
# a bearer check costs on any gateway. Two cluster nodes (A and B) share a database created for the run on the PostgreSQL server PG
# names; a third gateway uses SQLite. Issuance runs on A and on the SQLite gateway with the
# same config (opaque tokens, multi mode: every request writes a token); the bearer route runs
# on B with a token A issued. Propagation: a token is issued at A and used once at B (so B
# holds it), then revoked at A; the delay is from A's 200 to the first 401 at B (polled on a
# kept-alive connection), over REVOCATIONS revocations.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
ROUNDS=${2:-3}
REVOCATIONS=${3:-500}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v psql >/dev/null || need+=(postgresql-client)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -z "${GATEWAY:-}" ]; then
  scripts/deps.sh
  cargo build --release --locked --bin tokengate 2>&1 | tail -1
  GATEWAY=./target/release/tokengate
fi

work=$(mktemp -d)
DB="tokengate_bench_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE DATABASE $DB" >/dev/null
DB_URL="${PG%/*}/$DB"

UP=18181
for port in 18181 18190 18191 18192; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "cluster.sh: port $port is already in use; stop what listens there first" >&2
    exit 1
  fi
done
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $work/nb; proxy_temp_path $work/np; fastcgi_temp_path $work/nf;
  uwsgi_temp_path $work/nu; scgi_temp_path $work/ns;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } }
}
NGINX
"$NGINX" -c "$work/nginx.conf" -p "$work" & pids+=($!)

SECRET_SHA=cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf   # "demo-secret"
declare -A PID
gateway() { # name port store-lines
  local dir="$work/$1"; mkdir -p "$dir"
  cat > "$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
threads = $THREADS
data_dir = "data"
[store]
$3
sweep_interval_secs = 3600
[oauth]
issuer = "http://127.0.0.1:$2"
jwt_signing_key = "$work/jwt.pem"
server_key = "$work/server.key"
max_live_tokens_per_client = 0
[oauth.opaque.renew_token_without_revoking_existing]
enable = true
[[clients]]
id = "opaque-app"
secret_sha256 = "$SECRET_SHA"
token_type = "opaque"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
[[clients]]
id = "opaque-bearer"
secret_sha256 = "$SECRET_SHA"
token_type = "opaque"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
[[routes]]
path_prefix = "/api"
upstream = "127.0.0.1:$UP"
scopes = ["orders:read"]
[[routes]]
path_prefix = "/public"
upstream = "127.0.0.1:$UP"
auth = false
TOML
  RUST_LOG=warn "$GATEWAY" --conf "$dir/gateway.toml" 2>"$dir/log" & pids+=($!)
  PID[$2]=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$2/.well-known/oauth-authorization-server" && return
    sleep 0.1
  done
  echo "cluster.sh: gateway $1 did not start:" >&2; cat "$dir/log" >&2; exit 1
}
gateway sqlite 18190 ""
gateway node-a 18191 "url = \"$DB_URL\""
gateway node-b 18192 "url = \"$DB_URL\""

token() { curl -s -u "$2:demo-secret" -d grant_type=client_credentials "http://127.0.0.1:$1/oauth2/token" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
OPAQUE=$(token 18191 opaque-bearer)
SQLITE_OPAQUE=$(token 18190 opaque-bearer)
BASIC=$(printf 'opaque-app:demo-secret' | base64)

scenarios=(
  "issue opaque multi, SQLite (durable)|http://127.0.0.1:18190/oauth2/token|token.lua|BASIC=$BASIC"
  "issue opaque multi, PostgreSQL|http://127.0.0.1:18191/oauth2/token|token.lua|BASIC=$BASIC"
  "public route, node B|http://127.0.0.1:18192/public/x||"
  "opaque bearer route, node B|http://127.0.0.1:18192/api/x|bearer.lua|TOKEN=$OPAQUE"
  "opaque bearer route, SQLite gateway|http://127.0.0.1:18190/api/x|bearer.lua|TOKEN=$SQLITE_OPAQUE"
)
results="$work/results"
: > "$results"
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!scenarios[@]}"; do
    IFS='|' read -r name url script envs <<<"${scenarios[$i]}"
    args=(-t1 "-c$CONNS" "-d${DUR}s" --latency)
    [ -n "$script" ] && args+=(-s "benches/load/$script")
    out=$(env $envs wrk "${args[@]}" "$url")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx/ {print $5}' <<<"$out"); errs=${errs:-0}
    echo "$i|$rps|$p99|$errs|$round" >> "$results"
    printf 'round %d  %-36s %10s req/s  p99 %8s ms  non-2xx %s\n' "$round" "$name" "$rps" "$p99" "$errs" >&2
  done
done

echo
echo "tokengate cluster figures: wrk -t1 -c$CONNS, ${DUR}s runs, $ROUNDS alternating rounds, $THREADS worker thread(s) per gateway, nginx upstream, gateway $GATEWAY"
printf '%-36s %12s %10s %8s\n' scenario "req/s (med)" "p99 ms" non-2xx
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A RPS
for i in "${!scenarios[@]}"; do
  IFS='|' read -r name _ <<<"${scenarios[$i]}"
  RPS[$i]=$(awk -F'|' -v i="$i" '$1 == i {print $2}' "$results" | median)
  p99=$(awk -F'|' -v i="$i" '$1 == i {print $3}' "$results" | median)
  errs=$(awk -F'|' -v i="$i" '$1 == i {s += $4} END {print s + 0}' "$results")
  printf '%-36s %12.0f %10.3f %8s\n' "$name" "${RPS[$i]}" "$p99" "$errs"
done
paired() {
  awk -F'|' -v a="$1" -v b="$2" '$1 == a {x[$5] = $2} $1 == b {y[$5] = $2}
    END {for (r in x) if (y[r] > 0) printf "%.4f\n", x[r] / y[r]}' "$results" |
    sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
      printf "per round: median %.2f, %.2f-%.2f", m, v[1], v[NR]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "PostgreSQL / SQLite durable issuance      $(ratio "${RPS[1]}" "${RPS[0]}")   (target >= 0.50); $(paired 1 0)"
echo "bearer / public route on a cluster node   $(ratio "${RPS[3]}" "${RPS[2]}")   (target >= 0.97); $(paired 3 2)"
echo "bearer route, cluster node / one node       $(ratio "${RPS[3]}" "${RPS[4]}")   (what cluster mode adds to a bearer check); $(paired 3 4)"
echo
python3 benches/load/propagation.py 18191 18192 "$REVOCATIONS"
