"""What a stack must look like: a TOML profile, read into a declarative model (msgspec
Structs that mirror the file's tables) and validated on load.

    >>> from criobe_verify.profile import load_profile
    >>> profile = load_profile("profiles/criobe.toml")
    >>> profile.container("cvat_server").aliases
    ('cvat-server',)
    >>> profile.stack.cvat_url == profile.cvat_url    # [stack] cvat_url, also as profile.cvat_url
    True

A malformed profile raises ProfileError whose single line names the file, the key, the value,
what was expected and the fix, so a typo in a user's profile stops the run before any check
runs. The same model publishes the profile's JSON Schema (criobe_verify/profile_schema.py),
which an editor uses to complete and check a profile as it is written.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from criobe_verify.bad_input import InputError, did_you_mean
from criobe_verify.paths import GOLDEN_DIR
from criobe_verify.schema_errors import explain
from criobe_verify.waivers import Waiver

# Value types, each with what it must be in words: the schema shows them, errors say them.
Name = Annotated[str, Meta(min_length=1, description="a non-empty name")]
ContainerName = Annotated[
    str, Meta(min_length=1, description="the name of a container in [[containers]]")
]
PortNumber = Annotated[int, Meta(ge=1, le=65535, description="a TCP port number (1-65535)")]
VERSION_PATTERN = r"^\d+(\.\d+)*$"
Version = Annotated[str, Meta(pattern=VERSION_PATTERN, description="a version such as '20.10'")]
Seconds = Annotated[float, Meta(gt=0, description="seconds (a positive number)")]
Pixels = Annotated[float, Meta(ge=0, description="pixels (a number ≥ 0)")]
IoU = Annotated[float, Meta(ge=0, le=1, description="an IoU between 0 and 1")]
# A stack URL carries no credentials (the suite reads them from the bridge's environment).
URL_PATTERN = r"^https?://[^\s/@]+(/\S*)?$"


def _url(example: str) -> Any:
    return Annotated[str, Meta(pattern=URL_PATTERN, description=f"a URL such as {example!r}")]


CvatUrl = _url("http://localhost:8080")
NuclioUrl = _url("http://localhost:8070")
BridgeUrl = _url("http://localhost:8000")
_IPV4 = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
Truthy = Annotated[bool, Meta(description="true or false")]


class ProfileError(InputError):
    """A profile that cannot be used; str() is one line: file, key, value, expectation, fix."""

    def __init__(self, path: Path, key: str, problem: str, expected: str = "", fix: str = ""):
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}" if key else str(path), problem, expected, fix)


class About(Struct, frozen=True, forbid_unknown_fields=True):
    """[profile]: the profile's name and the skips a strict run accepts."""

    name: Annotated[str, Meta(min_length=1, description="a profile name")]
    description: Annotated[str, Meta(description="a sentence")] = ""
    # Test ids (fnmatch patterns) that may skip without failing a strict run.
    allowed_skips: Annotated[
        tuple[Name, ...], Meta(description="check ids (patterns) that may skip in a strict run")
    ] = ()


class StackSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """[stack]: where the stack answers and what it is called."""

    cvat_url: CvatUrl
    cvat_version: Version
    nuclio_url: NuclioUrl
    bridge_url: BridgeUrl
    compose_project: Annotated[str, Meta(min_length=1, description="a compose project name")] = (
        "cvat"
    )
    network: Annotated[str, Meta(min_length=1, description="a Docker network name")] = "cvat_cvat"
    cvat_host: Annotated[
        str, Meta(min_length=1, description="the Host Traefik routes (CVAT_HOST)")
    ] = "localhost"
    gateway_ip: Annotated[
        str,
        Meta(pattern=rf"^(auto|{_IPV4}(\.{_IPV4}){{3}})$", description="an IPv4 address or 'auto'"),
    ] = "auto"
    # The container whose image lends python3 to probes of containers without it.
    probe_image_from: ContainerName = "cvat_server"


class ApiClient(Struct, frozen=True, forbid_unknown_fields=True):
    """A program of the stack that drives the Docker engine with an API version of its own:
    an engine whose minimum API version is above it refuses it ("client version 1.42 is too
    old")."""

    name: Annotated[str, Meta(min_length=1, description="the program's name")]
    api_version: Annotated[
        str, Meta(pattern=VERSION_PATTERN, description="a Docker API version such as '1.42'")
    ]
    source: Annotated[str, Meta(description="where the version comes from")] = ""
    fix: Annotated[str, Meta(description="how to get a newer client")] = ""


