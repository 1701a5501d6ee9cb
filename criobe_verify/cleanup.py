"""`criobe-verify cleanup`: remove what earlier runs left behind, and nothing else.

    criobe-verify cleanup                  # projects named criobe-verify-<time>-<hex>, with
                                           # their tasks, jobs and webhooks; the suite's helper
                                           # containers (receivers, probes)
    criobe-verify cleanup --dry-run        # only list them

A run deletes what it created itself, also when a check fails; an interrupted one (Ctrl-C,
a killed CI job) may leave its projects. They are found by the run prefix alone: a project
whose name does not start with it is never touched, nor any container the suite did not
label `criobe-verify.role`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import docker

from criobe_verify.bad_input import EXIT_USAGE, InputError
from criobe_verify.diagnosis import CheckFailed
from criobe_verify.docker_endpoint import DockerEndpoint
from criobe_verify.http import http_client
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
        page = cvat.get("/api/projects", params={"search": "criobe-verify-", "page_size": 500})
        for project in page.json().get("results", []):
            if not is_left_over(project["name"]):
                continue
            print(f"{'would delete' if args.dry_run else 'deleting'} project {project['id']} "
                  f"{project['name']}")  # fmt: skip
            if not args.dry_run:
                cvat.delete(f"/api/projects/{project['id']}")
            removed += 1
    for container in client.containers.list(all=True, filters={"label": ROLE_LABEL}):
        print(f"{'would remove' if args.dry_run else 'removing'} container {container.name} "
              f"({container.labels[ROLE_LABEL]})")  # fmt: skip
        if not args.dry_run:
            container.remove(force=True)
        removed += 1
    print(f"{removed} left-over object(s) {'found' if args.dry_run else 'removed'}")
    return 0
