#!/usr/bin/env bash
# The official postgres image's entrypoint, reduced to what the twin needs.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_PASSWORD:=}"
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
EOM
        exit 1
    fi
    log "initializing database in $PGDATA"
    pwfile=()
    if [ -n "$POSTGRES_PASSWORD" ]; then
        pwtmp=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwtmp"
        pwfile=(--pwfile="$pwtmp")
    fi
    initdb --username="$POSTGRES_USER" "${pwfile[@]}" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
    [ -n "${pwtmp:-}" ] && rm -f "$pwtmp"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\njit = off\n" >> "$PGDATA/postgresql.conf"

    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres \
            -h /var/run/postgresql -q -c "CREATE DATABASE \"$POSTGRES_DB\";"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
