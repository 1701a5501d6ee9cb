#!/usr/bin/env bash
# criobe-verify twin of CVAT v2.29.0's backend_entrypoint.sh.
#   init          wait (bounded) for cvat_db, then apply the twin's migrations
#   run <conf>    wait for the database and the migrations, then exec supervisord with
#                 supervisord/<conf>.conf (server, worker.<queue>, utils), as CVAT's does
# Subcommands chain like CVAT's: `init run server`.
set -eu

# Files in /etc/cvat/init.d are sourced first, as in CVAT (its tests extend SMOKESCREEN_OPTS there).
for init_script in /etc/cvat/init.d/*; do
    if [ -r "$init_script" ]; then
        . "$init_script"
    fi
done

log() { printf '%s: %s\n' "$0" "$*" >&2; }
fail() { log "$1"; exit 1; }

# PID 1 gets no default signal actions: stop promptly on SIGTERM/SIGINT, also while a
# helper runs in the background (wait is interrupted by a trapped signal).
child=
on_signal() {
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi
    exit 143
}
trap on_signal TERM INT

helper() {
    python3 -m cvat_twin.migrate "$@" &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=
    return "$rc"
}

wait_for_db() {
    helper wait --timeout "${CVAT_TWIN_DB_WAIT_TIMEOUT:-120}"
}

cmd_bash() {
    exec bash "$@"
}

cmd_init() {
    wait_for_db
    helper apply
}

cmd_run() {
    if [ "$#" -ne 1 ]; then
        fail "run: expected 1 argument"
    fi
    wait_for_db
    echo "waiting for migrations to complete..."
    while ! helper check; do
        sleep 2 &
        child=$!
        wait "$child" || true
        child=
    done
    exec supervisord -c "supervisord/$1.conf"
}

if [ $# -eq 0 ]; then
    echo >&2 "$0: at least one subcommand required"
    echo >&2 ""
    echo >&2 "available subcommands:"
    echo >&2 "    bash <bash args...>"
    echo >&2 "    init"
    echo >&2 "    run <config name>"
    exit 1
fi

while [ $# -ne 0 ]; do
    if [ "$(type -t "cmd_$1")" != "function" ]; then
        fail "unknown subcommand: $1"
    fi
    cmd_name="$1"
    shift
    "cmd_$cmd_name" "$@"
done
