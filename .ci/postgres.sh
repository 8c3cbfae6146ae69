# Sourced by .ci/run: makes a throwaway PostgreSQL cluster available to the tests and
# exports ERPOS_TEST_POSTGRES_URL, unless that variable is already set. Installs Debian's
# postgresql when no server binaries are found. The cluster is stopped on exit.

if [ -n "${ERPOS_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL: using ERPOS_TEST_POSTGRES_URL from the environment"
  return 0
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  echo "PostgreSQL: installing Debian's postgresql"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGTMP=$(mktemp -d)
[ "$(id -u)" = 0 ] && chown postgres: "$PGTMP"
PGPORT=${ERPOS_TEST_PGPORT:-55432}
as_postgres "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w \
  -o "-k $PGTMP -c listen_addresses=127.0.0.1 -p $PGPORT -c fsync=off -c max_connections=300" start >/dev/null
stop_postgres() {
  as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
}
trap stop_postgres EXIT
export ERPOS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
echo "PostgreSQL: throwaway cluster $("$PGBIN/postgres" --version) on port $PGPORT"
