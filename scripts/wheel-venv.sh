#!/usr/bin/env bash
# Build the wheel from this checkout and install it, as a lab installs a tool, into a clean
# virtualenv beside PyPI's `fixtures` library (whose top-level name the suite must not take).
#
#   scripts/wheel-venv.sh [VENV]      # default .venv-wheel; prints the wheel's path
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-wheel}
rm -rf dist/criobe_verify-*.whl build
.venv/bin/pip wheel -q --no-deps -w dist . 2>&1 | grep -v "^WARNING: Location" >&2 || true
wheel=$(ls dist/criobe_verify-*.whl)
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q fixtures "$wheel" 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$venv/bin/criobe-verify" --help >/dev/null
echo "$wheel"
