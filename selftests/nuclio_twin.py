"""A private Nuclio dashboard twin for the conformance selftests, beside (never on) the stack.

    lab = NuclioLab()
    lab.build()                        # processor, dashboard and test-function images
    lab.start_dashboard()              # container nuclio-twin-selftest on criobe_nuclio_selftest
    lab.api.get("/api/versions")
    lab.deploy("echo", project="cvat") # function config from selftests/data/nuclio-test-functions
    lab.wait_state("echo", "ready")
    lab.cleanup()                      # everything above, and nothing else

Isolation from the twin stack another developer may be running on the same engine: namespace
criobetest (function containers nuclio-criobetest-<name>), its own network, images tagged
criobe-selftest/*, the dashboard published on a free loopback port. Cleanup removes only those
names and labels.
"""

from __future__ import annotations

import copy
import glob
import os
import subprocess
import time
from pathlib import Path

import docker
import httpx
import yaml

from selftests import PROJECT_ROOT

NAMESPACE = "criobetest"
NETWORK = "criobe_nuclio_selftest"
DASHBOARD = "nuclio-twin-selftest"
TAG = "criobe-selftest"
DASHBOARD_IMAGE = f"{TAG}/nuclio-dashboard:1.13.0"
PROCESSOR_IMAGE = f"{TAG}/nuclio-processor:latest"
FUNCTIONS_DIR = Path(__file__).parent / "data" / "nuclio-test-functions"
TEST_FUNCTIONS = ("echo", "raises", "slow", "crash")
HEALTH_CHECK_INTERVAL = "1s"


def function_image(name: str) -> str:
    return f"{TAG}/{name}:latest"


def extra_ca_cert() -> str:
    """PEM text of the host's own CAs, which pip inside a build needs behind an HTTPS proxy."""
    if "EXTRA_CA_CERT" in os.environ:
        return os.environ["EXTRA_CA_CERT"]
    # joined and trimmed like build.sh's $(cat ...), so both builds share the layer cache
    return "".join(
        Path(p).read_text() for p in sorted(glob.glob("/usr/local/share/ca-certificates/*.crt"))
    ).rstrip("\n")


