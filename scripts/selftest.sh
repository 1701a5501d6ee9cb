#!/usr/bin/env bash
# The project's own tests, from nothing: lint, unit selftests, then with the twin down the
# preinstall faults, then the suite against the twin (strict: no unexpected skip), then every
# fault of the fault table injected into the twin, then teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

# The twin's image builds fetch from PyPI over HTTPS: where this machine trusts CAs of its own
# (intercepted HTTPS), they must too. criobe-verify --stack twin passes them itself
# (criobe_verify/compose.py); the image selftests build outside it.
if [ -z "${EXTRA_CA_CERT:-}" ] && ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  EXTRA_CA_CERT=$(cat /usr/local/share/ca-certificates/*.crt)
  export EXTRA_CA_CERT
fi

step "bootstrap (engine, base image, .venv)"
bash scripts/bootstrap.sh

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "unit selftests"
.venv/bin/python -m pytest -p no:cacheprovider selftests criobe_verify --doctest-modules \
  -m "not twin and not twin_preinstall and not twin_images and not nuclio_twin and not lambda_twin and not wheel" -q

step "unit selftests on the lowest release of every dependency's range (.venv-lowest)"
bash scripts/lowest-deps.sh

step "the wheel: built from this checkout, installed in a clean venv beside PyPI's fixtures"
bash scripts/wheel-venv.sh .venv-wheel
.venv/bin/python -m pytest -p no:cacheprovider selftests/test_wheel.py -m wheel -q

step "twin images under test tags (beside any running twin)"
.venv/bin/python -m pytest -p no:cacheprovider selftests -m twin_images -q

step "Nuclio dashboard twin and function runtime conformance (private dashboard, own network)"
.venv/bin/python -m pytest -p no:cacheprovider selftests/test_nuclio_twin.py -m nuclio_twin -q \
  --junitxml=reports/nuclio-twin-junit.xml

step "CVAT lambda manager conformance (private twin criobelambda, stub dashboard and functions)"
.venv/bin/python -m pytest -p no:cacheprovider selftests/test_cvat_lambda_conformance.py \
  -m lambda_twin -q --junitxml=reports/lambda-twin-junit.xml

step "twin down for the preinstall phase (left over from an earlier run?)"
bash scripts/twin.sh down

step "preinstall phase and its faults"
.venv/bin/python -m pytest -p no:cacheprovider selftests/test_faults.py -m twin_preinstall -q

# As a lab runs it: the installed wheel, from a folder outside the checkout.
step "the suite against the twin, from the wheel, outside the checkout (criobe-verify --stack twin --keep-up)"
root=$(pwd)
(cd "$(mktemp -d)" && "$root/.venv-wheel/bin/criobe-verify" --stack twin --keep-up --reports "$root/reports")

# The selftests below drive the twin from the checkout's copy of its files. Its one bind mount
# (traefik's rules file) named the wheel's copy, so compose would recreate traefik at the
# first fault's restore: do it here, once, and wait until the stack is ready again.
step "the twin adopted by the checkout's compose files (traefik recreated)"
.venv/bin/python -c 'import tempfile, pathlib; from selftests.twin import Twin
Twin(pathlib.Path(tempfile.mkdtemp())).restore("traefik")'

status=0
step "twin conformance: recorded CVAT exchanges, cvat-sdk flow, Smokescreen truth table, baselines, an attach run changes nothing, upgrades named by the regression layer, interrupted and concurrent runs"
.venv/bin/python -m pytest -p no:cacheprovider -m twin -q \
  selftests/test_cvat_conformance.py selftests/test_cvat_sdk_flow.py \
  selftests/test_smokescreen_twin.py selftests/test_cli.py selftests/test_baseline.py \
  selftests/test_non_destructive.py \
  selftests/test_answer_drift.py selftests/test_upgrades.py selftests/test_interrupt.py \
  --junitxml=reports/conformance-junit.xml || status=$?

# Faults CI leaves out (selftests/fault_table.py NOT_IN_CI): "slow" ones take the whole stack
# down and up again (wrong-compose-project, 90 s); "unit-proven" ones are one more rule of a
# checker a unit selftest proves rule by rule. Every check they name is also named by a fault
# CI runs (test_fault_table.py). SLOW_FAULTS=1 runs them too.
faults="twin and not slow_fault"
[ "${SLOW_FAULTS:-0}" = 1 ] && faults="twin"
step "fault table against the running twin ($faults)"
.venv/bin/python -m pytest -p no:cacheprovider selftests/test_faults.py -m "$faults" -v \
  --junitxml=reports/faults-junit.xml || status=$?

if [ "${KEEP_UP:-0}" != 1 ]; then
  step "twin down"
  bash scripts/twin.sh down
fi
step "done (exit $status)"
exit $status
