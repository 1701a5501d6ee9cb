#!/bin/sh
# The official redis image's entrypoint: first arg `-f` or `*.conf` -> redis-server; as root,
# fix the data directory's owner and drop to user redis; protected mode off unless a config
# file sets it.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    # the data directory: --dir <d> if given, else the working directory
    dir=.
    prev=
    for arg in "$@"; do
        if [ "$prev" = '--dir' ]; then dir=$arg; fi
        prev=$arg
    done
    mkdir -p "$dir"
    find "$dir" \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = 'redis-server' ]; then
    doProtectedMode=1
    configFile=
    if [ -f "$2" ]; then
        configFile="$2"
        if grep -q '^protected-mode' "$configFile"; then
            doProtectedMode=
        fi
    fi
    if [ "$doProtectedMode" ]; then
        shift
        if [ "$configFile" ]; then
            shift
        fi
        set -- --protected-mode no "$@"
        if [ "$configFile" ]; then
            set -- "$configFile" "$@"
        fi
        set -- redis-server "$@"
    fi
fi

umask 0077
exec "$@"
