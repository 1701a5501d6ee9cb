#!/usr/bin/env bash
# Proves pyproject.toml's lower bounds: a fresh .venv-lowest with every direct dependency (the dev
# extra included) at the lowest release its range allows, then the unit selftests there (the
# markers of scripts/selftest.sh's unit step; no Docker). The transitive dependencies come out
# newest, as in a lab's environment that meets our minimums. Prints the seconds it took.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/uv-version.sh
venv=.venv-lowest
# The markers of selftest.sh's own unit step, read from it, so that both run the same tests.
markers=$(sed -n '/^step "unit selftests"/,/^step /s/.* -m "\([^"]*\)".*/\1/p' scripts/selftest.sh)
if [ -z "$markers" ]; then
  echo '[lowest-deps] no step "unit selftests" with -m "..." in scripts/selftest.sh' >&2
  exit 2
fi

t0=$EPOCHREALTIME
# --clear: each run proves the bounds from nothing, not on what an earlier run left.
python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q "uv==${UV_VERSION}"
# uv resolves from PyPI itself (the lock cannot say what is lowest); it does not read pip's
# configuration, so this needs PyPI reachable directly.
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct \
  -e '.[dev]'
# A lower bound that cannot be met together with the others would make uv take a higher release
# without a word, and the tests would prove nothing about that bound: every direct dependency
# must be installed at exactly its lower bound.
"$venv/bin/python" - <<'PY'
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version

with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
wrong, lowest = [], []
for req in map(Requirement, reqs):
    floor = [s.version for s in req.specifier if s.operator in (">=", "==")]
    if not floor:
        wrong.append(f"{req}: no lower bound")
        continue
    got = version(req.name)
    lowest.append(f"{req.name}=={got}")
    if Version(got) != Version(floor[0]):
        wrong.append(f"{req.name}: {got} installed, {floor[0]} is the lower bound")
print("[lowest-deps]", " ".join(lowest))
if wrong:
    raise SystemExit("[lowest-deps] not at the lower bound:\n  " + "\n  ".join(wrong))
PY
t1=$EPOCHREALTIME

status=0
"$venv/bin/python" -m pytest -p no:cacheprovider selftests criobe_verify --doctest-modules \
  -m "$markers" -q || status=$?
t2=$EPOCHREALTIME

awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
  printf "[lowest-deps] install %.1f s, unit selftests %.1f s, total %.1f s\n", b - a, c - b, c - a
}' >&2
exit $status
