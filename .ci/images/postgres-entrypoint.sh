#!/bin/sh
# Entrypoint of the locally built Postgres image. It honours the part of the official
# `postgres` image's contract the harness relies on: POSTGRES_USER (default postgres),
# POSTGRES_HOST_AUTH_METHOD (default trust), PGDATA, initdb on first start, listening on every
# address, running as the postgres user, and extra arguments passed on to `postgres`
# (e.g. `-c shared_preload_libraries=pg_stat_statements`).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_HOST_AUTH_METHOD:=trust}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" -A "$POSTGRES_HOST_AUTH_METHOD" --no-sync >/dev/null
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
fi
exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
