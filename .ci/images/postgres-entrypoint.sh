#!/bin/sh
# Entrypoint of the locally built Postgres image. It honours the part of the official
# `postgres` image's contract the harness relies on: POSTGRES_USER (default postgres),
# POSTGRES_PASSWORD (the superuser's password; TCP connections then need it, by
# scram-sha-256), POSTGRES_HOST_AUTH_METHOD (default scram-sha-256 with a password, trust
# without one), PGDATA, initdb on first start, listening on every address of the container,
# running as the postgres user, and extra arguments passed on to `postgres`
# (e.g. `-c shared_preload_libraries=pg_stat_statements`).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
else
    : "${POSTGRES_HOST_AUTH_METHOD:=trust}"
fi
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        # The password reaches initdb through a file of mode 0600, never its command line.
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
            --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" --no-sync >/dev/null
        rm -f "$pwfile"
    else
        "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" -A "$POSTGRES_HOST_AUTH_METHOD" --no-sync >/dev/null
    fi
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
fi
exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
