#!/usr/bin/env bash
# The test suite: unit tests, integration tests against the real binary, doc tests.
#
# The PostgreSQL store's tests need a server: TOKENGATE_TEST_PG (a url) when set, else the one
# on 127.0.0.1:5432 (user postgres, trust auth, database test). When neither answers, a
# throwaway cluster from Debian's postgresql package (installed if missing) is started in a
# temporary folder on a free port for the run, and stopped and removed after it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

# Whether something accepts connections on 127.0.0.1:$1.
answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_throwaway_postgres() {
  local bindir sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ]; then
    echo "test.sh: installing postgresql for the store's tests" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    bindir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  fi
  # The server refuses to run as root: root runs it as the postgres user.
  local as=()
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-pg.XXXXXX")
  if [ "$(id -u)" -eq 0 ]; then
    as=(runuser -u postgres --)
    chown postgres "$PG_DIR"
  fi
  local port=55432
  while answers "$port"; do port=$((port + 1)); done
  PG_CTL=("${as[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data")
  trap stop_throwaway_postgres EXIT
  "${as[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >"$PG_DIR/initdb.log"
  "${PG_CTL[@]}" -l "$PG_DIR/server.log" -w \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  "${as[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres test
  export TOKENGATE_TEST_PG="postgres://postgres@127.0.0.1:$port/test"
  echo "test.sh: PostgreSQL for the tests at $TOKENGATE_TEST_PG" >&2
}

stop_throwaway_postgres() {
  "${PG_CTL[@]}" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

if [ -z "${TOKENGATE_TEST_PG:-}" ] && ! answers 5432; then
  start_throwaway_postgres
fi
cargo test --locked "$@"
