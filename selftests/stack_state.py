"""What a running stack holds, read from outside, to compare before and after a suite run.

    state = read_state(docker_client, cvat, nuclio)    # cvat: an admin's httpx client
    assert differences(before, after, bridge_user="django") == []

Docker: every container (id, start time, restart count, status, image), network (id) and
volume. CVAT (as its admin sees it in the sandbox context, which lists every organization's
objects too): projects, tasks, jobs, webhooks with their number of deliveries, users,
organizations. Nuclio: its projects and functions (spec, state, port). Everything is
compared field by field, but the one change an attach run is documented to make outside
its own objects (README, "What an attach run changes"): the bridge user's last login.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

PAGE = 500


@dataclass(frozen=True)
class StackState:
    containers: dict[str, dict[str, Any]]
    networks: dict[str, str]
    volumes: frozenset[str]
    cvat: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    nuclio: dict[str, dict[str, Any]] = field(default_factory=dict)


def _listing(cvat: httpx.Client, path: str) -> list[dict[str, Any]]:
    answer = cvat.get(path, params={"page_size": PAGE})
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:200]}"
    body = answer.json()
    assert body["count"] <= PAGE, f"GET {path}: {body['count']} objects, more than one page"
    return body["results"]


def _cvat(cvat: httpx.Client) -> dict[str, dict[int, dict[str, Any]]]:
    def pick(rows: list[dict[str, Any]], *keys: str) -> dict[int, dict[str, Any]]:
        return {r["id"]: {k: r.get(k) for k in keys} for r in rows}

    hooks = pick(
        _listing(cvat, "/api/webhooks"),
        *("target_url", "events", "is_active", "type", "project_id", "organization"),
        "updated_date",
    )
    for hook_id, hook in hooks.items():
        # A lab webhook the run set off shows as a new delivery.
        answer = cvat.get(f"/api/webhooks/{hook_id}/deliveries", params={"page_size": 1})
        hook["deliveries"] = answer.json()["count"]
    return {
        "projects": pick(_listing(cvat, "/api/projects"), "name", "organization", "updated_date"),
        "tasks": pick(
            _listing(cvat, "/api/tasks"),
            *("name", "project_id", "organization", "status", "size", "updated_date"),
        ),
        "jobs": pick(_listing(cvat, "/api/jobs"), "task_id", "state", "stage", "updated_date"),
        "webhooks": hooks,
        "users": pick(
            _listing(cvat, "/api/users"), "username", "is_active", "groups", "last_login"
        ),
        "organizations": pick(_listing(cvat, "/api/organizations"), "slug", "name", "updated_date"),
    }


def _nuclio(nuclio: httpx.Client) -> dict[str, dict[str, Any]]:
    headers = {"x-nuclio-project-namespace": "nuclio"}
    projects = nuclio.get("/api/projects", headers=headers)
    functions = nuclio.get(
        "/api/functions", headers={**headers, "x-nuclio-function-namespace": "nuclio"}
    )
    assert projects.status_code == functions.status_code == 200
    return {
        "projects": {
            name: hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()
            for name, p in projects.json().items()
        },
        "functions": {
            name: {
                "spec": hashlib.sha256(json.dumps(f["spec"], sort_keys=True).encode()).hexdigest(),
                "state": f.get("status", {}).get("state"),
                "httpPort": f.get("status", {}).get("httpPort"),
            }
            for name, f in functions.json().items()
        },
    }


def read_state(client: Any, cvat: httpx.Client, nuclio: httpx.Client) -> StackState:
    """The stack as it is now (client: a docker.DockerClient)."""
    containers = {}
    for c in client.containers.list(all=True):
        state = c.attrs["State"]
        containers[c.name] = {
            "id": c.id,
            "started_at": state.get("StartedAt"),
            "restarts": c.attrs.get("RestartCount"),
            "status": state.get("Status"),
            "image": c.attrs.get("Image"),
        }
    return StackState(
        containers=containers,
        networks={n.name: n.id for n in client.networks.list()},
        volumes=frozenset(v.name for v in client.volumes.list()),
        cvat=_cvat(cvat),
        nuclio=_nuclio(nuclio),
    )


def _compare(where: str, before: dict, after: dict) -> list[str]:
    found = [f"{where} {k}: new {after[k]}" for k in sorted(set(after) - set(before), key=str)]
    found += [
        f"{where} {k}: gone (was {before[k]})" for k in sorted(set(before) - set(after), key=str)
    ]
    found += [
        f"{where} {k}: {before[k]} → {after[k]}"
        for k in sorted(set(before) & set(after), key=str)
        if before[k] != after[k]
    ]
    return found


def differences(before: StackState, after: StackState, bridge_user: str) -> list[str]:
    """Every change from before to after, but the bridge user's last login (the run logs in
    as that user).

    >>> a = StackState({"bridge": {"id": "1"}}, {"cvat_cvat": "n"}, frozenset({"v"}),
    ...                {"users": {1: {"username": "u", "last_login": "t1"}}})
    >>> b = StackState({"bridge": {"id": "2"}}, {"cvat_cvat": "n"}, frozenset({"v"}),
    ...                {"users": {1: {"username": "u", "last_login": "t2"}}})
    >>> differences(a, b, bridge_user="u")
    ["container bridge: {'id': '1'} → {'id': '2'}"]
    """
    found = _compare("container", before.containers, after.containers)
    found += _compare("network", before.networks, after.networks)
    found += _compare("volume", dict.fromkeys(before.volumes), dict.fromkeys(after.volumes))
    for kind in sorted(set(before.cvat) | set(after.cvat)):
        old, new = before.cvat.get(kind, {}), after.cvat.get(kind, {})
        if kind == "users":
            old, new = _without_login(old, bridge_user), _without_login(new, bridge_user)
        found += _compare(f"CVAT {kind[:-1]}", old, new)
    for kind in sorted(set(before.nuclio) | set(after.nuclio)):
        found += _compare(
            f"Nuclio {kind[:-1]}", before.nuclio.get(kind, {}), after.nuclio.get(kind, {})
        )
    return found


def _without_login(users: dict[int, dict[str, Any]], bridge_user: str) -> dict[int, dict[str, Any]]:
    return {
        uid: {
            k: v for k, v in u.items() if not (k == "last_login" and u["username"] == bridge_user)
        }
        for uid, u in users.items()
    }


# `INFO:     172.18.0.9:35512 - "GET /api/server/about HTTP/1.1" 200 (0 ms)` (cvat_server's
# uvicorn) and nginx's `... "POST /api/tasks/3/data HTTP/1.1" 202 ... request_length=N ...`.
_SERVER_LINE = re.compile(r'INFO:\s+([\d.]+):\d+ - "(\w+) (\S+) HTTP/[\d.]+" (\d{3})')
_FRONT_LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) .*request_length=(\d+)')


@dataclass(frozen=True)
class Load:
    """What a run asked of CVAT, read from its logs: through the front (traefik, the suite
    itself from the host) and at cvat_server (everyone: the suite, the bridge, the workers)."""

    seconds: float
    front_requests: int
    front_bytes_in: int
    front_peak_per_s: int
    server_requests: int
    server_peak_per_s: int
    by_source: dict[str, int]
    created: dict[str, int]

    @property
    def front_per_s(self) -> float:
        return self.front_requests / self.seconds if self.seconds else 0.0

    @property
    def server_per_s(self) -> float:
        return self.server_requests / self.seconds if self.seconds else 0.0


def _per_second(stamps: list[str]) -> int:
    counts: dict[str, int] = {}
    for s in stamps:
        counts[s] = counts.get(s, 0) + 1
    return max(counts.values(), default=0)


def _stamp(line: str) -> float:
    """The time Docker gave a log line ('2026-12-07T12:34:56.123456789Z …'), as time.time()."""
    whole, _, rest = line.partition(" ")[0].rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{rest or 0}")


def _lines_between(client: Any, container: str, since: float, until: float) -> list[str]:
    r"""A container's log lines written between two times, to the sub-second. Docker's own
    since/until take whole seconds only: a request made just before the run (a fixture's
    project, say) would otherwise count as the run's.

    >>> class Log:
    ...     def logs(self, **_):  # Docker sends from 12:00:00, a whole second before the run
    ...         return b"2026-12-07T12:00:00.6Z fixture\n2026-12-07T12:00:01.2Z run\n"
    >>> run_start = _stamp("2026-12-07T12:00:01.0Z")
    >>> _lines_between(type("Client", (), {"containers": {"traefik": Log()}}), "traefik",
    ...                run_start, run_start + 5)
    ['2026-12-07T12:00:01.2Z run']
    """
    log = client.containers.get(container).logs(
        since=int(since), until=int(until) + 1, timestamps=True
    )
    lines = log.decode(errors="replace").splitlines()
    return [line for line in lines if since <= _stamp(line) <= until]


def read_load(client: Any, since: float, until: float, names: dict[str, str]) -> Load:
    """The requests CVAT got between two times (time.time()), from `docker logs` of traefik
    and cvat_server; names maps a container's address on cvat_cvat to its name."""
    front, front_stamps, bytes_in, created = 0, [], 0, {}
    for line in _lines_between(client, "traefik", since, until):
        m = _FRONT_LINE.search(line)
        if not m:
            continue
        front += 1
        front_stamps.append(line[:19])
        bytes_in += int(m.group(4))
        method, path, status = m.group(1), m.group(2).split("?")[0], m.group(3)
        # cvat-sdk uploads a task's data in three POSTs (TUS: start, files, finish)
        kind = re.fullmatch(r"/api/(projects|tasks|webhooks)/?|/api/tasks/\d+/(data)/?", path)
        if method == "POST" and kind and status.startswith("2"):
            what = kind.group(1) or "task data requests"
            created[what] = created.get(what, 0) + 1
    server, server_stamps, by_source = 0, [], {}
    for line in _lines_between(client, "cvat_server", since, until):
        m = _SERVER_LINE.search(line)
        if not m:
            continue
        server += 1
        server_stamps.append(line[:19])
        who = names.get(m.group(1), m.group(1))
        by_source[who] = by_source.get(who, 0) + 1
    return Load(
        seconds=until - since,
        front_requests=front,
        front_bytes_in=bytes_in,
        front_peak_per_s=_per_second(front_stamps),
        server_requests=server,
        server_peak_per_s=_per_second(server_stamps),
        by_source=by_source,
        created=created,
    )