class HostSettings(Struct, frozen=True, forbid_unknown_fields=True):
    """[host]: what the machine that runs the stack needs."""

    disk_free_gb_min: Annotated[float, Meta(ge=0, description="a number of GB")]
    docker_min_version: Version
    compose_min_version: Version
    docker_api_clients: tuple[ApiClient, ...] = ()
    # The share of the GPUs' memory the deployed functions may hold together (policy): the
    # guide warns that several models on one GPU run it out of memory.
    gpu_memory_share_max: Annotated[
        float, Meta(gt=0, le=1, description="a share between 0 and 1 (0.9: 90 %)")
    ] = 0.9


class Exposure(Struct, frozen=True, forbid_unknown_fields=True):
    """[exposure]: ports that must not be published on public interfaces."""

    internal_ports: Annotated[tuple[PortNumber, ...], Meta(description="a list of port numbers")]


class Container(Struct, frozen=True, forbid_unknown_fields=True):
    """[[containers]]: a container the stack must have."""

    name: Annotated[str, Meta(min_length=1, description="a container name")]
    # Its compose service; empty: the container's name (load_profile fills it in).
    service: Annotated[str, Meta(description="a compose service name (default: the name)")] = ""
    restart: Literal["always", "unless-stopped", "on-failure", "no"] = "always"
    image: (
        Annotated[
            str,
            Meta(pattern=r"^\S+$", description="an image reference such as 'cvat/server:v2.29.0'"),
        ]
        | None
    ) = None
    optional: Truthy = False
    aliases: Annotated[tuple[Name, ...], Meta(description="a list of network aliases")] = ()
    healthcheck: Truthy = False
    # Runs CVAT's supervisord (the cvat/server image): its programs are checked too.
    supervisord: Truthy = False


class Port(Struct, frozen=True, forbid_unknown_fields=True):
    """[[ports]]: a host port the stack publishes, what answers there and who may reach it."""

    port: PortNumber
    container: ContainerName
    protocol: Literal["cvat-front", "nuclio-dashboard", "bridge", "none"]
    exposure: Literal["public", "loopback", "gateway"]
    free_before_install: Truthy = True


class DnsProbe(Struct, frozen=True, forbid_unknown_fields=True):
    """[[dns]]: names that must resolve inside a container."""

    source: ContainerName = field(name="from")
    names: Annotated[tuple[Name, ...], Meta(min_length=1, description="a list of host names")]


class Function(Struct, frozen=True, forbid_unknown_fields=True):
    """[[functions]]: a Nuclio function the stack must serve."""

    name: Annotated[str, Meta(min_length=1, description="a Nuclio function name")]
    # What it does in the pipeline: the inference checks and the e2e pick functions by role.
    role: Literal["corners", "grid", "inpaint", "corals", "interactor"]
    optional: Truthy = False
    # Its directory in the checkout (function.yaml, main.py), for the bring-up's deploy.
    path: Annotated[str, Meta(description="the function's directory in the checkout")] = ""
    # p95 budgets in seconds per hardware class (--budgets gpu|cpu); a policy check.
    budget_gpu_s: Seconds | None = None
    budget_cpu_s: Seconds | None = None
    # Whether it must run on a GPU: "required" fails a function on the CPU, "optional" reports
    # what it has, "none" runs it on the CPU unchecked (no GPU check is collected for it).
    gpu: Literal["required", "optional", "none"] = "none"
    # Where its model weights are inside its container; unset, the check reads the paths its
    # spec names (spec.env, spec.volumes, build steps: criobe_verify/resources/weights.py).
    weights: Annotated[
        str, Meta(pattern=r"^(/\S*)?$", description="an absolute path inside the container")
    ] = ""
    # Below this a weights file is not a model: a failed download leaves an HTML error page
    # or a Git LFS pointer (bytes to KB), while the smallest real ones (YOLO nano) are ~5 MB.
    weights_min_mb: Annotated[float, Meta(gt=0, description="megabytes (a positive number)")] = 1.0

    @property
    def container(self) -> str:
        # Nuclio's local platform names containers nuclio-<namespace>-<name>; CVAT uses namespace nuclio.
        return f"nuclio-nuclio-{self.name}"


