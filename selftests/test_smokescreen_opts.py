"""The suite's reading of SMOKESCREEN_OPTS agrees with the real Smokescreen's recorded truth
table (selftests/data/contracts/smokescreen/cases.json): the same fatal options, the same verdict
on the gateway and on cvat_db."""

from __future__ import annotations

import json

import pytest

from criobe_verify.smokescreen import allows, explain, parse_options
from selftests.data import CONTRACTS

CASES = json.loads((CONTRACTS / "smokescreen" / "cases.json").read_text())
SETS = {o["id"]: o for o in CASES["option_sets"]}
TARGETS = {"ip_172_17_0_1_8000": ("172.17.0.1", 8000), "cvat_db_5432": ("172.23.0.2", 5432)}


def _opts(option_set: dict) -> str:
    return " ".join(a for a in option_set["argv"][1:] if not a.startswith("--listen-"))


@pytest.mark.parametrize("set_id", [k for k, v in SETS.items() if not v["started"]])
def test_fatal_options_give_smokescreens_own_message(set_id):
    recorded = json.loads(SETS[set_id]["stderr"].strip().splitlines()[-1])["msg"]
    opts = parse_options(_opts(SETS[set_id]))
    assert opts.fatal and recorded.endswith(opts.fatal), (recorded, opts.fatal)


@pytest.mark.parametrize("set_id", [k for k, v in SETS.items() if v["started"]])
def test_verdicts_match_the_truth_table(set_id):
    opts = parse_options(_opts(SETS[set_id]))
    assert opts.fatal is None
    for target, (ip, port) in TARGETS.items():
        recorded = CASES["summary"][set_id].get(target, {}).get("http")
        if recorded is None:  # not sent in the recording
            continue
        allowed = not recorded.startswith("407")
        assert allows(opts, ip, port) == allowed, (set_id, target, recorded)


def test_explanations_name_the_cause():
    assert "it is empty" in explain(parse_options(""), "172.17.0.1", 8000)
    assert "port 9999 only" in explain(
        parse_options("--allow-address=172.17.0.1:9999"), "172.17.0.1", 8000
    )
    assert "Docker Desktop on Windows/WSL2" in explain(
        parse_options("--allow-address=192.168.65.254"), "172.17.0.1", 8000
    )
    assert "Docker Desktop on macOS" in explain(
        parse_options("--allow-address=192.168.65.1"), "172.17.0.1", 8000
    )
    assert "refuses to start" in explain(
        parse_options("--allow-address=bridge.gateway"), "172.17.0.1", 8000
    )
    assert "not the cause" in explain(
        parse_options("--allow-range=172.17.0.0/16"), "172.17.0.1", 8000
    )
