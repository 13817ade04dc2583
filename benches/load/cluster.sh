#!/usr/bin/env bash
# Cluster harness: the PostgreSQL store against the embedded SQLite store, and a cluster node's
# bearer route against its public route, in alternating rounds of one run; then how fast a
# revocation reaches the other node.
#
#   benches/load/cluster.sh [SECONDS_PER_RUN=10] [ROUNDS=3] [REVOCATIONS=500]
#   env: CONNS=32 ISSUE_CONNS=128 THREADS=1 PATH_ROUNDS=2xROUNDS PIN=0
#        PG=postgres://postgres@127.0.0.1:5432/test GATEWAY=path KEEP_ROUNDS=path
#
# Two cluster nodes (A and B) share a database created for the run on the PostgreSQL server PG
# names; a third gateway uses SQLite. Issuance runs on A and on the SQLite gateway with the same
# config (opaque tokens, multi mode: every request writes a token), with ISSUE_CONNS connections:
# a client waits for its token's commit, so with too few of them a store's rate is its commit
# latency and not what it can write (at 32, PostgreSQL left a quarter of the CPU idle; at 128 both
# stores keep the machine busy).
#
# The request path runs on B: the public route, and the bearer route with a token A issued. The
# public route is measured twice: with a bare request, and with the very request the bearer route
# gets (the same `Authorization` header, which a public route takes off and ignores). The second
# pair differs only in what the gateway does, the check and the identity headers; the first also
# in the 60-odd bytes more the client sends and the gateway reads. The bearer route also runs on
# the SQLite gateway, to tell what cluster mode adds to a bearer check from what the check costs
# on any gateway. These run first, PATH_ROUNDS rounds, in one order and then the reverse (the
# bearer route always between the two public ones, so each ratio within a round compares runs
# next to each other in time, and a drift over a pair of rounds favours neither side); a
# ratio is given as the median over the rounds and its interquartile range. Beside each rate the harness reports the
# gateway's CPU time per request (user + system, from /proc): a second view of the same cost,
# though on a shared machine it moves with the hour too. The rounds' ratios still spread widely
# when the machine is busy; benches/load/paired.sh measures the two routes at the same time
# instead, which takes most of that spread away.
#
# Propagation: a token is issued at A and used once at B (so B holds it), then revoked at A; the
# delay is from A's 200 to the first 401 at B (polled on a kept-alive connection), over
# REVOCATIONS revocations.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
ROUNDS=${2:-3}
REVOCATIONS=${3:-500}
CONNS=${CONNS:-32}
ISSUE_CONNS=${ISSUE_CONNS:-128}
THREADS=${THREADS:-1}
PATH_ROUNDS=${PATH_ROUNDS:-$((2 * ROUNDS))}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
source benches/load/common.sh
install_load_tools
install_tools python3
choose_gateway
create_bench_database

UP=18181
ports_free 18181 18190 18191 18192
start_nginx_upstream $UP

start_bench_gateway sqlite 18190 ""
start_bench_gateway node-a 18191 "url = \"$DB_URL\""
start_bench_gateway node-b 18192 "url = \"$DB_URL\""
# With PIN=1 the gateways get CPU 1 and the client and upstream CPU 0: the gateway measured then
# has a core to itself, so a rate tells its cost per request with less of the scheduler's noise.
WRK=(wrk)
if [ "${PIN:-0}" = 1 ]; then
  for p in "${PID[@]}"; do taskset -a -pc 1 "$p" >/dev/null; done
  for p in $(pgrep -f "nginx.*$work"); do taskset -a -pc 0 "$p" >/dev/null; done
  WRK=(taskset -c 0 wrk)
fi

