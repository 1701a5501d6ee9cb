#!/usr/bin/env bash
# Start or stop the CI twin with the guide's files plus docker-compose.ci.yml.
#   scripts/twin.sh down     stop the twin (volumes kept); refuses if cvat_server is not the twin's
#   scripts/twin.sh ps       what runs
# (`criobe-verify --stack twin` brings it up itself.)
set -euo pipefail
cd "$(dirname "$0")/.."
compose() {
  docker compose --project-directory twin -p cvat \
    -f twin/docker-compose.yml -f twin/bridge/docker-compose.bridge.yml \
    -f twin/components/serverless/docker-compose.serverless.yml -f docker-compose.ci.yml "$@"
}
case "${1:-}" in
  down)
    image=$(docker inspect -f '{{.Config.Image}}' cvat_server 2>/dev/null || true)
    if [ -n "$image" ] && [ "${image#criobe-twin/}" = "$image" ]; then
      echo "twin.sh: cvat_server runs $image, not the twin: not touching it" >&2
      exit 1
    fi
    # The twin's function containers are the dashboard's, not compose services: they go
    # first (they hold the network), with their processor-config volumes; a lab's own
    # functions (other images) are not touched.
    for c in $(docker ps -aq --filter label=nuclio.io/platform=local); do
      fimage=$(docker inspect -f '{{.Config.Image}}' "$c")
      [ "${fimage#criobe-twin/}" != "$fimage" ] || continue
      name=$(docker inspect -f '{{.Name}}' "$c"); name=${name#/}
      docker rm -f "$c" >/dev/null
      docker volume rm "$name" >/dev/null 2>&1 || true
    done
    compose down --remove-orphans
    ;;
  ps) compose ps ;;
  *) echo "usage: $0 down|ps" >&2; exit 2 ;;
esac