class Gateway(Struct, frozen=True, forbid_unknown_fields=True):
    """[gateway]: how CVAT reaches the bridge: through each container's Smokescreen to
    bridge.gateway."""

    containers: Annotated[
        tuple[ContainerName, ...], Meta(description="names of containers in [[containers]]")
    ] = ("cvat_server", "cvat_worker_webhooks")
    hostname: Annotated[str, Meta(min_length=1, description="a host name")] = "bridge.gateway"
    port: PortNumber = 8000
    path: Annotated[str, Meta(pattern=r"^/", description="a URL path such as '/health'")] = (
        "/health"
    )
    proxy: Annotated[
        str, Meta(pattern=r"^[^\s:]+:\d{1,5}$", description="host:port of Smokescreen")
    ] = "127.0.0.1:4750"
    # A stack-private address Smokescreen must keep refusing (SSRF protection).
    private_target: ContainerName = "cvat_db"
    private_port: PortNumber = 5432


class Bridge(Struct, frozen=True, forbid_unknown_fields=True):
    """[bridge]: what the install guide leaves unknown about the real bridge."""

    # The guide registers a webhook on /health and expects its ping to show 200; a GET-only
    # /health answers the ping's POST with 405. true: 405 fails the guide's check.
    health_accepts_post: Truthy = True


class Nuclio(Struct, frozen=True, forbid_unknown_fields=True):
    """[nuclio]: the dashboard and how the bring-up deploys the functions."""

    project: Annotated[str, Meta(min_length=1, description="a Nuclio project name")] = "cvat"
    version: Annotated[
        str, Meta(pattern=VERSION_PATTERN, description="a version such as '1.13.0'")
    ] = "1.13.0"
    # How --stack twin|up deploys the functions: through the dashboard's API from prebuilt
    # images (spec.image, the guide's Windows path), or with `nuctl deploy` when on PATH.
    deploy: Literal["dashboard", "nuctl"] = "dashboard"
    ready_timeout_s: Seconds = 300.0


class Inference(Struct, frozen=True, forbid_unknown_fields=True):
    """[inference]: accuracy and golden-answer thresholds on the sample."""

    corner_error_px_max: Pixels = 3.0
    grid_mean_error_px_max: Pixels = 3.0
    coral_iou_min: IoU = 0.8
    # The real pth-lama's answer format is unknown; the profile names the one it expects.
    lama_response: Literal["image-b64-png"] = "image-b64-png"
    # CONTRACTS §6 allows polygons or masks for the coral detector.
    coral_output: Literal["mask", "polygon"] = "mask"
    # Golden outputs: per function, the recorded baseline. A relative folder is read from the
    # profile's own folder; unset, the suite's golden answers of the twin's functions.
    golden_dir: Annotated[str, Meta(description="a folder (relative to the profile's folder)")] = ""
    golden_tolerance_px: Pixels = 2.0
    # A regression check: the same answer as recorded, much tighter than accuracy's bar.
    golden_iou_min: IoU = 0.97
    # LaMa's image: the share of its pixels that may differ by more than 16 grey levels (it
    # repaints the strings only, a few percent of the image: a mean would dilute a change).
    golden_image_changed_max: Annotated[
        float, Meta(ge=0, le=1, description="a share of pixels between 0 and 1")
    ] = 0.005
    # Whether the synthetic sample means anything to these functions: the twin's are made for
    # it; real CRIOBE models were trained on real photos and are judged on a lab's sample.
    synthetic_sample: Truthy = False


