#!/usr/bin/env bash
# Cluster mode on one machine: two tokengate nodes (conf/cluster-a.toml on 127.0.0.1:8080,
# conf/cluster-b.toml on 127.0.0.1:8081) sharing the PostgreSQL database `tokengate`, and the demo
# upstream on 127.0.0.1:9000. Health and metrics: 127.0.0.1:9090 (A) and 127.0.0.1:9091 (B).
# docs/cluster.md explains what the cluster promises and how to put a load balancer in front.
#
#   scripts/run-cluster.sh                          # build, create the database if missing, run
#   PGHOST=db.local PGPORT=5433 scripts/run-cluster.sh   # another PostgreSQL server
#   GATEWAY=path scripts/run-cluster.sh             # run that tokengate binary instead of building one
#
# The database is created with psql/createdb as PGUSER (default postgres) on PGHOST (default
# 127.0.0.1) and PGPORT (default 5432); a password, if the server asks for one, comes from
# PGPASSWORD or ~/.pgpass as usual. Node A starts first (it generates the shared keys in
# data/cluster-keys/ when they are absent), then node B.
#
# Ctrl-C, SIGTERM or SIGHUP to this script stops both nodes (gracefully: SIGTERM) and the demo
# upstream, and waits for them; so does either node exiting. Each child runs in a process group
# of its own, so a Ctrl-C reaches this script alone and each child gets exactly one SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
database=tokengate

for tool in psql createdb curl; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "run-cluster.sh: $tool is required (Debian: apt-get install postgresql-client curl)" >&2
    exit 1
  }
done

exists=$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'") || {
  echo "run-cluster.sh: cannot reach PostgreSQL at $PGHOST:$PGPORT as $PGUSER" >&2
  exit 1
}
if [ "$exists" != 1 ]; then
  createdb "$database"
  echo "run-cluster.sh: created the database $database on $PGHOST:$PGPORT" >&2
fi

if [ -n "${GATEWAY:-}" ]; then
  bin=$GATEWAY
else
  scripts/deps.sh
  cargo build --release --locked
  bin="${CARGO_TARGET_DIR:-target}/release/tokengate"
fi

# The bundled files name postgres@127.0.0.1:5432: for another server, run copies that name it
# (in data/cluster-conf/, two levels below the repository, hence the paths' extra ../).
confs=(conf/cluster-a.toml conf/cluster-b.toml)
url="postgres://$PGUSER@$PGHOST:$PGPORT/$database"
if [ "$url" != "postgres://postgres@127.0.0.1:5432/$database" ]; then
  mkdir -p data/cluster-conf
  for i in 0 1; do
    copy="data/cluster-conf/$(basename "${confs[$i]}")"
    sed -e "s|^url = \"postgres://[^\"]*\"|url = \"$url\"|" -e 's|"\.\./data/|"../../data/|g' \
      "${confs[$i]}" >"$copy"
    confs[i]=$copy
  done
fi

children=()
stop() {
  trap - EXIT INT TERM HUP
  if ((${#children[@]})); then
    kill -TERM "${children[@]}" 2>/dev/null || true
    wait "${children[@]}" 2>/dev/null || true
  fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

# Waits until the health endpoint at $1 answers, or the process $2 is gone.
ready() {
  for _ in $(seq 1 300); do
    curl -fs "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

set -m # job control: each background child in a process group of its own
"$bin" demo-upstream --listen 127.0.0.1:9000 &
children+=("$!")
"$bin" --conf "${confs[0]}" &
node_a=$!
children+=("$node_a")
ready http://127.0.0.1:9090/healthz "$node_a" || {
  echo "run-cluster.sh: node A did not start (its log is above)" >&2
  exit 1
}
"$bin" --conf "${confs[1]}" &
node_b=$!
children+=("$node_b")
ready http://127.0.0.1:9091/healthz "$node_b" || {
  echo "run-cluster.sh: node B did not start (its log is above)" >&2
  exit 1
}

cat >&2 <<EOF

run-cluster.sh: two nodes on the database $database at $PGHOST:$PGPORT
  node A  http://127.0.0.1:8080   health http://127.0.0.1:9090/healthz?detail
  node B  http://127.0.0.1:8081   health http://127.0.0.1:9091/healthz?detail
A token from one node works at the other at once:
  TOKEN=\$(curl -s -u orders-app:demo-secret -d grant_type=client_credentials \\
    http://127.0.0.1:8080/oauth2/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')
  curl -i -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8081/api/orders/42
Ctrl-C stops both.
EOF

# Returns when either node exits, or at once when a trapped signal arrives (the trap stops all).
wait -n "$node_a" "$node_b"
