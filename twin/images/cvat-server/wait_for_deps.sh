#!/bin/sh
# criobe-verify twin of CVAT v2.29.0's wait_for_deps.sh: supervisord's programs start through
# it, so a program whose database or Redis is not up yet waits (without a timeout, as in CVAT)
# instead of crashing into supervisord's FATAL. No `set -e`, as in CVAT: an unset host only
# makes wait-for-it complain, and the program starts anyway.
#
#   wait_for_deps.sh python3 ~/manage.py rqworker -v 3 webhooks ...

wait-for-it "${CVAT_POSTGRES_HOST}:${CVAT_POSTGRES_PORT:-5432}" -t 0
wait-for-it "${CVAT_REDIS_INMEM_HOST}:${CVAT_REDIS_INMEM_PORT}" -t 0
wait-for-it "${CVAT_REDIS_ONDISK_HOST}:${CVAT_REDIS_ONDISK_PORT}" -t 0

exec "$@"