token() { curl -s -u "$2:demo-secret" -d grant_type=client_credentials "http://127.0.0.1:$1/oauth2/token" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
OPAQUE=$(token 18191 opaque-bearer)
SQLITE_OPAQUE=$(token 18190 opaque-bearer)
BASIC=$(printf 'opaque-app:demo-secret' | base64)
# A run whose bearer scenarios only measure refusals would be worthless: check the tokens first.
for check in "18192 $OPAQUE" "18190 $SQLITE_OPAQUE"; do
  read -r port tok <<<"$check"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/api/x")
  [ "$code" = 200 ] || { echo "cluster.sh: the bearer route on :$port answered $code to its token" >&2; exit 1; }
done

# name|url|script|env
scenarios=(
  "issue opaque multi, SQLite (durable)|http://127.0.0.1:18190/oauth2/token|token.lua|BASIC=$BASIC"
  "issue opaque multi, PostgreSQL|http://127.0.0.1:18191/oauth2/token|token.lua|BASIC=$BASIC"
  "public route, node B|http://127.0.0.1:18192/public/x||"
  "opaque bearer route, node B|http://127.0.0.1:18192/api/x|bearer.lua|TOKEN=$OPAQUE"
  "opaque bearer route, SQLite gateway|http://127.0.0.1:18190/api/x|bearer.lua|TOKEN=$SQLITE_OPAQUE"
  "public route, node B, same request|http://127.0.0.1:18192/public/x|bearer.lua|TOKEN=$OPAQUE"
)
# Bearer on node B between its two public scenarios; the SQLite gateway's bearer route beside.
request_path=(5 3 2 4)
results="$work/results"
: > "$results"
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # round scenario-index
  local name url script envs port before out rps p99 errs n cpu
  IFS='|' read -r name url script envs <<<"${scenarios[$2]}"
  port=${url#http://127.0.0.1:}; port=${port%%/*}
  local conns=$CONNS
  (($2 <= 1)) && conns=$ISSUE_CONNS
  args=(-t1 "-c$conns" "-d${DUR}s" --latency)
  [ -n "$script" ] && args+=(-s "benches/load/$script")
  before=$(cpu_ticks "${PID[$port]}")
  out=$(env $envs "${WRK[@]}" "${args[@]}" "$url")
  cpu=$(( $(cpu_ticks "${PID[$port]}") - before ))
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v c="$cpu" -v t="$TICKS" -v n="$n" 'BEGIN { printf "%.2f", c / t * 1e6 / n }')
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errs=$(awk '/Non-2xx/ {print $5}' <<<"$out"); errs=${errs:-0}
  echo "$1|$2|$rps|$p99|$errs|$cpu" >> "$results"
  printf 'round %d  %-38s %10s req/s  p99 %8s ms  non-2xx %s  gateway CPU %6s us/request\n' \
    "$1" "$name" "$rps" "$p99" "$errs" "$cpu" >&2
}
# The request path first, while the database is small and idle: issuance leaves PostgreSQL and
# SQLite work to do afterwards (checkpoints, vacuum), which would land on whatever runs next.
for round in $(seq 1 "$PATH_ROUNDS"); do
  order=("${request_path[@]}")
  ((round % 2)) || order=("${order[3]}" "${order[2]}" "${order[1]}" "${order[0]}")
  for i in "${order[@]}"; do measure "$round" "$i"; done
done
# Issuance: SQLite first in odd rounds, PostgreSQL first in even ones.
for round in $(seq 1 "$ROUNDS"); do
  if ((round % 2)); then measure "$round" 0; measure "$round" 1; else measure "$round" 1; measure "$round" 0; fi
done

echo
echo "tokengate cluster figures: wrk -t1 -c$CONNS (issuance -c$ISSUE_CONNS), ${DUR}s runs, $PATH_ROUNDS rounds of the request path then $ROUNDS of issuance, $THREADS worker thread(s) per gateway, nginx upstream, gateway $GATEWAY"
printf '%-38s %12s %10s %8s %12s\n' scenario "req/s (med)" "p99 ms" non-2xx "CPU us/req"
column_median() { awk -F'|' -v i="$1" -v c="$2" '$2 == i {print $c}' "$results" | median; }
declare -A RPS CPU
for i in "${!scenarios[@]}"; do
  IFS='|' read -r name _ <<<"${scenarios[$i]}"
  RPS[$i]=$(column_median "$i" 3)
  CPU[$i]=$(column_median "$i" 6)
  errs=$(awk -F'|' -v i="$i" '$2 == i {s += $5} END {print s + 0}' "$results")
  printf '%-38s %12.0f %10.3f %8s %12.2f\n' "$name" "${RPS[$i]}" "$(column_median "$i" 4)" "$errs" "${CPU[$i]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
# The ratios within rounds first: each compares runs next to each other in time. The ratio of
# the medians beside it mixes rounds of different hours.
echo "PostgreSQL / SQLite durable issuance            per round: $(paired 1 0) (target >= 0.50); ratio of medians $(ratio "${RPS[1]}" "${RPS[0]}")"
echo "bearer / public route on a cluster node:"
echo "  the same request                              per round: $(paired 3 5) (target >= 0.97); ratio of medians $(ratio "${RPS[3]}" "${RPS[5]}")"
echo "  a bare public request                         per round: $(paired 3 2); ratio of medians $(ratio "${RPS[3]}" "${RPS[2]}")"
echo "  gateway CPU per request, bearer / public:     same request $(paired 3 5 6 3); bare $(paired 3 2 6 3)"
echo "bearer route, cluster node / one node           per round: $(paired 3 4) (what cluster mode adds to a bearer check); ratio of medians $(ratio "${RPS[3]}" "${RPS[4]}")"
# How sure those medians are: a bootstrap over the rounds. KEEP_ROUNDS keeps the rounds' record, so
# that runs of one binary in different hours can be pooled (benches/load/rounds.py 3 5 FILE...).
echo "bearer / public, bootstrap 90 % interval of the median over the rounds:"
echo "  the same request: $(python3 benches/load/rounds.py 3 5 "$results")"
echo "  a bare request:   $(python3 benches/load/rounds.py 3 2 "$results")"
[ -z "${KEEP_ROUNDS:-}" ] || cp "$results" "$KEEP_ROUNDS"
echo
python3 benches/load/propagation.py 18191 18192 "$REVOCATIONS"
