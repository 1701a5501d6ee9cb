"""The criobe-verify pytest plugin, registered through the `pytest11` entry point.

    criobe-verify --stack twin                               # the CLI runs pytest with it
    pytest --pyargs criobe_verify.tests --profile lab.toml   # from a lab's own pytest project

It is inert in a session that does not ask for the suite: installing criobe-verify beside a
lab's own tests reads no profile, starts no thread and changes no test of theirs. The session
asks for it when the suite's checks are among its arguments (their folder or
`--pyargs criobe_verify.tests`), when one of the suite's options is given on the command
line (`--profile`, `--stack`, `--layer`, …), or when its ini file says `criobe_verify = true`
(a project of layer-marked checks of its own). `suite_active(config)` tells every hook.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from criobe_verify.bad_input import InputError
from criobe_verify.paths import CHECKS_DIR

pytest_plugins = [
    "criobe_verify.fixtures.layers",
    "criobe_verify.fixtures.stack",
    "criobe_verify.fixtures.docker",
    "criobe_verify.fixtures.host",
    "criobe_verify.fixtures.gateway",
    "criobe_verify.fixtures.cvat",
    "criobe_verify.fixtures.receiver",
    "criobe_verify.fixtures.nuclio",
    "criobe_verify.fixtures.gpu",
    "criobe_verify.fixtures.sample",
    "criobe_verify.fixtures.pipeline",
    "criobe_verify.fixtures.reach",
    "criobe_verify.fixtures.prefetch",
    "criobe_verify.fixtures.report",
    "criobe_verify.fixtures.baseline",
    "criobe_verify.fixtures.regression",
]

ACTIVE = pytest.StashKey[bool]()
# The suite's options and their defaults (filled by pytest_addoption): one given on the
# command line asks for the suite.
OPTION_DEFAULTS: dict[str, object] = {}
# Their names, for the nearest one to a misspelt option.
OPTION_NAMES: list[str] = []
CHECKS_PACKAGE = "criobe_verify.tests"


def _names_the_checks(arg: str, rootdir: Path, pyargs: bool) -> bool:
    """Whether a command-line argument selects (some of) the suite's checks."""
    target = arg.split("::", 1)[0]
    if pyargs and (target == CHECKS_PACKAGE or target.startswith(CHECKS_PACKAGE + ".")):
        return True
    path = (rootdir / target).resolve()
    if path == CHECKS_DIR or CHECKS_DIR in path.parents:
        return True
    # A folder above the checks (`pytest` in the checkout) holds them, unless they are an
    # installed copy in a virtualenv under it (which pytest does not collect anyway).
    return CHECKS_DIR.is_relative_to(path) and not any(
        (parent / "pyvenv.cfg").is_file() for parent in CHECKS_DIR.parents
    )


def suite_active(config: pytest.Config) -> bool:
    """Whether this session asks for the suite (computed once, by whichever hook asks first)."""
    if ACTIVE not in config.stash:
        given = {
            dest for dest, default in OPTION_DEFAULTS.items() if config.getoption(dest) != default
        }
        invocation = config.invocation_params.dir
        pyargs = bool(config.getoption("pyargs", False))
        config.stash[ACTIVE] = (
            bool(given)
            or config.getini("criobe_verify")
            or any(_names_the_checks(str(arg), invocation, pyargs) for arg in config.args)
        )
    return config.stash[ACTIVE]


