"""An attach run changes nothing on the stack but what it creates and removes itself.

The suite runs against the already-running twin as a lab runs it (`criobe-verify` in attach
mode, every layer, e2e included) on a stack that also holds a lab's own things: an
organization, a project of it and an organization webhook watching every project, task and
job event of it (as a lab's pipeline might). Before and after, the stack is read from outside
(selftests/stack_state.py: containers with their ids, start times and restart counts,
networks, volumes; CVAT's projects, tasks, jobs, webhooks with their deliveries, users and
organizations; Nuclio's projects and functions), and the two must be equal but for the bridge
user's last login: nothing the run made is left, nothing of the lab's changed, and the lab's
organization webhook got no delivery. The run's load on CVAT is read from the logs and
printed (the README's figures come from this test).

    criobe-verify --stack twin --keep-up
    pytest selftests/test_non_destructive.py -m twin -s
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from criobe_verify.redact import parse_env_lines
from selftests import PROJECT_ROOT
from selftests.stack_state import differences, read_load, read_state
from selftests.twin import Twin

pytestmark = pytest.mark.twin

# The lab's pipeline outside the stack: never reached (no such host), so a delivery would
# be recorded as a failure, and counted.
LAB_PIPELINE = "http://lab-pipeline.example:9000/quadrat"
WATCHED = ["create:project", "update:project", "delete:project", "create:task", "update:task",
           "delete:task", "create:job", "update:job", "delete:job"]  # fmt: skip


@pytest.fixture
def twin(tmp_path) -> Twin:
    return Twin(tmp_path)


@pytest.fixture
def lab_organization(twin: Twin) -> Iterator[dict]:
    """A lab's organization, a project of it and its organization webhook, removed after."""
    slug = f"lab{secrets.token_hex(3)}"
    with twin.cvat() as cvat:
        org = cvat.post("/api/organizations", json={"slug": slug, "name": "the lab"})
        assert org.status_code == 201, org.text
        org = org.json()
        in_org = {"X-Organization": slug}
        project = cvat.post("/api/projects", headers=in_org, json={"name": "reef survey"})
        hook = cvat.post("/api/webhooks", headers=in_org, json={
            "target_url": LAB_PIPELINE, "type": "organization", "events": WATCHED,
            "enable_ssl": False,
        })  # fmt: skip
        assert project.status_code == hook.status_code == 201, (project.text, hook.text)
    try:
        yield {"org": org, "project": project.json(), "webhook": hook.json()}
    finally:
        with twin.cvat() as cvat:
            cvat.delete(f"/api/projects/{project.json()['id']}")
            cvat.delete(f"/api/organizations/{org['id']}")


def _addresses(twin: Twin) -> dict[str, str]:
    network = twin.docker.networks.get("cvat_cvat")
    return {c["IPv4Address"].split("/")[0]: c["Name"] for c in network.attrs["Containers"].values()}


def _last_ids(twin: Twin) -> dict[str, int]:
    """The last id cvat_db handed out per kind: how many were made in between, by anyone,
    deleted since or not."""
    kinds = ("projects", "webhooks", "tasks")
    sql = ", ".join(f"(SELECT last_value FROM twin_{k[:-1]}_id_seq)" for k in kinds)
    out = twin.exec("cvat_db", "psql", "-U", "root", "-d", "cvat", "-tAc", f"SELECT {sql}")
    return dict(zip(kinds, (int(v) for v in out.strip().split("|")), strict=True))


def test_attach_run_changes_nothing_but_its_own(twin: Twin, lab_organization: dict) -> None:
    bridge_user = parse_env_lines((PROJECT_ROOT / "twin/bridge/.env").read_text().splitlines())[
        "CVAT_USER"
    ]
    with httpx.Client(base_url="http://localhost:8070", timeout=30) as nuclio:
        with twin.cvat() as cvat:
            before = read_state(twin.docker, cvat, nuclio)
        names = _addresses(twin)
        ids_before = _last_ids(twin)
        started = time.time()
        summary = twin.suite(timeout=1200)
        ended = time.time()
        ids_after = _last_ids(twin)
        with twin.cvat() as cvat:
            after = read_state(twin.docker, cvat, nuclio)

    load = read_load(twin.docker, started, ended, names)
    ran = {e["layer"] for e in summary["checks"].values() if e["outcome"] == "passed"}
    print(
        f"\n[non-destructive] attach run, every layer: {(ended - started) / 60:.1f} min, "
        f"verdict {summary['verdict']['status']}; layers passed: {sorted(ran)}\n"
        f"[load] through the front (the suite): {load.front_requests} requests, "
        f"{load.front_per_s:.1f}/s mean, {load.front_peak_per_s}/s peak, "
        f"{load.front_bytes_in / 1024:.0f} KiB sent; created: {load.created}\n"
        f"[load] at cvat_server (suite, bridge, workers): {load.server_requests} requests, "
        f"{load.server_per_s:.1f}/s mean, {load.server_peak_per_s}/s peak; by source: "
        f"{load.by_source}"
    )
    # A latency budget missed on a loaded CI host is a policy finding: it does not bear on
    # what the run changed, and every functional check (e2e included) must have passed.
    assert summary["verdict"]["status"] in ("works", "works with policy findings"), summary[
        "output"
    ]
    assert "e2e" in ran, f"the e2e layer did not run: {sorted(ran)}"
    changed = differences(before, after, bridge_user=bridge_user)
    assert not changed, "the run changed the stack:\n" + "\n".join(changed)
    hook = after.cvat["webhooks"][lab_organization["webhook"]["id"]]
    assert hook["deliveries"] == 0, f"the lab's organization webhook was set off: {hook}"
    assert load.created.get("projects", 0) > 0, f"no scratch project seen in the log: {load}"
    # Nothing outside the run's prefix was made, even for a moment: every project and webhook
    # CVAT made during the run is one the suite asked for (only its Scratch creates them,
    # naming each under the run prefix), and the bridge made tasks only (in those projects).
    made = {k: ids_after[k] - ids_before[k] for k in ids_before}
    print(f"[load] made during the run: {made} (the suite asked for {load.created})")
    for kind in ("projects", "webhooks"):
        assert made[kind] == load.created.get(kind, 0), (kind, made, load.created)
    assert made["tasks"] >= load.created.get("tasks", 0), (made, load.created)
