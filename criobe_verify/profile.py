"""What a stack must look like, read from a TOML profile and validated on load.

    >>> from criobe_verify.profile import load_profile
    >>> profile = load_profile("profiles/criobe.toml")
    >>> profile.container("cvat_server").aliases
    ('cvat-server',)

A malformed profile raises ProfileError whose single line names the file, the key and
what was expected, so a typo in a user's profile stops the run before any check runs.
"""

from __future__ import annotations

import datetime
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from criobe_verify.paths import GOLDEN_DIR
from criobe_verify.waivers import Waiver

RESTART_POLICIES = ("always", "unless-stopped", "on-failure", "no")
ROLES = ("corners", "grid", "inpaint", "corals", "interactor")
DEPLOYERS = ("dashboard", "nuctl")
LAMA_RESPONSES = ("image-b64-png",)
CORAL_OUTPUTS = ("mask", "polygon")
PROTOCOLS = ("cvat-front", "nuclio-dashboard", "bridge", "none")
EXPOSURES = ("public", "loopback", "gateway")


class ProfileError(ValueError):
    """A profile that cannot be used; str() is one line: file, key, expectation."""


@dataclass(frozen=True)
class Container:
    name: str
    service: str
    restart: str = "always"
    image: str | None = None
    optional: bool = False
    aliases: tuple[str, ...] = ()
    healthcheck: bool = False
    # Runs CVAT's supervisord (the cvat/server image): its programs are checked too.
    supervisord: bool = False


@dataclass(frozen=True)
class Port:
    port: int
    container: str
    protocol: str
    exposure: str
    free_before_install: bool = True


@dataclass(frozen=True)
class DnsProbe:
    source: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Function:
    name: str
    optional: bool = False
    # What it does in the pipeline: the inference checks and the e2e pick functions by role.
    role: str = "corners"
    # Its directory in the checkout (function.yaml, main.py), for the bring-up's deploy.
    path: str = ""
    # p95 budgets in seconds per hardware class (--budgets gpu|cpu); a policy check.
    budget_gpu_s: float | None = None
    budget_cpu_s: float | None = None

    @property
    def container(self) -> str:
        # Nuclio's local platform names containers nuclio-<namespace>-<name>; CVAT uses namespace nuclio.
        return f"nuclio-nuclio-{self.name}"


@dataclass(frozen=True)
class Gateway:
    """How CVAT reaches the bridge: through each container's Smokescreen to bridge.gateway."""

    containers: tuple[str, ...] = ("cvat_server", "cvat_worker_webhooks")
    hostname: str = "bridge.gateway"
    port: int = 8000
    path: str = "/health"
    proxy: str = "127.0.0.1:4750"
    # A stack-private address Smokescreen must keep refusing (SSRF protection).
    private_target: str = "cvat_db"
    private_port: int = 5432


@dataclass(frozen=True)
class Bridge:
    """What the install guide leaves unknown about the real bridge, said by the profile."""

    # The guide registers a webhook on /health and expects its ping to show 200; a GET-only
    # /health answers the ping's POST with 405. true: 405 fails the guide's check.
    health_accepts_post: bool = True


@dataclass(frozen=True)
class Nuclio:
    project: str = "cvat"
    version: str = "1.13.0"
    # How --stack twin|up deploys the functions: through the dashboard's API from prebuilt
    # images (spec.image, the guide's Windows path), or with `nuctl deploy` when on PATH.
    deploy: str = "dashboard"
    ready_timeout_s: float = 300.0


@dataclass(frozen=True)
class Inference:
    corner_error_px_max: float = 3.0
    grid_mean_error_px_max: float = 3.0
    coral_iou_min: float = 0.8
    # The real pth-lama's answer format is unknown; the profile names the one it expects.
    lama_response: str = "image-b64-png"
    # CONTRACTS §6 allows polygons or masks for the coral detector.
    coral_output: str = "mask"
    # Golden outputs: per function, the recorded baseline. A relative folder is read from the
    # profile's own folder; unset, the suite's golden answers of the twin's functions.
    golden_dir: str = ""
    golden_tolerance_px: float = 2.0
    # A regression check: the same answer as recorded, much tighter than accuracy's bar.
    golden_iou_min: float = 0.97
    # Whether the synthetic sample means anything to these functions: the twin's are made for
    # it; real CRIOBE models were trained on real photos and are judged on a lab's sample.
    synthetic_sample: bool = False


