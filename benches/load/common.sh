# Shared by the load harnesses that source it (dpop.sh, ab.sh): tools, a work folder cleaned up
# at exit, the nginx upstream, and medians. Needs `set -euo pipefail` in the caller.

# Installs wrk, nginx and curl when missing (Debian/Ubuntu).
install_load_tools() {
  local need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  command -v curl >/dev/null || need+=(curl)
  if ((${#need[@]})); then
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

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

# nginx answering `200 ok` on 127.0.0.1:$1, the upstream of the harness's routes.
start_nginx_upstream() {
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
  server { listen 127.0.0.1:$1; location / { return 200 "ok\n"; } }
}
NGINX
  "$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nginx.conf" -p "$work" & pids+=($!)
}

# Waits until a gateway answers on 127.0.0.1:$1.
wait_ready() {
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$1/.well-known/oauth-authorization-server" && return 0
    sleep 0.1
  done
  return 1
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The ratio of scenario $1 to scenario $2 within each round of $results ("round|name|rps|..."):
# "median, min-max".
paired() {
  awk -F'|' -v a="$1" -v b="$2" '$2 == a {x[$1]=$3} $2 == b {y[$1]=$3} END {for (r in x) print x[r] / y[r]}' "$results" |
    sort -n | awk '{v[NR]=$1} END {m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "median %.2f, %.2f-%.2f", m, v[1], v[NR]}'
}

SECRET_SHA=cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf   # "demo-secret"
