#!/usr/bin/env bash
# Everything the suite needs on a fresh Debian machine, idempotently: a Docker engine with
# Compose v2, the base image the twin builds from, and the suite in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-docker.sh
bash scripts/build-base-image.sh

if [ ! -x .venv/bin/criobe-verify ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "[bootstrap] installing the suite into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi
