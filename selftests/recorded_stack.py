"""A CRIOBE stack as recorded answers, for the baseline and compare selftests: hand-made
container records shaped like Docker's `inspect` answers (ids, start times, addresses, the
short-id alias and the published ports as Docker 20.10 gives them), the dashboard's recorded
`/api/functions` answer (CVAT 2.29.0 lambda recordings), Nuclio 1.13.0's `/api/versions` and
CVAT 2.29.0's recorded `/api/server/about`.

    stack = RecordedStack()
    stack.container("bridge")["Config"]["Env"].append("LOG_LEVEL=DEBUG")
    fp = stack.fingerprint(DIGEST)
    again = stack.restarted()        # the same configuration, new ids, times, random ports
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from criobe_verify.fingerprint import fingerprint_of
from criobe_verify.secret_digest import SecretDigest
from selftests.data import CONTRACTS

SECRETS = {
    "CVAT_PWD": "Reef-Admin-pw-41",
    "WEBHOOK_SECRET": "hook-s3cret-9f",
    "POSTGRES_PASSWORD": "db-pass-77x",
    "DJANGO_SECRET_KEY": "dj4ngo-k3y-quadrat",
}
SMOKESCREEN_OPTS = "--allow-address=172.17.0.1"
FUNCTIONS = json.loads((CONTRACTS / "cvat-2.29.0-lambda" / "nuclio_api_functions.json").read_text())
ABOUT = json.loads((CONTRACTS / "cvat-2.29.0" / "01_server_about.json").read_text())["response"][
    "json"
]
# What the Nuclio 1.13.0 dashboard answers (the twin's conformance selftest holds the same).
VERSIONS = {"dashboard": {"label": "1.13.0", "gitCommit": "c4422eb", "os": "linux"}}


def _id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def container(
    name: str,
    image: str,
    *,
    env: list[str],
    service: str | None = None,
    function: str | None = None,
    aliases: tuple[str, ...] = (),
    ports: dict[str, list[dict[str, str]]] | None = None,
    extra_hosts: tuple[str, ...] = (),
    generation: int = 0,
) -> dict[str, Any]:
    """One container's inspect record; `generation` changes only what a restart or a
    recreation changes (id, times, addresses, a random host port)."""
    cid = _id(f"{name}-{generation}")
    labels = (
        {"com.docker.compose.project": "cvat", "com.docker.compose.service": service or name}
        if function is None
        else {"nuclio.io/function-name": function, "nuclio.io/namespace": "nuclio"}
    )
    bindings = ports or {}
    if function is not None:  # Nuclio's random host port for the http trigger
        bindings = {"8080/tcp": [{"HostIp": "", "HostPort": ""}]}
    actual = {
        port: [{"HostIp": "0.0.0.0", "HostPort": b["HostPort"] or str(32768 + generation)}]
        for port, binds in bindings.items()
        for b in binds
    }
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Created": f"2026-12-0{1 + generation}T10:00:00.000000000Z",
        "Image": "sha256:" + _id(image),
        "State": {
            "Status": "running",
            "StartedAt": f"2026-12-0{1 + generation}T10:00:05.000000000Z",
            "Pid": 1000 + generation,
        },
        "RestartCount": generation,
        "Config": {"Image": image, "Env": list(env), "Labels": labels, "Hostname": cid[:12]},
        "HostConfig": {
            "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
            "PortBindings": bindings,
            "ExtraHosts": list(extra_hosts) or None,
            "NetworkMode": "cvat_cvat",
        },
        "NetworkSettings": {
            "Ports": actual,
            "Networks": {
                "cvat_cvat": {
                    "Aliases": [*aliases, service or name, cid[:12]],
                    "IPAddress": f"172.23.0.{10 + generation}",
                    "MacAddress": f"02:42:ac:17:00:{10 + generation:02x}",
                    "EndpointID": _id(f"endpoint-{name}-{generation}"),
                    "NetworkID": _id("cvat_cvat"),
                }
            },
        },
    }


def _stack_containers(generation: int) -> list[dict[str, Any]]:
    env_base = ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"]
    server_env = [
        *env_base,
        f"SMOKESCREEN_OPTS={SMOKESCREEN_OPTS}",
        "ALLOWED_HOSTS=*",
        "CVAT_SERVERLESS=1",
        "CVAT_NUCLIO_HOST=nuclio",
        f"DJANGO_SECRET_KEY={SECRETS['DJANGO_SECRET_KEY']}",
    ]
    gateway = ("bridge.gateway:host-gateway", "host.docker.internal:host-gateway")
    g = generation
    return [
        container("traefik", "traefik:v2.10", env=env_base, generation=g,
                  ports={"8080/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        container("cvat_server", "cvat/server:v2.29.0", env=server_env, generation=g,
                  aliases=("cvat-server",), extra_hosts=gateway),
        container("cvat_worker_webhooks", "cvat/server:v2.29.0", env=server_env, generation=g,
                  extra_hosts=gateway[:1]),
        container("cvat_db", "postgres:15-alpine", generation=g,
                  env=[*env_base, f"POSTGRES_PASSWORD={SECRETS['POSTGRES_PASSWORD']}"]),
        container("nuclio", "quay.io/nuclio/dashboard:1.13.0-amd64", env=env_base, generation=g,
                  ports={"8070/tcp": [{"HostIp": "", "HostPort": "8070"}]}),
        container("bridge", "criobe/bridge:latest", generation=g, extra_hosts=gateway[:1],
                  ports={"8000/tcp": [{"HostIp": "", "HostPort": "8000"}]},
                  env=[*env_base, "CVAT_URL=http://cvat-server:8080", "CVAT_USER=admin",
                       f"CVAT_PWD={SECRETS['CVAT_PWD']}",
                       f"WEBHOOK_SECRET={SECRETS['WEBHOOK_SECRET']}", "AUTO_ANN_TIMEOUT=900"]),
        *(
            container(f"nuclio-nuclio-{fn}", FUNCTIONS[fn]["spec"]["image"], function=fn,
                      generation=g, env=[*env_base, "NUCLIO_FUNCTION_NAME=" + fn])
            for fn in FUNCTIONS
        ),
    ]  # fmt: skip


@dataclass
class RecordedStack:
    generation: int = 0
    containers: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FUNCTIONS))
    about: dict[str, Any] = field(default_factory=lambda: dict(ABOUT))
    versions: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(VERSIONS))
    bridge_cvat_sdk: str = "2.29.0"

    def __post_init__(self) -> None:
        if not self.containers:
            self.containers = _stack_containers(self.generation)

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.containers if c["Name"] == f"/{name}")

    def set_env(self, name: str, var: str, value: str) -> None:
        env = self.container(name)["Config"]["Env"]
        env[:] = [e for e in env if not e.startswith(f"{var}=")] + [f"{var}={value}"]

    def restarted(self) -> RecordedStack:
        """Every container recreated with the same configuration: new ids, start times,
        addresses, short-id aliases, random function ports (in Docker and the dashboard)."""
        again = RecordedStack(self.generation + 1, functions=copy.deepcopy(self.functions))
        for i, record in enumerate(again.functions.values()):
            record["status"]["httpPort"] = 40000 + i
            record["status"]["externalInvocationUrls"] = [f"0.0.0.0:{40000 + i}"]
        return again

    def fingerprint(self, digest: SecretDigest) -> dict[str, Any]:
        return fingerprint_of(
            self.containers,
            self.functions,
            digest=digest,
            nuclio_versions=self.versions,
            cvat_about=self.about,
            bridge_cvat_sdk=self.bridge_cvat_sdk,
        )