class Latency(Struct, frozen=True, forbid_unknown_fields=True):
    """[latency]: how many calls measure each function, and which budgets apply."""

    calls: Annotated[int, Meta(ge=1, description="a number of calls (≥ 1)")] = 10
    warmup: Annotated[int, Meta(ge=0, description="a number of calls (≥ 0)")] = 2
    # Which budget applies where neither --budgets nor the function's container says (the
    # container's GPU, or none, decides when the engine can be read): the lab's GPU host, or
    # CPU only (the twin).
    budgets: Literal["gpu", "cpu"] = "gpu"
    # The photo's width and height the budgets were written for (the CRIOBE docs time their
    # models on 1920x1920): the latency layer times the synthetic quadrat drawn at this size,
    # or a lab's own photo (--sample-image) at the size it has, and says which.
    budget_image: Annotated[
        int, Meta(ge=64, le=8192, description="a photo's side in pixels (64-8192)")
    ] = 1920
    # What a function needs of each bound on one call (its eventTimeout, the bridge's
    # AUTO_ANN_TIMEOUT): max(first call, p95) times this. A loaded GPU, a larger image or a
    # cold model after a restart can take twice what one quiet run measures.
    timeout_margin: Annotated[float, Meta(ge=1, description="a factor (a number ≥ 1)")] = 2.0


NameTemplate = Annotated[
    str, Meta(pattern=r"\{name\}", description="a task name template with {name}")
]


class E2E(Struct, frozen=True, forbid_unknown_fields=True):
    """[e2e]: the full webhook-to-annotation run, and what the guide leaves unknown about it."""

    workflows: tuple[Literal["two-stage", "three-stage"], ...] = ("two-stage",)
    # Each stage's bound; the real bridge waits up to AUTO_ANN_TIMEOUT (900 s) for a model.
    stage_timeout_s: Seconds = 900.0
    # How long the run is watched after its last stage for anything happening twice.
    settle_s: Annotated[float, Meta(ge=0, description="seconds (a number ≥ 0)")] = 3.0
    warped_name: NameTemplate = "{name}_warped"
    clean_name: NameTemplate = "{name}_clean"
    # The `source` of the shapes the bridge writes (lambda requests write "auto").
    shape_source: Literal["auto", "manual"] = "auto"


class Stability(Struct, frozen=True, forbid_unknown_fields=True):
    """[stability]: when a restart counts as crash-looping."""

    # A container (or a supervisord program) restarted by its policy within this many
    # seconds counts as crash-looping; one that recovered long ago does not.
    recent_restart_s: Seconds = 600.0


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


DriftPattern = Annotated[
    str,
    Meta(min_length=1, description="a drift key pattern such as 'container/*/env/CVAT_URL'"),
]


class Baseline(Struct, frozen=True, forbid_unknown_fields=True):
    """[baseline]: how `criobe-verify compare` judges configuration drift."""

    # Drift keys that are findings; `risky` in a profile replaces this list.
    risky: tuple[DriftPattern, ...] = RISKY_DRIFT
    # Drift keys left out of the comparison altogether (a lab's own volatile variable).
    ignore: tuple[DriftPattern, ...] = ()


