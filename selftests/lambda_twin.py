"""A private CVAT twin for the lambda conformance replay, beside (never on) a running twin.

    twin = LambdaTwin()
    twin.up()                                # build under test tags, start, wait for the API
    twin.start_functions({"pth-yolo-gridcorners": answer, ...})
    twin.api_url                             # http://127.0.0.1:<free port> (its traefik)
    twin.dashboard("GET", "/_stub/requests") # what the stub dashboard received
    twin.cleanup()                           # everything above, and nothing else

It is the twin's own compose files (docker-compose.yml, bridge and serverless overlays,
docker-compose.ci.yml) plus an overlay written here: compose project `criobelambda`, every
container_name reset (compose-go's !reset), every image tagged criobe-twin-lambda/*:dev (the
running twin's criobe-twin/* tags are never touched), published ports moved to free loopback
ports. The Nuclio dashboard is replaced by the stub (selftests/lambda_stub/stub.py) as service
`nuclio`, so the name resolves on the private network as it did in the recording. The stub
functions are containers criobelambda-fn-<n> on the host's network: they listen on free host
ports, reached from CVAT as host.docker.internal:<port>, and see the sending container's own
address as the recorded functions did. Only cvat_server, cvat_worker_annotation, traefik, the
stub and their dependencies run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TWIN = ROOT / "twin"
STUB_DIR = Path(__file__).resolve().parent / "lambda_stub"
PROJECT = "criobelambda"
TAG = "criobe-twin-lambda"
FUNCTION_PREFIX = f"{PROJECT}-fn-"
LABEL = "criobelambda.role"
COMPOSE_FILES = (
    TWIN / "docker-compose.yml",
    TWIN / "bridge" / "docker-compose.bridge.yml",
    TWIN / "components" / "serverless" / "docker-compose.serverless.yml",
    ROOT / "docker-compose.ci.yml",
)
SERVICES = ("traefik", "cvat_server", "cvat_worker_annotation", "nuclio")
# service -> image name under TAG (services sharing an image are built by the first)
IMAGES = {
    "traefik": "traefik", "cvat_db": "postgres", "cvat_redis_inmem": "redis",
    "cvat_redis_ondisk": "redis", "cvat_opa": "opa", "cvat_server": "cvat-server",
    "cvat_utils": "cvat-server", "cvat_worker_import": "cvat-server",
    "cvat_worker_export": "cvat-server", "cvat_worker_annotation": "cvat-server",
    "cvat_worker_webhooks": "cvat-server", "cvat_worker_quality_reports": "cvat-server",
    "cvat_worker_analytics_reports": "cvat-server", "cvat_worker_chunks": "cvat-server",
    "cvat_ui": "cvat-ui", "bridge": "bridge", "nuclio": "cvat-server",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def extra_ca_cert() -> str:
    """As scripts/selftest.sh exports it, so these builds share the running twin's layers."""
    if os.environ.get("EXTRA_CA_CERT"):
        return os.environ["EXTRA_CA_CERT"]
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    return "".join(p.read_text() for p in certs).rstrip("\n")


def docker(*args, check=True, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kwargs
    )


def image(name: str) -> str:
    return f"{TAG}/{name}:dev"


