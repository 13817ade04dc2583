#!/usr/bin/env bash
# Upstream connections opened per proxied request: a keep-alive upstream that counts the
# connections it accepts, one public route to it, wrk for DURATION seconds, then the count and
# pingora's "failed to acquire reusable stream" lines. Usage:
#   benches/load/upstream_reuse.sh [BINARY] [THREADS] [DURATION]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-target/release/tokengate}; threads=${2:-2}; duration=${3:-20}
command -v wrk >/dev/null || { echo "upstream_reuse.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }
d=$(mktemp -d); up=19431; gwp=18431
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$d"' EXIT
python3 "$here/count_upstream.py" "$up" "$d/counts" &
cat > "$d/gw.toml" <<TOML
[server]
listen = "127.0.0.1:$gwp"
threads = $threads
data_dir = "data"
[[routes]]
path_prefix = "/"
upstream = "127.0.0.1:$up"
auth = false
TOML
"$bin" --conf "$d/gw.toml" 2> "$d/log" &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$gwp/" && break; sleep 0.1; done
sleep 1.2; read -r c0 r0 < "$d/counts"
wrk -t2 -c32 -d"${duration}s" "http://127.0.0.1:$gwp/x" > "$d/wrk.txt"
sleep 1.5; read -r c1 r1 < "$d/counts"
echo "threads=$threads upstream_connections=$((c1 - c0)) proxied_requests=$((r1 - r0))" \
  "error_lines=$(grep -c 'failed to acquire reusable stream' "$d/log" || true)" \
  "$(grep Requests/sec "$d/wrk.txt")"
