#!/usr/bin/env bash
# Upstream connections opened per proxied request: a keep-alive upstream that counts the
# connections it accepts, one public route to it, wrk for DURATION seconds, then the count and
# pingora's "failed to acquire reusable stream" lines. Usage:
#   benches/load/upstream_reuse.sh [BINARY] [THREADS] [DURATION]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-target/release/tokengate}; threads=${2:-2}; duration=${3:-20}
# shellcheck source=benches/load/common.sh
source "$here/common.sh"
install_tools wrk curl python3
up=19431; gwp=18431
python3 "$here/count_upstream.py" "$up" "$work/counts" & pids+=($!)
cat > "$work/gw.toml" <<TOML
[server]
listen = "127.0.0.1:$gwp"
threads = $threads
data_dir = "data"
[[routes]]
path_prefix = "/"
upstream = "127.0.0.1:$up"
auth = false
TOML
"$bin" --conf "$work/gw.toml" 2> "$work/log" & pids+=($!)
# Ready once a request through the route is answered (rather than wait_ready's local endpoint), so
# that the upstream connection it opens is counted before the baseline.
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$gwp/" && break; sleep 0.1; done
sleep 1.2; read -r c0 r0 < "$work/counts"
wrk -t2 -c32 -d"${duration}s" "http://127.0.0.1:$gwp/x" > "$work/wrk.txt"
sleep 1.5; read -r c1 r1 < "$work/counts"
echo "threads=$threads upstream_connections=$((c1 - c0)) proxied_requests=$((r1 - r0))" \
  "error_lines=$(grep -c 'failed to acquire reusable stream' "$work/log" || true)" \
  "$(grep Requests/sec "$work/wrk.txt")"
