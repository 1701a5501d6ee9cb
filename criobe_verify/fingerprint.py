"""The stack's fingerprint: what its configuration is, as a baseline keeps it and `compare`
reads it (criobe_verify/drift.py), made of stable fields only.

    digest = SecretDigest(load_or_create_key(resolve_key_path(None)))
    fp = collect(profile, digest)           # asked from the running stack
    fp = fingerprint_of([c.attrs for c in containers], dashboard.functions(),
                        nuclio_versions=dashboard.versions(), cvat_about=about,
                        bridge_cvat_sdk="2.29.0", digest=digest)   # from recorded answers

It holds, for every container of the compose project and every Nuclio function container
(`nuclio-nuclio-<fn>`), its image reference and image id, restart policy, networks and their
aliases, published ports, extra_hosts and environment; for every function the dashboard lists,
its spec (image, eventTimeout, resources and GPU, network, replicas, triggers and their
workers, labels) and its model weights' size and sampled sha256 (where the profile or its
spec names a path: criobe_verify/resources/weights.py); and the versions of CVAT, Nuclio and the bridge's cvat-sdk. What could not
be read is named under `unavailable`, never guessed. `COMPARED` and `VOLATILE` below are the
documentation a baseline carries of which fields are compared and which are left out.

Environment variables: every name is kept; a value only for the settings of VALUE_SETTINGS;
a secret (a name redact.py or SECRET_NAME treats as secret, or a kept setting whose value
holds a credential) only as an HMAC (criobe_verify/secret_digest.py), never its value.

    >>> env = env_entry(["CVAT_HOST=localhost", "CVAT_PWD=s3cret!", "PATH=/usr/bin"],
    ...                 SecretDigest(b"k" * 32))
    >>> env["names"], env["values"], list(env["secrets"])
    (['CVAT_HOST', 'CVAT_PWD', 'PATH'], {'CVAT_HOST': 'localhost'}, ['CVAT_PWD'])
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from criobe_verify.profile import Profile
from criobe_verify.redact import REDACTOR, Redactor, is_secret_key
from criobe_verify.secret_digest import SecretDigest

log = logging.getLogger("criobe_verify")

# The settings whose values a baseline keeps, in one place: the ones the install guide and
# the CRIOBE contracts name (CONTRACTS.md §1, §4, §6, §7), where a change after an upgrade
# breaks the stack (Smokescreen's allow list, Django's host check, the bridge's and CVAT's
# way to Nuclio, the functions' thresholds). Any other variable is kept by name only: its
# value may be a lab's own secret under an innocent name, or differ on every build.
VALUE_SETTINGS = frozenset(
    {
        "SMOKESCREEN_OPTS", "ALLOWED_HOSTS", "CVAT_URL", "CVAT_HOST", "CVAT_USER",
        "CVAT_USERNAME", "NUCLIO_HOST", "NUCLIO_PORT", "BRIDGE_PORT", "CVAT_SERVERLESS",
        "CVAT_NUCLIO_HOST", "CVAT_NUCLIO_PORT", "CVAT_NUCLIO_FUNCTION_NAMESPACE",
        "CVAT_NUCLIO_INVOKE_METHOD", "CVAT_NUCLIO_DEFAULT_TIMEOUT", "CVAT_FUNCTIONS_REDIS_HOST",
        "CVAT_FUNCTIONS_REDIS_PORT", "AUTO_ANN_TIMEOUT", "WEBHOOK_TIMEOUT", "LOG_LEVEL",
        "CONF_THRESHOLD", "IOU_THRESHOLD",
    }
)  # fmt: skip
# Beyond what redact.py masks: names that look secret (a lab's POSTGRES_PASS, SENTRY_DSN,
# AWS_ACCESS_KEY_ID). A false positive costs only the value's detail ("changed").
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|COOKIE|SALT|DSN|PRIVATE", re.I)
GPU = "nvidia.com/gpu"
FUNCTION_LABEL = "nuclio.io/function-name"
RANDOM_PORT = "*"

# What a baseline's `fields` says (baseline.py copies these in).
COMPARED = (
    "checks.<id>.outcome (and kind, to tell a functional flip from a policy one)",
    "latency.<function>: first_s, p50_s, p95_s, max_s (shown with their ratio, never judged; "
    "only where both sides' image is the same size)",
    "e2e.<workflow>: wall_s and each stage's duration_s (shown, never judged)",
    "fingerprint.containers.<name>: image, image_id, restart, networks (and aliases), ports "
    "(the host port only where it was asked for), extra_hosts, env names, env values of "
    "VALUE_SETTINGS, secrets' HMACs",
    "fingerprint.functions.<name>: project, image, runtime, handler, eventTimeout, resources, "
    "gpu, network, restart, replicas, triggers (kind, maxWorkers, attributes), labels, "
    "readinessTimeoutSeconds, weights (path: bytes and sha256 over the size, first and last "
    "8 MiB)",
    "fingerprint.versions: cvat, nuclio, bridge_cvat_sdk",
)
VOLATILE = (
    "container ids, names of the id (the short-id network alias), creation and start times, "
    "state, restart count, IP and MAC addresses, endpoint ids",
    "host ports Docker or Nuclio picked at random (a function's http port: '*')",
    "the dashboard's status (state, httpPort, invocation URLs), resourceVersion, build info",
    "every environment value outside VALUE_SETTINGS (kept by name only)",
    "written_at, the latency samples' measured_at, the run's wall clock",
)


def is_secret_name(name: str) -> bool:
    """
    >>> [is_secret_name(n) for n in ("WEBHOOK_SECRET", "DJANGO_SECRET_KEY", "POSTGRES_PASS",
    ...                               "CVAT_URL", "SMOKESCREEN_OPTS")]
    [True, True, True, False, False]
    """
    return is_secret_key(name) or bool(SECRET_NAME.search(name))


def _env(pairs: Iterable[str]) -> dict[str, str]:
    return dict(p.partition("=")[::2] for p in pairs)


def known_secrets(envs: Iterable[Mapping[str, str]]) -> Redactor:
    """Every secret-named value of the stack's environments, and what redact.py has learnt
    (bridge/.env): a kept setting that holds one of them is kept as an HMAC too."""
    known = Redactor()
    for env in envs:
        for name, value in env.items():
            if is_secret_name(name):
                known.add(value)
    return known


def _holds_credential(value: str, known: Redactor) -> bool:
    """A kept setting whose value carries a secret: a URL's password (http://u:p@cvat-server),
    a stack's secret (a lab's CVAT_USER set to the password by mistake), a KEY=value pair or
    an auth header inside it."""
    if "://" in value:
        try:
            if urlsplit(value).password:
                return True
        except ValueError:
            return True
    return known(value) != value or REDACTOR(value) != value


def env_entry(
    pairs: Iterable[str], digest: SecretDigest, known: Redactor | None = None
) -> dict[str, Any]:
    """`NAME=value` strings (docker inspect's Config.Env) → names, kept values, HMACs."""
    env = _env(pairs)
    known = known or known_secrets([env])
    values, hidden = {}, {}
    for name, value in env.items():
        if is_secret_name(name) or (name in VALUE_SETTINGS and _holds_credential(value, known)):
            hidden[name] = digest.of(value)
        elif name in VALUE_SETTINGS:
            values[name] = value
    return {"names": sorted(env), "values": values, "secrets": hidden}


def _restart(policy: Mapping[str, Any]) -> str:
    """
    >>> _restart({"Name": "on-failure", "MaximumRetryCount": 3}), _restart({"Name": ""})
    ('on-failure:3', 'no')
    """
    name = policy.get("Name") or policy.get("name") or "no"
    count = policy.get("MaximumRetryCount") or policy.get("maximumRetryCount") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


def _published(bindings: Mapping[str, Any] | None, random: bool) -> dict[str, list[str]]:
    """HostConfig.PortBindings (what was asked for, not what Docker reports) → container port:
    ['host ip:host port']; a port Docker (or Nuclio, for a function) picked reads '*'.

    >>> _published({"8080/tcp": [{"HostIp": "", "HostPort": "8080"}],
    ...             "8443/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}, random=False)
    {'8080/tcp': ['0.0.0.0:8080'], '8443/tcp': ['127.0.0.1:*']}
    """
    out = {}
    for port, binds in (bindings or {}).items():
        hosts = set()
        for b in binds or []:
            picked = random or b.get("HostPort") in ("", "0", None)
            hosts.add(f"{b.get('HostIp') or '0.0.0.0'}:{RANDOM_PORT if picked else b['HostPort']}")
        out[port] = sorted(hosts)
    return out


def _aliases(endpoint: Mapping[str, Any], container_id: str) -> list[str]:
    # Docker adds the container's short id as an alias: it changes with every recreation.
    return sorted(
        {
            a
            for a in endpoint.get("Aliases") or []
            if not (len(a) >= 12 and container_id.startswith(a))
        }
    )


def container_entry(
    attrs: Mapping[str, Any], digest: SecretDigest, known: Redactor | None = None
) -> dict[str, Any]:
    """One container's stable configuration from its `docker inspect` answer."""
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    function = labels.get(FUNCTION_LABEL)
    return {
        "service": labels.get("com.docker.compose.service"),
        "function": function,
        "image": config.get("Image", ""),
        "image_id": attrs.get("Image", ""),
        "restart": _restart(host.get("RestartPolicy") or {}),
        "networks": {n: _aliases(e or {}, attrs.get("Id", "")) for n, e in networks.items()},
        # A function's host port is Nuclio's pick (kept across redeploys, not asked for); an
        # explicit one is in its trigger's attributes, compared with the function's spec.
        "ports": _published(host.get("PortBindings"), random=function is not None),
        "extra_hosts": sorted(host.get("ExtraHosts") or []),
        "env": env_entry(config.get("Env") or [], digest, known),
    }


def _label_names(annotations: Mapping[str, Any]) -> list[str]:
    try:
        return sorted({label["name"] for label in json.loads(annotations.get("spec") or "[]")})
    except (ValueError, TypeError, KeyError):
        return ["(unreadable metadata.annotations.spec)"]


def function_entry(
    record: Mapping[str, Any], weights: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One function's spec as the dashboard's /api/functions gives it (status left out), and
    its weights files as the probe found them (path -> {bytes, digest}; a missing one with
    bytes None), which `compare` shows as drift when a model changes.

    >>> function_entry({"spec": {}}, {"/w/best.pt": {"bytes": 5, "digest": "sha256:ab"}})[
    ...     "weights"]
    {'/w/best.pt': {'bytes': 5, 'digest': 'sha256:ab'}}
    """
    meta, spec = record.get("metadata") or {}, record.get("spec") or {}
    resources = {
        kind: {k: v for k, v in (values or {}).items() if k != GPU}
        for kind, values in (spec.get("resources") or {}).items()
    }
    attributes = (spec.get("platform") or {}).get("attributes") or {}
    replicas = {k: spec[k] for k in ("replicas", "minReplicas", "maxReplicas") if k in spec}
    triggers = {
        name: {
            "kind": t.get("kind"),
            "maxWorkers": t.get("maxWorkers"),
            "attributes": t.get("attributes") or {},
        }
        for name, t in (spec.get("triggers") or {}).items()
    }
    entry = {
        "project": (meta.get("labels") or {}).get("nuclio.io/project-name"),
        "image": spec.get("image", ""),
        "runtime": spec.get("runtime"),
        "handler": spec.get("handler"),
        "eventTimeout": spec.get("eventTimeout"),
        "resources": {k: v for k, v in resources.items() if v},
        "gpu": ((spec.get("resources") or {}).get("limits") or {}).get(GPU),
        "network": attributes.get("network"),
        "restart": _restart(attributes.get("restartPolicy") or {}),
        "replicas": replicas,
        "triggers": triggers,
        "labels": _label_names(meta.get("annotations") or {}),
        "readinessTimeoutSeconds": spec.get("readinessTimeoutSeconds"),
    }
    if weights:  # only where a path was named: an unknown one is not a change
        entry["weights"] = dict(weights)
    return entry


def _name(attrs: Mapping[str, Any]) -> str:
    return str(attrs.get("Name", "")).lstrip("/")


def fingerprint_of(
    containers: Iterable[Mapping[str, Any]],
    functions: Mapping[str, Any] | None,
    *,
    digest: SecretDigest,
    nuclio_versions: Mapping[str, Any] | None = None,
    cvat_about: Mapping[str, Any] | None = None,
    bridge_cvat_sdk: str | None = None,
    unavailable: Mapping[str, str] | None = None,
    weights: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The fingerprint from the stack's answers; None (or a reason in `unavailable`) for a
    part that could not be read."""
    containers = list(containers)
    known = known_secrets(_env((a.get("Config") or {}).get("Env") or []) for a in containers)
    return {
        "secret_key_id": digest.key_id,
        "containers": {_name(a): container_entry(a, digest, known) for a in containers},
        "functions": None
        if functions is None
        else {
            name: function_entry(record, (weights or {}).get(name))
            for name, record in functions.items()
        },
        "versions": {
            "cvat": (cvat_about or {}).get("version"),
            "nuclio": ((nuclio_versions or {}).get("dashboard") or {}).get("label"),
            "bridge_cvat_sdk": bridge_cvat_sdk,
        },
        "unavailable": dict(unavailable or {}),
    }


def _weights(
    profile: Profile, functions: Mapping[str, Any], snapshot: Any, unavailable: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Each profile function's weights files (one probe in its container per path); a
    function whose container cannot be probed is named in `unavailable`."""
    from criobe_verify.probes import Prober, ProbeUnavailable
    from criobe_verify.resources.weights import weights_sources

    prober = Prober(snapshot.client, None)
    out: dict[str, dict[str, Any]] = {}
    for fn in profile.functions:
        sources = weights_sources(fn, functions.get(fn.name))
        container = snapshot.find(fn.container)
        if not sources or fn.name not in functions:
            continue
        if container is None or container.status != "running":
            unavailable[f"weights/{fn.name}"] = f"{fn.container} does not run"
            continue
        found: dict[str, Any] = {}
        for where in sources:
            try:
                answer = prober.run(container, "model_weights", where.path)
            except ProbeUnavailable as exc:
                unavailable[f"weights/{fn.name}"] = str(exc)
                break
            if not answer.ok:
                unavailable[f"weights/{fn.name}"] = answer.error or "the probe failed"
                break
            found[where.path] = {
                "bytes": answer.size_bytes if answer.exists else None,
                "digest": answer.digest,
            }
        else:
            out[fn.name] = found
    return out


def collect(profile: Profile, digest: SecretDigest) -> dict[str, Any]:
    """Ask the running stack: one Docker listing, the dashboard's functions and versions,
    CVAT's about page, the bridge's cvat-sdk (one probe inside it). A part that does not
    answer is named in `unavailable`; nothing raises."""
    import docker
    import httpx
    import requests

    from criobe_verify.http import http_client
    from criobe_verify.nuclio import Dashboard, DashboardError
    from criobe_verify.probes import Prober, ProbeUnavailable
    from criobe_verify.snapshot import StackSnapshot

    unavailable: dict[str, str] = {}
    containers: list[Any] = []
    bridge_sdk = None
    try:
        snapshot = StackSnapshot(docker.from_env(timeout=30), profile)
        containers = snapshot.in_project()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        unavailable["containers"] = f"{type(exc).__name__}: {exc}"
    else:
        bridge = snapshot.find("bridge")
        try:
            if bridge is None or bridge.status != "running":
                raise ProbeUnavailable("bridge", "the container does not run")
            answer = Prober(snapshot.client, None).run(bridge, "cvat_sdk_window")
            if not answer.ok:
                raise ProbeUnavailable("bridge", answer.error or "the probe failed")
            bridge_sdk = answer.version
        except ProbeUnavailable as exc:  # the services layer's checks explain it
            unavailable["bridge_cvat_sdk"] = str(exc)
    functions = versions = about = None
    dashboard = Dashboard(profile.nuclio_url, timeout=10)
    try:
        functions, versions = dashboard.functions(), dashboard.versions()
    except (DashboardError, ValueError) as exc:
        unavailable["functions"] = str(exc)
    finally:
        dashboard.close()
    weights: dict[str, dict[str, Any]] = {}
    if functions is not None and containers:
        weights = _weights(profile, functions, snapshot, unavailable)
    try:
        with http_client(timeout=10) as client:
            r = client.get(
                f"{profile.cvat_url}/api/server/about", headers={"Host": profile.cvat_host}
            )
        about = r.json() if r.status_code == 200 else None
        if about is None:
            unavailable["cvat"] = f"/api/server/about answered {r.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        unavailable["cvat"] = f"/api/server/about: {type(exc).__name__}: {exc}"
    return fingerprint_of(
        [c.attrs for c in containers],
        functions,
        digest=digest,
        nuclio_versions=versions,
        cvat_about=about,
        bridge_cvat_sdk=bridge_sdk,
        unavailable=unavailable,
        weights=weights,
    )
