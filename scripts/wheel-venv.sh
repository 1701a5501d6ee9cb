#!/usr/bin/env bash
# Build the wheel from this checkout and install it, as a lab installs a tool, into a clean
# virtualenv beside PyPI's `fixtures` library (whose top-level name the suite must not take).
#
#   scripts/wheel-venv.sh [VENV]      # default .venv-wheel; prints the wheel's path
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-wheel}
# pip, without the warnings of this machine's index configuration, failing as pip fails.
quiet_pip() {
  "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
  return "${PIPESTATUS[0]}"
}
rm -rf dist/criobe_verify-*.whl build
quiet_pip .venv/bin/pip wheel -q --no-deps -w dist .
wheel=$(ls dist/criobe_verify-*.whl)
rm -rf "$venv"
python3 -m venv "$venv"
# The suite's dependencies at the lock's releases (no dev extra: what a lab's install gets),
# then the wheel itself, and PyPI's `fixtures` beside it.
.venv/bin/uv export --quiet --locked --offline --no-emit-project --output-file "$venv/requirements.lock.txt"
quiet_pip "$venv/bin/pip" install -q --no-deps -r "$venv/requirements.lock.txt"
quiet_pip "$venv/bin/pip" install -q --no-deps "$wheel"
quiet_pip "$venv/bin/pip" install -q fixtures
"$venv/bin/pip" check >&2
"$venv/bin/criobe-verify" --help >/dev/null
echo "$wheel"