class LambdaTwin:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="criobelambda-"))
        self.workdir.chmod(0o755)
        self.ports = {
            "traefik": free_port(),
            "traefik_dashboard": free_port(),
            "bridge": free_port(),
            "dashboard": free_port(),
        }
        self.function_ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    @property
    def api_url(self) -> str:
        return f"http://localhost:{self.ports['traefik']}"

    # -- compose --------------------------------------------------------------------------

    def overlay(self) -> Path:
        """The private project's overlay (YAML: JSON would not carry !reset)."""
        lines = ["services:"]
        for service, name in IMAGES.items():
            lines += [
                f"  {service}:",
                "    container_name: !reset null",
                f"    image: {image(name)}",
            ]
            if service == "traefik":
                lines += ["    ports: !override",
                          f'      - "127.0.0.1:{self.ports["traefik"]}:8080"',
                          f'      - "127.0.0.1:{self.ports["traefik_dashboard"]}:8090"']  # fmt: skip
            elif service == "bridge":
                lines += [
                    "    ports: !override",
                    f'      - "127.0.0.1:{self.ports["bridge"]}:8000"',
                ]
            elif service == "nuclio":
                # the stub runs with the cvat-server image's python3, nothing to build
                lines += [
                    "    build: !reset null",
                    "    pull_policy: never",
                    "    ports: !override",
                    f'      - "127.0.0.1:{self.ports["dashboard"]}:8070"',
                    "    volumes: !override",
                    f'      - "{STUB_DIR}:/stub:ro"',
                    f'      - "{self.workdir}:/stub-data:ro"',
                    '    entrypoint: ["python3", "/stub/stub.py"]',
                    '    command: ["dashboard", "--port", "8070", "--functions",'
                    ' "/stub-data/functions.json"]',
                ]
        path = self.workdir / "docker-compose.lambda.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def compose(self, *args, timeout=1800, check=True) -> subprocess.CompletedProcess:
        files = [a for f in (*COMPOSE_FILES, self.workdir / "docker-compose.lambda.yml")
                 for a in ("-f", str(f))]  # fmt: skip
        env = {**os.environ, "EXTRA_CA_CERT": extra_ca_cert()}
        return subprocess.run(
            ["docker", "compose", "-p", PROJECT, "--project-directory", str(TWIN), *files, *args],
            capture_output=True, text=True, check=check, timeout=timeout, env=env,
        )  # fmt: skip

    def write_functions(self, functions: dict) -> None:
        path = self.workdir / "functions.json"
        path.write_text(json.dumps(functions))
        path.chmod(0o644)

    def up(self, functions: dict) -> None:
        self.write_functions(functions)
        self.overlay()
        started = time.monotonic()
        result = self.compose("build", "cvat_server", "traefik", "cvat_db", "cvat_redis_inmem",
                              "cvat_opa", check=False)  # fmt: skip
        assert result.returncode == 0, (
            f"build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        self.timings["build"] = time.monotonic() - started
        started = time.monotonic()
        result = self.compose("up", "-d", "--no-build", *SERVICES, check=False)
        assert result.returncode == 0, f"up failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        self.wait_api()
        self.timings["up"] = time.monotonic() - started

    def wait_api(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.api_url}/api/server/about", timeout=5)
                if r.status_code == 200:
                    return
                last = r.status_code
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise AssertionError(f"the private twin's API did not come up ({last})\n{self.logs()}")

    def container(self, service: str) -> str:
        out = self.compose("ps", "-a", "-q", service).stdout.split()
        assert out, f"no container for {service}"
        return out[0]

    def ip(self, service: str) -> str:
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        return docker("inspect", "-f", fmt, self.container(service)).stdout.split()[0]

    def exec(self, service: str, *cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
        args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        return docker("exec", *args, self.container(service), *cmd, check=False, timeout=120)

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", *services, check=False).stdout

    # -- the stub dashboard ----------------------------------------------------------------

    def dashboard(self, method: str, path: str, body=None):
        url = f"http://127.0.0.1:{self.ports['dashboard']}{path}"
        return httpx.request(method, url, json=body, timeout=10).json()

    def stop_dashboard(self) -> None:
        self.compose("stop", "-t", "5", "nuclio")

    def start_dashboard(self, timeout: float = 30) -> None:
        self.compose("start", "nuclio")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.dashboard("GET", "/_stub/requests")
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the stub dashboard did not come back"
                time.sleep(0.2)

    # -- the stub functions ----------------------------------------------------------------

    def start_functions(self, answers: dict[str, dict]) -> None:
        for index, (name, answer) in enumerate(answers.items()):
            port = self.function_ports[name]
            path = self.workdir / f"answer-{index}.json"
            path.write_text(json.dumps(answer))
            path.chmod(0o644)
            docker(
                "run", "-d", "--name", f"{FUNCTION_PREFIX}{index}", "--label", f"{LABEL}=function",
                "--network", "host", "-v", f"{STUB_DIR}:/stub:ro",
                "-v", f"{self.workdir}:/stub-data:ro", "--entrypoint", "python3",
                image("cvat-server"), "/stub/stub.py", "function", "--port", str(port),
                "--answer", f"/stub-data/{path.name}",
            )  # fmt: skip
        for name in answers:
            self._wait_function(name)

    def _wait_function(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.function(name, "GET", "/_stub/requests")
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"stub function {name} did not start"
                time.sleep(0.2)

    def function(self, name: str, method: str, path: str, body=None):
        url = f"http://127.0.0.1:{self.function_ports[name]}{path}"
        return httpx.request(method, url, json=body, timeout=10).json()

    # -- teardown: only what this project and its function containers are -----------------

    def cleanup(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}=function", check=False).stdout.split()
        for cid in ids:
            name = docker("inspect", "-f", "{{.Name}}", cid, check=False).stdout.strip("/\n")
            if name.startswith(FUNCTION_PREFIX):
                docker("rm", "-f", cid, check=False)
        if (self.workdir / "docker-compose.lambda.yml").exists():
            self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)
        else:
            # by project name alone (containers, network and volumes carry its label), from a
            # directory holding no compose file
            subprocess.run(
                ["docker", "compose", "-p", PROJECT, "down", "-v", "--remove-orphans", "-t", "5"],
                capture_output=True, text=True, timeout=600, cwd=self.workdir,
            )  # fmt: skip
        for name in sorted(set(IMAGES.values())):
            docker("rmi", "--no-prune", image(name), check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