class ProfileFile(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A criobe-verify profile: what a CRIOBE stack must look like."""

    # Where an editor finds this schema (taplo, Even Better TOML); the suite ignores it.
    schema: Annotated[str, Meta(description="the profile's JSON Schema, for editors")] = field(
        default="", name="$schema"
    )
    about: About = field(name="profile")
    stack: StackSettings
    host: HostSettings
    exposure: Exposure
    containers: tuple[Container, ...]
    ports: tuple[Port, ...]
    dns: tuple[DnsProbe, ...] = ()
    functions: tuple[Function, ...] = ()
    gateway: Gateway = field(default_factory=Gateway)
    waivers: tuple[Waiver, ...] = ()
    bridge: Bridge = field(default_factory=Bridge)
    nuclio: Nuclio = field(default_factory=Nuclio)
    inference: Inference = field(default_factory=Inference)
    latency: Latency = field(default_factory=Latency)
    e2e: E2E = field(default_factory=E2E)
    stability: Stability = field(default_factory=Stability)
    baseline: Baseline = field(default_factory=Baseline)


class Profile(ProfileFile, frozen=True, kw_only=True):
    """A profile as read from its file: the file's tables, and where it was read from.

    The run's settings are also read flat (`profile.cvat_url` is `[stack] cvat_url`,
    `profile.name` is `[profile] name`), as the checks have always read them."""

    path: Path = Path("profile.toml")

    name = property(lambda self: self.about.name)
    description = property(lambda self: self.about.description)
    allowed_skips = property(lambda self: self.about.allowed_skips)
    compose_project = property(lambda self: self.stack.compose_project)
    network = property(lambda self: self.stack.network)
    cvat_url = property(lambda self: self.stack.cvat_url)
    cvat_host = property(lambda self: self.stack.cvat_host)
    cvat_version = property(lambda self: self.stack.cvat_version)
    nuclio_url = property(lambda self: self.stack.nuclio_url)
    bridge_url = property(lambda self: self.stack.bridge_url)
    probe_image_from = property(lambda self: self.stack.probe_image_from)
    disk_free_gb_min = property(lambda self: self.host.disk_free_gb_min)
    docker_min_version = property(lambda self: self.host.docker_min_version)
    compose_min_version = property(lambda self: self.host.compose_min_version)
    docker_api_clients = property(lambda self: self.host.docker_api_clients)
    internal_ports = property(lambda self: self.exposure.internal_ports)

    @property
    def gateway_ip(self) -> str | None:
        """[stack] gateway_ip; None for 'auto' (asked from Docker)."""
        return None if self.stack.gateway_ip == "auto" else self.stack.gateway_ip

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
    def gpu_functions(self) -> tuple[Function, ...]:
        """The functions whose GPU the suite checks (gpu "required" or "optional")."""
        return tuple(f for f in self.functions if f.gpu != "none")

    @property
    def required_containers(self) -> tuple[Container, ...]:
        return tuple(c for c in self.containers if not c.optional)

    def parameter_names(self) -> set[str]:
        """What a check's parameter can be under this profile (the fixtures parametrize the
        checks with these): containers, functions and their containers, ports."""
        return {
            *(c.name for c in self.containers),
            *(f.name for f in self.functions),
            *(f.container for f in self.functions),
            *(str(p.port) for p in self.ports),
            *(str(p) for p in self.internal_ports),
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(
            path, "", "no such profile file", "a TOML profile", "check the path (--profile)"
        ) from None
    except IsADirectoryError:
        raise ProfileError(
            path, "", "a directory, not a profile file", "a TOML profile", "name the .toml file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(
            path,
            "",
            f"cannot be read ({exc.__class__.__name__})",
            "a UTF-8 TOML file this user can read",
            "check its permissions and encoding",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(
            path, "", f"not valid TOML: {exc}", "a TOML profile", "correct the syntax there"
        ) from None


def _check_references(path: Path, document: ProfileFile) -> None:
    """What the schema cannot say: names that must be unique, and names that must be those of
    a container of the profile."""
    names = [c.name for c in document.containers]
    for table, entries in (
        ("containers", names),
        ("functions", [f.name for f in document.functions]),
    ):
        twice = sorted({n for n in entries if entries.count(n) > 1})
        if twice:
            i = len(entries) - 1 - entries[::-1].index(twice[0])
            raise ProfileError(
                path,
                f"{table}[{i}].name",
                f"{twice[0]!r} twice",
                "unique names",
                "rename or drop one",
            )
    references = [
        ("stack.probe_image_from", document.stack.probe_image_from),
        *((f"ports[{i}].container", p.container) for i, p in enumerate(document.ports)),
        *((f"dns[{i}].from", d.source) for i, d in enumerate(document.dns)),
        *((f"gateway.containers[{i}]", n) for i, n in enumerate(document.gateway.containers)),
        ("gateway.private_target", document.gateway.private_target),
    ]
    for key, name in references:
        if name not in names:
            raise ProfileError(
                path,
                key,
                f"got {name!r}",
                "the name of a container in [[containers]]",
                did_you_mean(name, names) or "add that container to [[containers]]",
            )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile; raises ProfileError with a one-line explanation."""
    from criobe_verify.profile_schema import profile_schema

    path = Path(path)
    raw = _read_toml(path)
    try:
        document = msgspec.convert(raw, ProfileFile)
    except msgspec.ValidationError as exc:
        finding = explain(exc, raw, profile_schema())
        raise ProfileError(
            path, finding.key, finding.problem, finding.expected, finding.fix
        ) from None
    _check_references(path, document)
    fields = msgspec.structs.asdict(document)
    # A container's compose service defaults to its name.
    fields["containers"] = tuple(
        c if c.service else msgspec.structs.replace(c, service=c.name) for c in document.containers
    )
    return Profile(path=path, **fields)
