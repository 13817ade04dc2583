# Shared by the load harnesses that source it: tools, a work folder cleaned up at exit, free
# ports, the nginx upstream, the common pieces of a gateway's config, and medians. Needs
# `set -euo pipefail` in the caller.

# Installs the tools named that are missing, in one apt-get run (Debian/Ubuntu): each argument a
# command, or COMMAND=PACKAGE where its package has another name. A command found in /usr/sbin
# counts too (nginx and haproxy go there, outside a user's PATH).
install_tools() {
  local need=() tool
  for tool in "$@"; do
    command -v "${tool%%=*}" >/dev/null || [ -x "/usr/sbin/${tool%%=*}" ] || need+=("${tool#*=}")
  done
  if ((${#need[@]})); then
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# Installs wrk, nginx and curl when missing: the tools of a harness with the nginx upstream.
install_load_tools() { install_tools wrk nginx=nginx-light curl; }

# A temporary folder in $work, and $pids: the processes stopped (and the folder removed) at exit.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Refuses ports something already listens on: it would be measured instead.
ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$(basename "$0"): port $port is already in use; stop what listens there first" >&2
      exit 1
    fi
  done
}

# A port that nothing listens on now (the system's pick), for a harness without fixed ports.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx answering `200 ok` on 127.0.0.1:$1, the upstream of the harness's routes, and on each
# further port given: PORT the same way, PORT:CERT:KEY over HTTPS with that certificate and key
# (PEM files).
start_nginx_upstream() {
  local ok='location / { return 200 "ok\n"; }' servers="" port cert key
  for port in "$@"; do
    if [[ $port == *:* ]]; then
      IFS=: read -r port cert key <<<"$port"
      servers+="  server { listen 127.0.0.1:$port ssl; ssl_certificate $cert; ssl_certificate_key $key; $ok }"$'\n'
    else
      servers+="  server { listen 127.0.0.1:$port; $ok }"$'\n'
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
${servers}}
NGINX
  "$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx.conf" -p "$work" & pids+=($!)
}

# Waits until a gateway answers on 127.0.0.1:$1, for up to $2 tenths of a second (default 300).
wait_ready() {
  for _ in $(seq 1 "${2:-300}"); do
    curl -s -o /dev/null "http://127.0.0.1:$1/.well-known/oauth-authorization-server" && return 0
    sleep 0.1
  done
  return 1
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The ratio of scenario $1 to scenario $2 within each round of $results ("round|name|rps|..."):
# "median M, middle half Q1-Q3, all MIN-MAX" (quartiles by the nearest rank). $3 picks another
# column than the rate (default 3), $4 the decimals (2).
paired() {
  awk -F'|' -v a="$1" -v b="$2" -v c="${3:-3}" '$2 == a {x[$1]=$c} $2 == b {y[$1]=$c} END {for (r in x) if (y[r] > 0) print x[r] / y[r]}' "$results" |
    sort -n | awk -v d="${4:-2}" '{v[NR]=$1} END {
      m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2
      q1 = v[int((NR + 3) / 4)]; q3 = v[NR + 1 - int((NR + 3) / 4)]
      f = "median %." d "f, middle half %." d "f-%." d "f, all %." d "f-%." d "f"
      printf f, m, q1, q3, v[1], v[NR]}'
}

SECRET_SHA=cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf   # "demo-secret"

# Pieces of a gateway's config, on stdout. A client with id $1 and token type $2 (jwt or opaque),
# secret "demo-secret", given client_credentials for scope orders:read:
client_toml() {
  printf '[[clients]]\nid = "%s"\nsecret_sha256 = "%s"\ntoken_type = "%s"\ngrant_types = ["client_credentials"]\nscopes = ["orders:read"]\n' \
    "$1" "$SECRET_SHA" "$2"
}
# The harnesses' two routes to the upstream on 127.0.0.1:$1: /api, for a bearer token of scope
# orders:read, and /public, with no auth.
routes_toml() {
  cat <<TOML
[[routes]]
path_prefix = "/api"
upstream = "127.0.0.1:$1"
scopes = ["orders:read"]
[[routes]]
path_prefix = "/public"
upstream = "127.0.0.1:$1"
auth = false
TOML
}

# The gateway binary measured: $GATEWAY when set, else a release build of this checkout.
choose_gateway() {
  if [ -z "${GATEWAY:-}" ]; then
    scripts/deps.sh
    cargo build --release --locked --bin tokengate 2>&1 | tail -1
    GATEWAY=./target/release/tokengate
  fi
}

# A database made for the run on the PostgreSQL server $PG names, dropped at exit (with the work
# folder); its url in $DB_URL.
create_bench_database() {
  install_tools psql=postgresql-client
  DB="tokengate_bench_$$"
  trap 'cleanup; drop_bench_database' EXIT
  psql "$PG" -qc "CREATE DATABASE $DB" >/dev/null
  DB_URL="${PG%/*}/$DB"
}
drop_bench_database() { psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }

# Starts a gateway of the cluster harnesses named $1 on 127.0.0.1:$2 with the store lines $3
# ("" for SQLite, `url = "postgres://..."` for a cluster node), $THREADS worker threads, the two
# opaque clients and the routes to the upstream on $UP; its pid goes in PID[$2]. Every gateway
# has the same issuer and keys ($work/jwt.pem and $work/server.key, which the first gateway started
# generates): a cluster's nodes share them.
declare -A PID
start_bench_gateway() {
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
# One issuer for every gateway: a cluster's nodes share it, and tokens carry it as their audience.
issuer = "http://tokengate.bench"
jwt_signing_key = "$work/jwt.pem"
server_key = "$work/server.key"
max_live_tokens_per_client = 0
[oauth.opaque.renew_token_without_revoking_existing]
enable = true
TOML
  { client_toml opaque-app opaque; client_toml opaque-bearer opaque; routes_toml "$UP"; } >> "$dir/gateway.toml"
  RUST_LOG=warn "$GATEWAY" --conf "$dir/gateway.toml" 2>"$dir/log" & pids+=($!)
  PID[$2]=$!
  wait_ready "$2" && return
  echo "$(basename "$0"): gateway $1 did not start:" >&2; cat "$dir/log" >&2; exit 1
}
