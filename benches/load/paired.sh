#!/usr/bin/env bash
# A cluster node's bearer route against its public route, both at the same time: two identical
# cluster nodes (B and C) take one route each, with a wrk of their own, started together.
#
#   benches/load/paired.sh [SECONDS_PER_RUN=4] [ROUNDS=40]
#   env: CONNS=32 THREADS=1 CHECK=1 PG=postgres://postgres@127.0.0.1:5432/test GATEWAY=path
#        KEEP_ROUNDS=path
#
# Why: on this shared 2-core machine the rate of one run moves by up to 2x from one few-second run
# to the next, so two routes measured one after the other (cluster.sh) differ by the machine's
# hour as much as by their cost, and a difference of a percent or two needs hundreds of rounds to
# show. Measured at the same time, both routes see the same machine: a slow second slows both.
# The two gateways share one core (CPU 1; the clients and the upstream have CPU 0), so they also
# share whatever slows that core down. Both are saturated (their worker thread always has a
# request to serve) and the scheduler gives each about half the core, so the ratio of their
# rates is the inverse ratio of their cost per request. The harness prints the ratio of the two
# gateways' CPU times too: near 1 that reading holds.
#
# Each round runs two pairs: the bearer route against the public route given the very same
# request (its `Authorization` header, which a public route takes off and ignores), then against a
# bare public request. Odd rounds put the bearer route on B, even rounds on C, so that a
# difference between the two nodes cancels. With CHECK=1 (the default) a third pair runs the
# public route on both nodes: its ratio shows what the method itself tilts. Node A issues the
# token and serves nothing measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-4}
ROUNDS=${2:-40}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
CHECK=${CHECK:-1}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
source benches/load/common.sh
install_load_tools
install_tools python3
choose_gateway
create_bench_database

UP=18181
ports_free 18181 18191 18192 18193
start_nginx_upstream $UP
for node in "node-a 18191" "node-b 18192" "node-c 18193"; do
  read -r name port <<<"$node"
  start_bench_gateway "$name" "$port" "url = \"$DB_URL\""
done

for port in 18192 18193; do taskset -a -pc 1 "${PID[$port]}" >/dev/null; done
for p in $(pgrep -f "nginx.*$work"); do taskset -a -pc 0 "$p" >/dev/null; done

TOKEN=$(curl -s -u opaque-bearer:demo-secret -d grant_type=client_credentials http://127.0.0.1:18191/oauth2/token |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/')
# A run whose bearer route only measures refusals would be worthless: check the token first.
for port in 18192 18193; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/x")
  [ "$code" = 200 ] || { echo "paired.sh: the bearer route on :$port answered $code to A's token" >&2; exit 1; }
done

# Scenario indexes as in cluster.sh's record: 3 the bearer route, 5 the public route with the same
# request, 2 a bare public request; 6 is the bearer route in the pair with the bare request; 7
# and 8 the public route with the same request on both sides (CHECK=1).
results="$work/results"
: > "$results"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One side of a pair, in the background: wrk on 127.0.0.1:$1$2 with the bearer script when $3
# is set, its output in $work/out.$1.
side() {
  local args=(-t1 "-c$CONNS" "-d${DUR}s" --latency)
  [ -n "$3" ] && args+=(-s benches/load/bearer.lua)
  TOKEN=$TOKEN taskset -c 0 wrk "${args[@]}" "http://127.0.0.1:$1$2" > "$work/out.$1" &
}
record() { # round scenario port cpu-ticks
  local out="$work/out.$3" rps n cpu errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  n=$(awk '/requests in/ {print $1}' "$out")
  cpu=$(awk -v c="$4" -v t="$TICKS" -v n="$n" 'BEGIN { printf "%.2f", c / t * 1e6 / n }')
  errs=$(awk '/Non-2xx/ {print $5}' "$out"); errs=${errs:-0}
  echo "$1|$2|$rps||$errs|$cpu|$4" >> "$results"
  printf 'round %d  scenario %d on :%s  %10s req/s  non-2xx %s  gateway CPU %6s us/request\n' \
    "$1" "$2" "$3" "$rps" "$errs" "$cpu" >&2
}
# Two sides at once: scenario $2 (path $3, bearer script when $4 is set) on B in odd rounds and
# on C in even ones, scenario $5 (path $6, script when $7) on the other node.
pair() { # round scenario path script scenario path script
  local first=18192 second=18193 f0 s0 w
  (($1 % 2)) || { first=18193; second=18192; }
  f0=$(cpu_ticks "${PID[$first]}"); s0=$(cpu_ticks "${PID[$second]}")
  side $first "$3" "$4"; w=$!
  side $second "$6" "$7"
  wait "$w" "$!"
  record "$1" "$2" $first $(($(cpu_ticks "${PID[$first]}") - f0))
  record "$1" "$5" $second $(($(cpu_ticks "${PID[$second]}") - s0))
}
for round in $(seq 1 "$ROUNDS"); do
  pair "$round" 3 /api/x bearer 5 /public/x same
  pair "$round" 6 /api/x bearer 2 /public/x ""
  # The check of the method: the same scenario on both sides, where any ratio but 1 is the
  # harness's own (which node, which wrk starts first, how the core is shared).
  if ((CHECK)); then pair "$round" 7 /public/x same 8 /public/x same; fi
done

echo
echo "tokengate paired figures: two cluster nodes at once, wrk -t1 -c$CONNS each, ${DUR}s runs, $ROUNDS rounds, $THREADS worker thread(s) per gateway, nginx upstream, gateway $GATEWAY"
echo "bearer / public route on a cluster node, at the same time:"
echo "  the same request  rate $(paired 3 5);  CPU time $(paired 3 5 7)"
echo "                    $(python3 benches/load/rounds.py 3 5 "$results")"
echo "  a bare request    rate $(paired 6 2);  CPU time $(paired 6 2 7)"
echo "                    $(python3 benches/load/rounds.py 6 2 "$results")"
echo "  gateway CPU per request, bearer / public: same request $(paired 3 5 6 3); bare $(paired 6 2 6 3)"
if ((CHECK)); then
  echo "the public route against itself (the method's own bias; 1 expected):"
  echo "  rate $(paired 7 8);  $(python3 benches/load/rounds.py 7 8 "$results")"
fi
[ -z "${KEEP_ROUNDS:-}" ] || cp "$results" "$KEEP_ROUNDS"
