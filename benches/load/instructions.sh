#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: the public route (a bare request, and
# the very request the bearer route gets, its `Authorization` header ignored) against the opaque
# bearer route, on one gateway thread. A count does not move with the hour or the neighbours the
# way a rate does, so it tells a change of a percent or two that the load harness cannot see.
# User space only: the kernel's share (the sockets) is not counted. valgrind hides SHA-NI, so
# SHA-256 counts for several times what it costs natively; its share is printed apart.
#
#   benches/load/instructions.sh [BINARY...]   env: SECONDS_PER_RUN=6 ROUNDS=2 PG=url KEEP=dir
#
# With several binaries (an A/B: build the old one in another worktree) each is measured in
# turn. With PG set (postgres://...) the gateway runs as a cluster node on a database created
# for the run; otherwise on the embedded store. KEEP names a folder to keep the callgrind dumps
# in (cg.PID.N, one per scenario and round), for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${SECONDS_PER_RUN:-6}
ROUNDS=${ROUNDS:-2}
source benches/load/common.sh
install_tools wrk nginx=nginx-light curl valgrind
if (($# == 0)); then
  scripts/deps.sh
  cargo build --release --locked --bin tokengate 2>&1 | tail -1
  set -- ./target/release/tokengate
fi
UP=18381; PORT=18390
ports_free $UP $PORT
start_nginx_upstream $UP
store=""
if [ -n "${PG:-}" ]; then
  DB="tokengate_instr_$$"
  psql "$PG" -qc "CREATE DATABASE $DB" >/dev/null
  trap 'cleanup; psql "$PG" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
  store="[store]
url = \"${PG%/*}/$DB\""
fi

# Counts one scenario: a warm-up, counters zeroed, a wrk run, a dump named after it.
count() { # label path with-token
  local h=() out n
  [ "$3" = 1 ] && h=(-H "Authorization: Bearer $TOKEN")
  wrk -t1 -c4 -d2s "${h[@]}" "http://127.0.0.1:$PORT$2" >/dev/null
  callgrind_control -z "$GW_PID" >/dev/null 2>&1
  out=$(wrk -t1 -c4 -d"${DUR}s" "${h[@]}" "http://127.0.0.1:$PORT$2")
  callgrind_control --dump="$1" "$GW_PID" >/dev/null 2>&1
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  [ -z "$(awk '/Non-2xx/' <<<"$out")" ] || { echo "instructions.sh: $1 got non-2xx answers" >&2; exit 1; }
  echo "$1 $n" >> "$work/counts"
}
# Instructions per request of a dump: all, and SHA-256's compression.
per_request() { # dump-file requests
  local all sha
  all=$(awk '/^summary:/ {print $2; exit}' "$1")
  sha=$(callgrind_annotate --inclusive=no --threshold=100 "$1" 2>/dev/null | awk '/compress256/ {gsub(",", "", $1); s += $1} END {print s + 0}')
  awk -v a="$all" -v s="$sha" -v n="$2" 'BEGIN { printf "%9.0f %9.0f", a / n, s / n }'
}

: > "$work/counts"
b=0
for binary in "$@"; do
  b=$((b + 1))
  dir="$work/gw$b"; mkdir -p "$dir"
  { printf '[server]\nlisten = "127.0.0.1:%s"\nthreads = 1\ndata_dir = "data"\n%s\n[oauth]\nissuer = "http://tokengate.bench"\n' "$PORT" "$store"
    client_toml opaque-bearer opaque; routes_toml $UP; } > "$dir/gateway.toml"
  binary=$(realpath "$binary")
  (cd "$dir" && RUST_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$binary" --conf gateway.toml 2>log) &
  GW_PID=$!; pids+=("$GW_PID")
  wait_ready "$PORT" 1200 || { echo "instructions.sh: the gateway did not start under valgrind" >&2; exit 1; }
  TOKEN=$(curl -s -u opaque-bearer:demo-secret -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  for r in $(seq 1 "$ROUNDS"); do
    count "$b-public-$r" /public/x 0
    count "$b-public_same_request-$r" /public/x 1
    count "$b-bearer-$r" /api/x 1
  done
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
done

echo "callgrind, user-space instructions per proxied request (wrk -t1 -c4, ${DUR}s counted per run; SHA-256 compression apart)"
printf '%-8s %-22s %5s %9s %9s\n' binary scenario round all sha256
for f in "$work"/gw*/cg.*.*; do
  label=$(awk '/^desc: Trigger: dump / {print $NF; exit}' "$f")
  n=$(awk -v l="$label" '$1 == l {print $2}' "$work/counts")
  IFS=- read -r bin scenario round <<<"$label"
  printf '%-8s %-22s %5s %s\n' "${!bin}" "$scenario" "$round" "$(per_request "$f" "$n")"
done | sort -k1,1 -k3,3n -k2,2
[ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$work"/gw*/cg.*.* "$KEEP"/; }
