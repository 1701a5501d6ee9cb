"""Command-line options and plugin loading for the criobe-verify suite.

Run against the CI twin:      pytest --stack twin
Check a running real stack:   pytest --profile profiles/criobe.toml
Before installing:            pytest --phase preinstall
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "fixtures.layers",
    "fixtures.stack",
    "fixtures.docker",
    "fixtures.host",
    "fixtures.gateway",
    "fixtures.cvat",
    "fixtures.receiver",
    "fixtures.nuclio",
    "fixtures.sample",
    "fixtures.pipeline",
    "fixtures.probe_plan",
    "fixtures.report",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("criobe-verify")
    group.addoption(
        "--stack",
        choices=("attach", "up", "twin"),
        default="attach",
        help="attach: check a running stack and change nothing (default); up: bring up the "
        "checkout at --stack-dir like the install guide; twin: bring up the CI twin",
    )
    group.addoption("--stack-dir", default=None, help="CRIOBE checkout for --stack up")
    group.addoption(
        "--keep-up", action="store_true", help="leave a stack the suite started running"
    )
    group.addoption(
        "--reuse-running",
        action="store_true",
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
        choices=("preinstall", "installed"),
        default="installed",
        help="preinstall: only the host checks that make sense before installing",
    )
    group.addoption(
        "--layer",
        action="append",
        default=[],
        help="run only these layers (repeatable, or comma-separated)",
    )
    group.addoption(
        "--gateway-ip",
        default=None,
        help="address bridge.gateway must resolve to (default: detected by platform)",
    )
    group.addoption(
        "--stack-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for a stack the suite starts to become ready",
    )
    group.addoption(
        "--strict-skips",
        action="store_true",
        default=None,
        help="fail the run on a skip not allow-listed by the profile, or on a layer with "
        "fewer tests than its minimum (on by default with --stack twin)",
    )
    group.addoption(
        "--sample-image",
        default=None,
        help="a lab's own quadrat photo for the inference and e2e layers (default: the "
        "committed synthetic sample, made for the twin)",
    )
    group.addoption(
        "--ground-truth",
        action="append",
        default=[],
        help="ground truth of --sample-image: COCO exports (corners, grid, corals) or a "
        "ground_truth.json; repeatable",
    )
    group.addoption(
        "--update-golden",
        action="store_true",
        help="record the functions' answers on the sample as the golden baseline",
    )
    group.addoption(
        "--budgets",
        choices=("gpu", "cpu"),
        default=None,
        help="which latency budgets apply (default: the profile's [latency] budgets)",
    )
    group.addoption(
        "--summary-json",
        default=None,
        help="write a JSON summary (outcomes per layer, failures, skips) to this path",
    )
