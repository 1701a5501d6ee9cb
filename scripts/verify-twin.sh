#!/usr/bin/env bash
# Run the suite against the CI twin on this machine, from nothing: engine, base image, suite,
# twin bring-up (the guide's two-step command), all layers, teardown. Report in reports/.
# Extra arguments go to criobe-verify (e.g. --keep-up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/criobe-verify --stack twin "$@"
