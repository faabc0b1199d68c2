#!/usr/bin/env bash
# Starts a local PostgreSQL server for the study tests (idempotent; Debian, run as root).
#
#   eval "$(bash .ci/postgres.sh)"     # exports RNNBENCH_TEST_POSTGRES_URL
#
# Installs the Debian package `postgresql` if it is missing, starts the distribution's
# cluster (pg_ctlcluster; initdb + pg_ctl where there is none) listening on 127.0.0.1:5432,
# and creates role and database `rnnbench` (password `rnnbench`). Progress goes to stderr;
# stdout carries only the export line.
set -euo pipefail

PORT="${RNNBENCH_PG_PORT:-5432}"
URL="postgresql+psycopg://rnnbench:rnnbench@127.0.0.1:${PORT}/rnnbench"
log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "run as root (it installs a package and starts a server as the postgres user)"
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing the postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
BIN="/usr/lib/postgresql/${VERSION}/bin"
as_pg() { runuser -u postgres -- "$@"; }

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

if ready; then
  log "a server already answers on 127.0.0.1:${PORT}"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -z "${RNNBENCH_PG_NO_CLUSTER:-}" ]; then
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "${VERSION} main"; then
    log "creating cluster ${VERSION}/main"
    pg_createcluster "$VERSION" main -p "$PORT" >&2
  fi
  log "starting cluster ${VERSION}/main"
  pg_ctlcluster "$VERSION" main start >&2 || true
else
  DATA="${RNNBENCH_PG_DATA:-/var/lib/postgresql/rnnbench-ci}"
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    install -d -o postgres -g postgres "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" --auth-local=peer --auth-host=scram-sha-256 >&2
  fi
  install -d -o postgres -g postgres /var/run/postgresql
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-h 127.0.0.1 -p ${PORT} -k /var/run/postgresql" start >&2
fi

for _ in $(seq 1 60); do
  ready && break
  sleep 0.5
done
if ! ready; then
  log "the server did not come up on 127.0.0.1:${PORT}"
  exit 1
fi

psql_pg() { as_pg psql -h /var/run/postgresql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_pg -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rnnbench') THEN
    CREATE ROLE rnnbench LOGIN PASSWORD 'rnnbench';
  END IF; END \$\$;" >&2
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = 'rnnbench'")" != "1" ]; then
  psql_pg -c "CREATE DATABASE rnnbench OWNER rnnbench" >&2
fi
# A second role whose password appears nowhere else (not in a path, a role or a database
# name), so the secrets test can look for the bare password in every file and process.
CANARY_PW="Cv7-${RANDOM}q${RANDOM}zX"
psql_pg -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rnnbench_canary') THEN
    CREATE ROLE rnnbench_canary LOGIN;
  END IF; END \$\$;" >&2
psql_pg -c "ALTER ROLE rnnbench_canary PASSWORD '${CANARY_PW}'" >&2
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = 'rnnbench_canary'")" != "1" ]; then
  psql_pg -c "CREATE DATABASE rnnbench_canary OWNER rnnbench_canary" >&2
fi
log "ready: ${URL}"
echo "export RNNBENCH_TEST_POSTGRES_URL=${URL}"
echo "export RNNBENCH_TEST_POSTGRES_SECRET_URL=postgresql+psycopg://rnnbench_canary:${CANARY_PW}@127.0.0.1:${PORT}/rnnbench_canary"