def strict_probes(config: pytest.Config) -> bool:
    """Whether a probe a resource makes without having declared it fails its check:
    --strict-probes, on by default with --stack twin (criobe_verify/resources/base.py)."""
    flag = config.getoption("--strict-probes")
    return config.getoption("--stack") == "twin" if flag is None else flag


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("criobe-verify")
    # Choices and numbers are checked by criobe_verify/inputs.py, not argparse, so that a bad
    # value stops the run in the same one line as every other bad input.
    group.addoption(
        "--stack",
        default="attach",
        help="attach: check a running stack and change nothing (default); up: bring up the "
        "checkout at --stack-dir like the install guide; twin: bring up the CI twin",
    )
    group.addoption("--stack-dir", default=None, help="CRIOBE checkout for --stack up")
    group.addoption(
        "--keep-up",
        action="store_true",
        default=False,  # explicit: before pytest 9.1 a store_true's default read None
        help="leave a stack the suite started running",
    )
    group.addoption(
        "--reuse-running",
        action="store_true",
        default=False,
        help="--stack up: use a compose project that is already running as it is (only what "
        "the suite starts is stopped afterwards); without it the suite refuses to take it over",
    )
    group.addoption(
        "--profile",
        default=None,
        help="profile TOML (default: profiles/twin.toml with --stack twin, else profiles/criobe.toml)",
    )
    group.addoption(
        "--phase",
        default="installed",
        help="installed (default), or preinstall: only the host checks that make sense before "
        "installing",
    )
    group.addoption(
        "--layer",
        action="append",
        default=[],
        help="run only these layers (repeatable, or comma-separated)",
    )
    group.addoption(
        "--require",
        action="append",
        default=[],
        help="fail the run when these layers (repeatable, or comma-separated) were not "
        "verified: skipped, not selected, not run (a CI job that must prove the pipeline)",
    )
    group.addoption(
        "--gateway-ip",
        default=None,
        help="address bridge.gateway must resolve to (default: detected by platform)",
    )
    group.addoption(
        "--stack-timeout",
        default="600",
        help="seconds to wait for a stack the suite starts to become ready (default 600)",
    )
    group.addoption(
        "--lease-wait",
        default="1800",
        help="seconds to wait for other runs against the same stack to finish before this "
        "one writes to CVAT or times the functions (default 1800; criobe_verify/lease.py)",
    )
    group.addoption(
        "--strict-skips",
        action="store_true",
        default=None,
        help="fail the run on a skip not allow-listed by the profile, or on a layer with "
        "fewer tests than its minimum (on by default with --stack twin)",
    )
    group.addoption(
        "--strict-probes",
        action="store_true",
        default=None,
        help="fail a check whose resource makes a probe it did not declare for the run's "
        "prefetch, naming the probe and the resource (on by default with --stack twin; the "
        "fault harness passes it)",
    )
    group.addoption(
        "--sample-image",
        action="append",
        default=[],
        help="a lab's own quadrat photo for the inference and e2e layers (default: the "
        "committed synthetic sample, made for the twin); repeatable: the inference checks "
        "judge each photo, e2e and latency use the first",
    )
    group.addoption(
        "--ground-truth",
        action="append",
        default=[],
        help="ground truth of --sample-image: COCO exports (corners, grid, corals) or a "
        "ground_truth.json; repeatable (with several photos, each paired by file_name)",
    )
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="record the functions' answers on the sample as the golden baseline",
    )
    group.addoption(
        "--budgets",
        default=None,
        help="gpu or cpu: which latency budgets apply (default: each function's, for what its "
        "container has, a GPU or none; where it cannot be read, the profile's [latency] "
        "budgets)",
    )
    group.addoption(
        "--summary-json",
        default=None,
        help="write a JSON summary (outcomes per layer, failures, skips) to this path",
    )
    group.addoption(
        "--record-baseline",
        default=None,
        metavar="DIR",
        help="also write the run's baseline (checks, timings, the stack's fingerprint) into "
        "DIR/baseline.json, for `criobe-verify compare` (what `criobe-verify baseline DIR` does)",
    )
    group.addoption(
        "--baseline",
        default=None,
        metavar="DIR",
        help="after an upgrade: compare this run with the baseline `criobe-verify baseline DIR` "
        "wrote before it (the regression layer: flips, the lab's data, drift, latency)",
    )
    group.addoption(
        "--baseline-key",
        default=None,
        metavar="FILE",
        help="the key the baseline's secrets are HMAC'd with, outside DIR (default: "
        "$CRIOBE_VERIFY_BASELINE_KEY, else $XDG_CONFIG_HOME/criobe-verify/baseline.key, "
        "created 0600 on first use)",
    )
    parser.addini(
        "criobe_verify",
        type="bool",
        default=False,
        help="criobe-verify: run the suite's hooks in this session even when its checks are "
        "not among the arguments (checks of your own marked with its layers)",
    )
    for opt in group.options:
        OPTION_DEFAULTS[opt.dest] = opt.attrs().get("default")
        OPTION_NAMES.extend(name for name in opt.names() if name.startswith("--"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Every input of the run is checked before any other plugin's set-up (pytest-html makes
    the report's folder in its own) and before anything runs: a bad one stops the run with
    pytest's usage error, one line naming it (criobe_verify/inputs.py)."""
    if not suite_active(config):
        return
    from criobe_verify.inputs import validate

    try:
        inputs = validate(
            lambda name: config.getoption(name, None),
            os.environ,
            own_checks=bool(config.getini("criobe_verify")),
        )
    except InputError as exc:
        raise pytest.UsageError(exc.line) from None
    config.criobe_inputs = inputs
    config.criobe_profile = inputs.profile
