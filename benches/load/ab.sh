#!/usr/bin/env bash
# A/B of two gateway binaries on the public and the bearer route, in alternating rounds of one
# run (nginx as the upstream, wrk as the client): did a change cost the request path anything?
#
#   benches/load/ab.sh OLD_BINARY NEW_BINARY [SECONDS_PER_RUN=5] [ROUNDS=5]   env: CONNS=32
#
# Build the old one from another worktree, e.g.
#   git worktree add ../old COMMIT && (cd ../old && cargo build --release --locked) && cp ../old/target/release/tokengate /tmp/old
# Prints requests/s per scenario (median of the rounds) and the ratios new / old, taken within
# each round.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1
NEW=$2
DUR=${3:-5}
ROUNDS=${4:-5}
CONNS=${CONNS:-32}
source benches/load/common.sh
install_load_tools
UP=18281
ports_free $UP 18290 18291
start_nginx_upstream $UP
start() { # name binary port
  mkdir -p "$work/$1"
  {
    cat <<TOML
[server]
listen = "127.0.0.1:$3"
threads = 1
data_dir = "data"
[oauth]
issuer = "http://127.0.0.1:$3"
TOML
    client_toml opaque-bearer opaque
    routes_toml $UP
  } > "$work/$1/gateway.toml"
  RUST_LOG=warn "$2" --conf "$work/$1/gateway.toml" 2>"$work/$1/log" & pids+=($!)
  wait_ready "$3" && return
  echo "ab.sh: $1 did not start: $(cat "$work/$1/log")" >&2; exit 1
}
start old "$OLD" 18290
start new "$NEW" 18291
token() { curl -s -u opaque-bearer:demo-secret -d grant_type=client_credentials "http://127.0.0.1:$1/oauth2/token" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
declare -A TOKEN=([18290]=$(token 18290) [18291]=$(token 18291))
results="$work/results"
: > "$results"
for r in $(seq 1 "$ROUNDS"); do
  for scenario in old-public new-public old-bearer new-bearer; do
    port=18290; [[ $scenario == new-* ]] && port=18291
    if [[ $scenario == *-public ]]; then
      out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$port/public/x")
    else
      out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" -H "Authorization: Bearer ${TOKEN[$port]}" "http://127.0.0.1:$port/api/x")
    fi
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    printf '%s|%s|%s|%s\n' "$r" "$scenario" "$rps" "${bad:-0}" >> "$results"
    printf 'round %s %-11s %10s req/s  non-2xx %s\n' "$r" "$scenario" "$rps" "${bad:-0}"
  done
done
echo
for s in old-public new-public old-bearer new-bearer; do
  printf '%-11s %10s req/s (median)\n' "$s" "$(awk -F'|' -v n="$s" '$2 == n {print $3}' "$results" | median)"
done
echo "new / old, public route:  $(paired new-public old-public)"
echo "new / old, bearer route:  $(paired new-bearer old-bearer)"
echo "bearer / public, old:     $(paired old-bearer old-public)"
echo "bearer / public, new:     $(paired new-bearer new-public)"