def _docker_build(context: Path, tag: str, *args: str) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        ["docker", "build", "-q", "-t", tag, *args, str(context)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"docker build {tag} failed:\n{proc.stdout}\n{proc.stderr}"
    return time.monotonic() - start


class NuclioLab:
    def __init__(self) -> None:
        self.docker = docker.from_env(timeout=120)
        self.timings: dict[str, float] = {}
        self.api: httpx.Client | None = None

    # images

    def build(self) -> None:
        base = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
        images = PROJECT_ROOT / "twin" / "images"
        self.timings["build processor"] = _docker_build(
            images / "nuclio-processor",
            PROCESSOR_IMAGE,
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"EXTRA_CA_CERT={extra_ca_cert()}",
        )
        self.timings["build dashboard"] = _docker_build(
            images / "nuclio-dashboard", DASHBOARD_IMAGE, "--build-arg", f"BASE_IMAGE={base}"
        )
        build_sh = PROJECT_ROOT / "twin" / "serverless" / "build.sh"
        for name in TEST_FUNCTIONS:
            start = time.monotonic()
            proc = subprocess.run(
                [str(build_sh), str(FUNCTIONS_DIR / name), function_image(name)],
                env={**os.environ, "NUCLIO_PROCESSOR_IMAGE": PROCESSOR_IMAGE},
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"build.sh {name}: {proc.stdout}\n{proc.stderr}"
            assert proc.stdout.strip() == function_image(name)
            self.timings[f"build function {name}"] = time.monotonic() - start

    # the dashboard container

    def start_dashboard(self) -> None:
        if not self.docker.networks.list(names=[NETWORK]):
            self.docker.networks.create(NETWORK, driver="bridge")
        self.docker.containers.run(
            DASHBOARD_IMAGE,
            name=DASHBOARD,
            detach=True,
            network=NETWORK,
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
            environment={
                "NUCLIO_CHECK_FUNCTION_CONTAINERS_HEALTHINESS": "true",
                "NUCLIO_TWIN_HEALTH_CHECK_INTERVAL": HEALTH_CHECK_INTERVAL,
                "NUCLIO_TWIN_HEALTH_CHECK_NAMESPACES": NAMESPACE,
            },
            ports={"8070/tcp": ("127.0.0.1", None)},
        )
        self._connect()

    def _connect(self, timeout: float = 30) -> None:
        container = self.docker.containers.get(DASHBOARD)
        deadline = time.monotonic() + timeout
        while True:
            container.reload()
            binding = (container.attrs["NetworkSettings"]["Ports"] or {}).get("8070/tcp")
            if binding:
                url = f"http://127.0.0.1:{binding[0]['HostPort']}"
                try:
                    if httpx.get(f"{url}/api/versions", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, "the dashboard twin did not answer"
            time.sleep(0.2)
        if self.api is not None:
            self.api.close()
        self.api = httpx.Client(
            base_url=url, timeout=30, headers={"x-nuclio-function-namespace": NAMESPACE}
        )

    def restart_dashboard(self) -> None:
        self.docker.containers.get(DASHBOARD).restart(timeout=5)
        self._connect()

    def recreate_dashboard(self) -> None:
        self.docker.containers.get(DASHBOARD).remove(force=True)
        self.start_dashboard()

    def container_health(self, name: str) -> str:
        state = self.docker.containers.get(name).attrs["State"]
        return (state.get("Health") or {}).get("Status", "")

    # functions

    def config(self, name: str, **spec_overrides) -> dict:
        config = yaml.safe_load((FUNCTIONS_DIR / name / "function.yaml").read_text())
        config["spec"]["image"] = function_image(name)
        config["spec"].setdefault("platform", {}).setdefault("attributes", {})["network"] = NETWORK
        config["spec"].update(copy.deepcopy(spec_overrides))
        return config

    def deploy(self, name: str, project: str = "cvat", config: dict | None = None):
        return self.api.post(
            "/api/functions",
            json=config or self.config(name),
            headers={"x-nuclio-project-name": project},
        )

    def function(self, name: str) -> dict:
        response = self.api.get(f"/api/functions/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_state(self, name: str, *states: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            function = self.function(name)
            if function["status"].get("state") in states:
                return function
            assert time.monotonic() < deadline, f"{name} stayed {function['status']}"
            time.sleep(0.2)

    def create_project(self, name: str):
        return self.api.post(
            "/api/projects",
            json={"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {}},
            headers={"x-nuclio-project-namespace": NAMESPACE},
        )

    # cleanup: only what carries the selftest's names and labels

    def cleanup(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None
        containers = {
            c.id: c for c in self.docker.containers.list(all=True, filters={"name": DASHBOARD})
        }
        for c in self.docker.containers.list(
            all=True, filters={"label": f"nuclio.io/namespace={NAMESPACE}"}
        ):
            containers[c.id] = c
        for c in self.docker.containers.list(all=True, filters={"name": f"nuclio-{NAMESPACE}-"}):
            containers[c.id] = c
        for c in containers.values():
            if c.name == DASHBOARD or c.name.startswith(f"nuclio-{NAMESPACE}-"):
                c.remove(force=True)
        for volume in self.docker.volumes.list():
            if volume.name.startswith(f"nuclio-{NAMESPACE}-"):
                volume.remove(force=True)
        for network in self.docker.networks.list(names=[NETWORK]):
            if network.name == NETWORK:
                network.remove()
        for image in self.docker.images.list():
            for tag in image.tags:
                if tag.startswith(f"{TAG}/"):
                    # keep the untagged layers: they are the next run's build cache
                    self.docker.images.remove(tag, noprune=True)