@dataclass(frozen=True)
class Latency:
    calls: int = 10
    warmup: int = 2
    # Which budget applies (--budgets overrides): the lab's GPU host, or CPU only (the twin).
    budgets: str = "gpu"


@dataclass(frozen=True)
class E2E:
    """The full webhook-to-annotation run, and what the guide leaves unknown about it."""

    workflows: tuple[str, ...] = ("two-stage",)
    # Each stage's bound; the real bridge waits up to AUTO_ANN_TIMEOUT (900 s) for a model.
    stage_timeout_s: float = 900.0
    # How long the run is watched after its last stage for anything happening twice.
    settle_s: float = 3.0
    warped_name: str = "{name}_warped"
    clean_name: str = "{name}_clean"
    # The `source` of the shapes the bridge writes (lambda requests write "auto").
    shape_source: str = "auto"


@dataclass(frozen=True)
class Stability:
    # A container (or a supervisord program) restarted by its policy within this many
    # seconds counts as crash-looping; one that recovered long ago does not.
    recent_restart_s: float = 600.0


# Configuration drift `criobe-verify compare` lists as a finding (exit 10), by drift key
# (criobe_verify/drift.py; fnmatch patterns): what breaks a CRIOBE stack when it changes
# unnoticed in an upgrade. Any other difference (an image rebuilt under the same tag, an
# environment variable added) is listed as information.
RISKY_DRIFT = (
    "container/*/present", "container/*/image", "container/*/restart", "container/*/network/*",
    "container/*/ports/*", "container/*/extra_hosts/*", "container/*/secret/*",
    "container/*/env/SMOKESCREEN_OPTS", "container/*/env/ALLOWED_HOSTS",
    "container/*/env/CVAT_URL", "container/*/env/CVAT_HOST", "container/*/env/NUCLIO_*",
    "container/*/env/CVAT_SERVERLESS", "container/*/env/CVAT_NUCLIO_*",
    "function/*", "version/*",
)  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    """How `criobe-verify compare` judges configuration drift (the `[baseline]` table)."""

    # Drift keys that are findings; `risky` in a profile replaces this list.
    risky: tuple[str, ...] = RISKY_DRIFT
    # Drift keys left out of the comparison altogether (a lab's own volatile variable).
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiClient:
    """A program of the stack that drives the Docker engine with an API version of its own:
    an engine whose minimum API version is above it refuses it ("client version 1.42 is too
    old")."""

    name: str
    api_version: str
    source: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Profile:
    path: Path
    name: str
    description: str
    compose_project: str
    network: str
    cvat_url: str
    cvat_host: str
    cvat_version: str
    nuclio_url: str
    bridge_url: str
    disk_free_gb_min: float
    docker_min_version: str
    compose_min_version: str
    containers: tuple[Container, ...]
    ports: tuple[Port, ...]
    internal_ports: tuple[int, ...]
    dns: tuple[DnsProbe, ...]
    functions: tuple[Function, ...] = field(default=())
    gateway: Gateway = field(default_factory=Gateway)
    gateway_ip: str | None = None
    # Test ids (fnmatch patterns) that may skip without failing a strict run.
    allowed_skips: tuple[str, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    bridge: Bridge = field(default_factory=Bridge)
    nuclio: Nuclio = field(default_factory=Nuclio)
    inference: Inference = field(default_factory=Inference)
    latency: Latency = field(default_factory=Latency)
    e2e: E2E = field(default_factory=E2E)
    stability: Stability = field(default_factory=Stability)
    baseline: Baseline = field(default_factory=Baseline)
    # The container whose image lends python3 to probes of containers without it.
    probe_image_from: str = "cvat_server"
    # The stack's programs that drive the engine, with the API version each speaks.
    docker_api_clients: tuple[ApiClient, ...] = ()

    @property
    def golden_dir(self) -> Path:
        """Where the functions' golden answers are: [inference] golden_dir, relative to the
        profile file's folder, or the suite's recorded answers of the twin's functions."""
        if not self.inference.golden_dir:
            return GOLDEN_DIR
        return (self.path.parent / self.inference.golden_dir).resolve()

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def required_containers(self) -> tuple[Container, ...]:
        return tuple(c for c in self.containers if not c.optional)


class _Reader:
    """Typed access to a TOML table that names the file and dotted key on any error."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, got: Any = None, missing: bool = False) -> ProfileError:
        where = f"{self.prefix}{key}"
        what = "missing" if missing else f"got {got!r}"
        return ProfileError(f"{self.path}: {where}: expected {expected}; {what}")

    def get(
        self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = ...
    ) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.fail(key, expected, missing=True)
            return default
        value = self.data[key]
        # bool is an int in Python; a profile saying `port = true` is still wrong.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, expected, value)
        if not isinstance(value, kind):
            raise self.fail(key, expected, value)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        expected = "one of " + ", ".join(choices)
        value = self.get(key, str, expected, default)
        if value not in choices:
            raise self.fail(key, expected, value)
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, "a list of strings", default)
        if not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "a list of non-empty strings", value)
        return tuple(value)

    def port(self, key: str) -> int:
        value = self.get(key, int, "a TCP port number (1-65535)")
        if not 1 <= value <= 65535:
            raise self.fail(key, "a TCP port number (1-65535)", value)
        return value

    def table(self, key: str) -> _Reader:
        value = self.get(key, dict, "a table")
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def tables(self, key: str, default: Any = ...) -> list[_Reader]:
        value = self.get(key, list, "an array of tables", default)
        readers = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ProfileError(
                    f"{self.path}: {self.prefix}{key}[{i}]: expected a table; got {item!r}"
                )
            readers.append(_Reader(self.path, item, f"{self.prefix}{key}[{i}]."))
        return readers

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ProfileError(
                f"{self.path}: {self.prefix}{unknown[0]}: unknown key "
                f"(known: {', '.join(sorted(self.used))})"
            )


def _version(reader: _Reader, key: str) -> str:
    value = reader.get(key, str, "a version such as '20.10'")
    parts = value.split(".")
    if not all(p.isdigit() for p in parts):
        raise reader.fail(key, "a version such as '20.10'", value)
    return value


def _api_client(reader: _Reader) -> ApiClient:
    client = ApiClient(
        name=reader.get("name", str, "the program's name"),
        api_version=_version(reader, "api_version"),
        source=reader.get("source", str, "where the version comes from", ""),
        fix=reader.get("fix", str, "how to get a newer client", ""),
    )
    reader.reject_unknown()
    return client


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile; raises ProfileError with a one-line explanation."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None

    top = _Reader(path, raw)
    meta = top.table("profile")
    stack = top.table("stack")
    host = top.table("host")
    exposure = top.table("exposure")

    gateway_ip = stack.get("gateway_ip", str, "an IPv4 address or 'auto'", "auto")
    if gateway_ip != "auto":
        try:
            ipaddress.IPv4Address(gateway_ip)
        except ValueError:
            raise stack.fail("gateway_ip", "an IPv4 address or 'auto'", gateway_ip) from None

    containers = []
    for r in top.tables("containers"):
        name = r.get("name", str, "a container name")
        containers.append(
            Container(
                name=name,
                service=r.get("service", str, "a compose service name", name),
                restart=r.choice("restart", RESTART_POLICIES, "always"),
                image=r.get("image", str, "an image reference such as 'cvat/server:v2.29.0'", None),
                optional=r.get("optional", bool, "true or false", False),
                aliases=r.strings("aliases", ()),
                healthcheck=r.get("healthcheck", bool, "true or false", False),
                supervisord=r.get("supervisord", bool, "true or false", False),
            )
        )
        r.reject_unknown()
    names = [c.name for c in containers]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ProfileError(f"{path}: containers: expected unique names; {sorted(dupes)[0]!r} twice")

    ports = []
    for r in top.tables("ports"):
        p = Port(
            port=r.port("port"),
            container=r.get("container", str, "the name of a container in [[containers]]"),
            protocol=r.choice("protocol", PROTOCOLS),
            exposure=r.choice("exposure", EXPOSURES),
            free_before_install=r.get("free_before_install", bool, "true or false", True),
        )
        if p.container not in names:
            raise r.fail("container", "the name of a container in [[containers]]", p.container)
        r.reject_unknown()
        ports.append(p)

    dns = []
    for r in top.tables("dns", []):
        probe = DnsProbe(
            source=r.get("from", str, "the name of a container in [[containers]]"),
            names=r.strings("names"),
        )
        if probe.source not in names:
            raise r.fail("from", "the name of a container in [[containers]]", probe.source)
        r.reject_unknown()
        dns.append(probe)

    functions = []
    for r in top.tables("functions", []):
        budgets = {}
        for hw in ("gpu", "cpu"):
            value = r.get(f"budget_{hw}_s", (int, float), "seconds", None)
            budgets[f"budget_{hw}_s"] = None if value is None else float(value)
        functions.append(
            Function(
                name=r.get("name", str, "a Nuclio function name"),
                optional=r.get("optional", bool, "true or false", False),
                role=r.choice("role", ROLES),
                path=r.get("path", str, "the function's directory in the checkout", ""),
                **budgets,
            )
        )
        r.reject_unknown()

    def section(key: str, cls, fields: dict[str, tuple]):
        """An optional table of the profile: each field (kind, expected) or a choice tuple."""
        if key not in raw:
            top.used.add(key)
            return cls()
        reader = top.table(key)
        default = cls()
        values = {}
        for name, spec in fields.items():
            if spec[0] == "choice":
                values[name] = reader.choice(name, spec[1], getattr(default, name))
            else:
                values[name] = reader.get(name, spec[0], spec[1], getattr(default, name))
                if spec[0] == (int, float):
                    values[name] = float(values[name])
        reader.reject_unknown()
        return cls(**values)

    nuclio = section(
        "nuclio",
        Nuclio,
        {
            "project": (str, "a Nuclio project name"),
            "version": (str, "a version such as '1.13.0'"),
            "deploy": ("choice", DEPLOYERS),
            "ready_timeout_s": ((int, float), "seconds"),
        },
    )
    inference = section(
        "inference",
        Inference,
        {
            "corner_error_px_max": ((int, float), "pixels"),
            "grid_mean_error_px_max": ((int, float), "pixels"),
            "coral_iou_min": ((int, float), "an IoU between 0 and 1"),
            "lama_response": ("choice", LAMA_RESPONSES),
            "coral_output": ("choice", CORAL_OUTPUTS),
            "golden_dir": (str, "a folder (relative to the profile's folder)"),
            "golden_tolerance_px": ((int, float), "pixels"),
            "golden_iou_min": ((int, float), "an IoU between 0 and 1"),
            "synthetic_sample": (bool, "true or false"),
        },
    )
    e2e = section(
        "e2e",
        E2E,
        {
            "workflows": (list, "a list of workflows: two-stage, three-stage"),
            "stage_timeout_s": ((int, float), "seconds"),
            "settle_s": ((int, float), "seconds"),
            "warped_name": (str, "a task name template with {name}"),
            "clean_name": (str, "a task name template with {name}"),
            "shape_source": ("choice", ("auto", "manual")),
        },
    )
    bad = [w for w in e2e.workflows if w not in ("two-stage", "three-stage")]
    if bad:
        raise ProfileError(
            f"{path}: e2e.workflows: expected two-stage, three-stage; got {bad[0]!r}"
        )
    e2e = E2E(**{**e2e.__dict__, "workflows": tuple(e2e.workflows)})
    latency = section(
        "latency",
        Latency,
        {
            "calls": (int, "a number of calls"),
            "warmup": (int, "a number of calls"),
            "budgets": ("choice", ("gpu", "cpu")),
        },
    )

    baseline = Baseline()
    if "baseline" in raw:
        b = top.table("baseline")
        baseline = Baseline(risky=b.strings("risky", baseline.risky),
                            ignore=b.strings("ignore", baseline.ignore))  # fmt: skip
        b.reject_unknown()
    top.used.add("baseline")

    gateway = Gateway()
    if "gateway" in raw:
        g = top.table("gateway")
        gateway = Gateway(
            containers=g.strings("containers", gateway.containers),
            hostname=g.get("hostname", str, "a host name", gateway.hostname),
            port=g.port("port") if "port" in g.data else gateway.port,
            path=g.get("path", str, "a URL path", gateway.path),
            proxy=g.get("proxy", str, "host:port of Smokescreen", gateway.proxy),
            private_target=g.get("private_target", str, "a container name", gateway.private_target),
            private_port=g.port("private_port")
            if "private_port" in g.data
            else gateway.private_port,
        )
        for name in (*gateway.containers, gateway.private_target):
            if name not in names:
                raise g.fail("containers", "names of containers in [[containers]]", name)
        g.reject_unknown()
    else:
        top.used.add("gateway")

    waivers = []
    for r in top.tables("waivers", []):
        expires = r.get("expires", datetime.date, "a date such as 2027-06-30", None)
        waivers.append(
            Waiver(
                check=r.get("check", str, "a test id or fnmatch pattern of test ids"),
                reason=r.get("reason", str, "why the finding is accepted"),
                expires=expires,
            )
        )
        if not waivers[-1].reason.strip():
            raise r.fail("reason", "why the finding is accepted", "")
        r.reject_unknown()

    bridge = Bridge()
    if "bridge" in raw:
        b = top.table("bridge")
        bridge = Bridge(
            health_accepts_post=b.get(
                "health_accepts_post", bool, "true or false", bridge.health_accepts_post
            )
        )
        b.reject_unknown()
    else:
        top.used.add("bridge")
    stability = Stability()
    if "stability" in raw:
        s = top.table("stability")
        stability = Stability(
            recent_restart_s=float(
                s.get("recent_restart_s", (int, float), "seconds", stability.recent_restart_s)
            )
        )
        s.reject_unknown()
    else:
        top.used.add("stability")
    probe_image_from = stack.get(
        "probe_image_from", str, "the name of a container in [[containers]]", "cvat_server"
    )
    if probe_image_from not in names:
        raise stack.fail(
            "probe_image_from", "the name of a container in [[containers]]", probe_image_from
        )

    internal = exposure.get("internal_ports", list, "a list of port numbers")
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in internal):
        raise exposure.fail("internal_ports", "a list of port numbers", internal)

    profile = Profile(
        path=path,
        name=meta.get("name", str, "a profile name"),
        description=meta.get("description", str, "a sentence", ""),
        compose_project=stack.get("compose_project", str, "a compose project name", "cvat"),
        network=stack.get("network", str, "a Docker network name", "cvat_cvat"),
        cvat_url=stack.get("cvat_url", str, "a URL such as 'http://localhost:8080'"),
        cvat_host=stack.get("cvat_host", str, "the Host Traefik routes (CVAT_HOST)", "localhost"),
        cvat_version=_version(stack, "cvat_version"),
        nuclio_url=stack.get("nuclio_url", str, "a URL such as 'http://localhost:8070'"),
        bridge_url=stack.get("bridge_url", str, "a URL such as 'http://localhost:8000'"),
        disk_free_gb_min=float(host.get("disk_free_gb_min", (int, float), "a number of GB")),
        docker_min_version=_version(host, "docker_min_version"),
        compose_min_version=_version(host, "compose_min_version"),
        docker_api_clients=tuple(_api_client(c) for c in host.tables("docker_api_clients", [])),
        containers=tuple(containers),
        ports=tuple(ports),
        internal_ports=tuple(internal),
        dns=tuple(dns),
        functions=tuple(functions),
        gateway=gateway,
        gateway_ip=None if gateway_ip == "auto" else gateway_ip,
        allowed_skips=meta.strings("allowed_skips", ()),
        waivers=tuple(waivers),
        bridge=bridge,
        nuclio=nuclio,
        inference=inference,
        latency=latency,
        e2e=e2e,
        stability=stability,
        baseline=baseline,
        probe_image_from=probe_image_from,
    )
    for reader in (meta, stack, host, exposure, top):
        reader.reject_unknown()
    return profile
