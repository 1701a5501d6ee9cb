#!/bin/sh
# Render the routing for CVAT_HOST (the value the real labels interpolate) and run nginx
# in the foreground as PID 1 (SIGTERM: fast shutdown).
set -eu
host="${CVAT_HOST:-localhost}"
case "$host" in
    *[!A-Za-z0-9.:_-]*|"") echo "traefik-twin: unusable CVAT_HOST '$host'" >&2; exit 1 ;;
esac
sed "s/@CVAT_HOST@/$host/g" /etc/traefik-twin/cvat.conf.template > /etc/nginx/conf.d/cvat.conf
echo "traefik-twin: entrypoint web :8080, routers cvat (Host($host) && PathPrefix(/api/, /static/, /admin, /documentation/, /django-rq)) and cvat-ui (Host($host))" >&2
exec nginx -g 'daemon off;'
