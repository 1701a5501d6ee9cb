"""Build the twin's images under throw-away test tags and run them under throw-away names, away
from a running twin (never its names, network, ports or criobe-twin/* tags).

    lab = Lab()                                   # session id, label, network name
    image = lab.build("cvat-server")              # criobe-twin-test/cvat-server:st-<id>
    lab.network()                                 # criobetest_net_<id>
    name = lab.run("server", image, "init", "run", "server", env={...})
    lab.exec(name, "supervisorctl", "status")     # CompletedProcess (no check)
    lab.cleanup()                                 # containers, network, tags; also on failure

Every container carries the label criobetest.session=<id>, so cleanup finds what a failed
test left behind. Tags are removed with --no-prune: the layers stay in Docker's build cache,
so the next run builds warm. EXTRA_CA_CERT is taken from the environment, or else from the
CAs this machine adds (/usr/local/share/ca-certificates), as scripts/selftest.sh does.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWIN = ROOT / "twin"

# image name -> build context
CONTEXTS = {
    "cvat-server": TWIN / "images" / "cvat-server",
    "bridge": TWIN / "bridge",
    "opa": TWIN / "images" / "opa",
    "traefik": TWIN / "images" / "traefik",
    "cvat-ui": TWIN / "images" / "cvat-ui",
    "postgres": TWIN / "images" / "postgres",
    "redis": TWIN / "images" / "redis",
}

LABEL = "criobetest.session"


def docker(*args, check=True, timeout=600, **kwargs):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kwargs
    )


def docker_available():
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def extra_ca_cert():
    if os.environ.get("EXTRA_CA_CERT"):
        return os.environ["EXTRA_CA_CERT"]
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    return "".join(p.read_text() for p in certs)


class Lab:
    def __init__(self):
        self.id = secrets.token_hex(4)
        self.net = f"criobetest_net_{self.id}"
        self.tags: dict[str, str] = {}
        self.build_seconds: dict[str, float] = {}
        self._network_made = False

    def name(self, role):
        return f"criobetest-{self.id}-{role}"

    def build(self, image):
        if image in self.tags:
            return self.tags[image]
        tag = f"criobe-twin-test/{image}:st-{self.id}"
        env = dict(os.environ, EXTRA_CA_CERT=extra_ca_cert())
        started = time.monotonic()
        result = subprocess.run(
            ["docker", "build", "-q", "-t", tag, "--build-arg", "EXTRA_CA_CERT",
             "--label", f"{LABEL}={self.id}", str(CONTEXTS[image])],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(
                f"building {image} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        self.build_seconds[image] = time.monotonic() - started
        self.tags[image] = tag
        return tag

    def network(self):
        if not self._network_made:
            docker("network", "create", "--label", f"{LABEL}={self.id}", self.net)
            self._network_made = True
        return self.net

    def run(self, role, image, *command, env=None, entrypoint=None, detach=True):
        args = ["run", "--name", self.name(role), "--label", f"{LABEL}={self.id}"]
        if self._network_made:
            args += ["--network", self.net]
        for key, value in (env or {}).items():
            args += ["-e", key if value is None else f"{key}={value}"]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        if detach:
            args.append("-d")
        docker(*args, image, *command)
        return self.name(role)

    def exec(self, name, *command, env=None, timeout=120):
        args = ["exec"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return docker(*args, name, *command, check=False, timeout=timeout)

    def logs(self, name):
        result = docker("logs", name, check=False)
        return result.stdout + result.stderr

    def state(self, name):
        return docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()

    def cleanup(self):
        ids = docker(
            "ps", "-aq", "--filter", f"label={LABEL}={self.id}", check=False
        ).stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)
        if self._network_made:
            docker("network", "rm", self.net, check=False)
        for tag in self.tags.values():
            docker("rmi", "--no-prune", tag, check=False)


def wait_for(predicate, timeout, interval=0.5, what="condition"):
    """Poll predicate() until it returns a truthy value; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
