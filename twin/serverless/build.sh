#!/usr/bin/env bash
# Build a twin function image from a Nuclio function directory (function.yaml + main.py):
#
#   twin/serverless/build.sh FUNCTION_DIR [IMAGE]
#
# IMAGE defaults to criobe-twin/<metadata.name>:latest. NUCLIO_PROCESSOR_IMAGE names the base
# (default criobe-twin/nuclio-processor:latest); it is built from twin/images/nuclio-processor
# first when missing, with BASE_IMAGE and EXTRA_CA_CERT (PEM text; default: the host's
# /usr/local/share/ca-certificates/*.crt, which pip in the build needs behind an intercepting
# proxy). Deploy the image with spec.image set to IMAGE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: build.sh FUNCTION_DIR [IMAGE]}
[ -f "$dir/function.yaml" ] || { echo "build.sh: no function.yaml in $dir" >&2; exit 2; }
name=$(awk '/^metadata:/{m=1; next} m && /^[^ #]/{m=0} m && /^  name:/{gsub(/["'"'"']/, "", $2); print $2; exit}' "$dir/function.yaml")
[ -n "$name" ] || { echo "build.sh: no metadata.name in $dir/function.yaml" >&2; exit 2; }
image=${2:-criobe-twin/$name:latest}
base=${NUCLIO_PROCESSOR_IMAGE:-criobe-twin/nuclio-processor:latest}
if [ -z "${EXTRA_CA_CERT+x}" ]; then
  EXTRA_CA_CERT=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "[build.sh] building $base" >&2
  docker build -q --build-arg BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}" \
    --build-arg EXTRA_CA_CERT="$EXTRA_CA_CERT" -t "$base" "$here/../images/nuclio-processor" >/dev/null
fi
echo "[build.sh] building $image from $dir" >&2
docker build -q -f "$here/Dockerfile.function" --build-arg NUCLIO_PROCESSOR_IMAGE="$base" \
  -t "$image" "$dir" >/dev/null
echo "$image"
