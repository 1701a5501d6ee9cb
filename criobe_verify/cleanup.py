"""`criobe-verify cleanup`: remove what earlier runs left behind, and nothing else.

    criobe-verify cleanup                  # projects named criobe-verify-<time>-<hex>, with
                                           # their tasks, jobs and webhooks; the suite's helper
                                           # containers (receivers, probes)
    criobe-verify cleanup --dry-run        # only list them

A run deletes what it created itself, also when a check fails; an interrupted one (Ctrl-C,
a killed CI job) may leave its projects. They are found by the run prefix alone: a project
whose name does not start with it is never touched, nor any container the suite did not
label `criobe-verify.role`. A prefix a live run holds a lease on (criobe_verify/lease.py) is
skipped, saying whose: cleanup may run while another run is in progress. What the bridge
derives from a run's tasks (`<task>_warped`, `<task>_clean`) lands in the run's own
projects, so it goes with them, also when it comes after the run died.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping

import docker

from criobe_verify.bad_input import EXIT_USAGE, InputError
from criobe_verify.diagnosis import CheckFailed
from criobe_verify.docker_endpoint import DockerEndpoint
from criobe_verify.http import http_client
from criobe_verify.lease import is_lease, leases, live_prefixes, run_projects
from criobe_verify.paths import PROFILES_DIR
from criobe_verify.profile import load_profile

RUN_PREFIX = re.compile(r"^criobe-verify-\d{14}-[0-9a-f]{6}(-|$)")
ROLE_LABEL = "criobe-verify.role"


def is_left_over(name: str) -> bool:
    """
    >>> is_left_over("criobe-verify-20261201193000-1a2b3c-project-1"), is_left_over("corals")
    (True, False)
    """
    return bool(RUN_PREFIX.match(name))


def _credentials(client: docker.DockerClient) -> tuple[str, str]:
    env = dict(
        e.partition("=")[::2] for e in client.containers.get("bridge").attrs["Config"]["Env"]
    )
    for user, password in (("CVAT_USER", "CVAT_PWD"), ("CVAT_USERNAME", "CVAT_PASSWORD")):
        if env.get(user) and env.get(password):
            return env[user], env[password]
    raise RuntimeError("the bridge's environment has no CVAT credentials")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="criobe-verify cleanup", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--profile", default=str(PROFILES_DIR / "criobe.toml"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        endpoint = DockerEndpoint.of(os.environ)
        endpoint.check()
    except InputError as exc:
        print(exc.line, file=sys.stderr)
        return EXIT_USAGE
    engine = endpoint.connect(timeout=30)
    try:
        client = engine.client_or_fail()
        user, password = _credentials(client)
    except (CheckFailed, docker.errors.DockerException, RuntimeError) as exc:
        print(f"criobe-verify cleanup: {exc}", file=sys.stderr)
        return 1
    removed = 0
    with http_client(
        base_url=profile.cvat_url, headers={"Host": profile.cvat_host}, timeout=30
    ) as cvat:
        r = cvat.post("/api/auth/login", json={"username": user, "password": password})
        if r.status_code != 200:
            print(f"criobe-verify cleanup: CVAT login answered {r.status_code}", file=sys.stderr)
            return 1
        cvat.headers["Authorization"] = f"Token {r.json()['key']}"
        cvat.cookies.clear()
        projects, now = run_projects(cvat)
        projects = [p for p in projects if is_left_over(p["name"])]
        live = live_prefixes(leases(projects), now)
        for prefix, lease in sorted(live.items()):
            print(f"skipping {prefix}: leased by a live {lease.holder(now)}")
        # A lease last: a cleanup cut short leaves the run's projects findable by it.
        for project in sorted(projects, key=lambda p: is_lease(p["name"])):
            if run_prefix(project["name"]) in live:
                continue
            print(f"{'would delete' if args.dry_run else 'deleting'} project {project['id']} "
                  f"{project['name']}")  # fmt: skip
            if not args.dry_run:
                cvat.delete(f"/api/projects/{project['id']}")
            removed += 1
    for container in client.containers.list(all=True, filters={"label": ROLE_LABEL}):
        if not container_left_over(container.name, container.status, live):
            print(f"skipping container {container.name}: a live run may still use it")
            continue
        print(f"{'would remove' if args.dry_run else 'removing'} container {container.name} "
              f"({container.labels[ROLE_LABEL]})")  # fmt: skip
        if not args.dry_run:
            container.remove(force=True)
        removed += 1
    print(f"{removed} left-over object(s) {'found' if args.dry_run else 'removed'}")
    return 0


def run_prefix(name: str) -> str | None:
    """
    >>> run_prefix("criobe-verify-20261201193000-1a2b3c-project-1"), run_prefix("corals")
    ('criobe-verify-20261201193000-1a2b3c', None)
    """
    m = RUN_PREFIX.match(name)
    return name[: m.end()].rstrip("-") if m else None


def container_left_over(name: str, status: str, live: Mapping[str, object]) -> bool:
    """Whether cleanup removes one of the suite's containers: not one named under a live
    run's prefix (its webhook receiver); a running one named under none (a probe helper,
    which exits within its call) only while no run holds a lease.

    >>> live = {"criobe-verify-20261201193000-1a2b3c": "lease"}
    >>> container_left_over("criobe-verify-20261201193000-1a2b3c-receiver", "running", live)
    False
    >>> container_left_over("criobe-verify-20261130101010-0f0f0f-receiver", "running", live)
    True
    >>> container_left_over("eager_turing", "running", live), container_left_over("eager_turing", "exited", live)
    (False, True)
    """
    prefix = run_prefix(name)
    if prefix is not None:
        return prefix not in live
    return status != "running" or not live
