"""Configuration drift: every difference between two fingerprints (criobe_verify/fingerprint.py)
as one line a lab reads, with a key the profile's `[baseline]` patterns judge.

    for d in judge(drift(before_fp, after_fp), profile.baseline):
        print("RISKY" if d.risky else "info", d.line)

    >>> before = {"containers": {"cvat_server": {"image": "cvat/server:v2.29.0"}}}
    >>> after = {"containers": {"cvat_server": {"image": "cvat/server:v2.30.0"}}}
    >>> [(d.key, d.line) for d in drift(before, after)]
    [('container/cvat_server/image', 'cvat_server image cvat/server:v2.29.0 → cvat/server:v2.30.0')]

Keys (what `[baseline] risky` and `ignore` match, fnmatch-style, `*` crossing `/`):
`container/<name>/present`, `container/<name>/{image,image_id,restart}`,
`container/<name>/network/<net>` (joined, left) and `…/network/<net>/aliases`,
`container/<name>/ports/<port>`, `container/<name>/extra_hosts/<host>`,
`container/<name>/env/<VAR>` (a name added or removed, a kept value changed),
`container/<name>/secret/<VAR>` (an HMAC'd secret: "changed", never a value),
`function/<fn>/present`, `function/<fn>/<field>`, `version/{cvat,nuclio,bridge_cvat_sdk}`,
`unavailable/<part>` (a part one side could not read: not compared, said so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

NONE = "(none)"
SCALARS = {"image": "image", "image_id": "image id", "restart": "restart policy"}
VERSIONS = {
    "cvat": "CVAT version",
    "nuclio": "Nuclio version",
    "bridge_cvat_sdk": "bridge cvat-sdk",
}


@dataclass(frozen=True)
class Drift:
    key: str
    line: str
    risky: bool = False


def _show(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]  # sha256: and 12 hex digits, as `docker images` shows an id
    return str(value)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """
    >>> _flat({"limits": {"memory": "4Gi"}, "x": 1})
    {'limits.memory': '4Gi', 'x': 1}
    """
    if not isinstance(value, Mapping) or not value:
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _presence(kind: str, name: str, before: Mapping, after: Mapping) -> list[Drift]:
    if name not in after:
        return [Drift(f"{kind}/{name}/present", f"{kind} {name} is gone")]
    if name not in before:
        return [Drift(f"{kind}/{name}/present", f"{kind} {name} is new")]
    return []


def _hosts(entries: Iterable[str]) -> dict[str, str]:
    """extra_hosts by host name ("bridge.gateway:host-gateway" or "name=ip")."""
    out = {}
    for entry in entries:
        cut = min((i for i in (entry.find(":"), entry.find("=")) if i >= 0), default=len(entry))
        out[entry[:cut]] = entry[cut + 1 :]
    return out


def _env(name: str, before: Mapping, after: Mapping, secrets_comparable: bool) -> list[Drift]:
    out = []
    for var in sorted(set(before.get("names", [])) | set(after.get("names", []))):
        secret = var in before.get("secrets", {}) or var in after.get("secrets", {})
        key = f"container/{name}/{'secret' if secret else 'env'}/{var}"
        if var not in after.get("names", []):
            out.append(Drift(key, f"{name} {var} removed"))
        elif var not in before.get("names", []):
            out.append(Drift(key, f"{name} {var} added"))
        elif secret:
            a, b = before.get("secrets", {}).get(var), after.get("secrets", {}).get(var)
            if secrets_comparable and a != b:
                out.append(Drift(key, f"{name} {var} changed"))
        else:
            a, b = before.get("values", {}).get(var), after.get("values", {}).get(var)
            if a is not None and b is not None and a != b:
                out.append(Drift(key, f"{name} {var} changed: {a} → {b}"))
    return out


def _container(name: str, a: Mapping, b: Mapping, secrets_comparable: bool) -> list[Drift]:
    out = [
        Drift(
            f"container/{name}/{field}",
            f"{name} {label} {_show(a.get(field))} → {_show(b.get(field))}",
        )
        for field, label in SCALARS.items()
        if a.get(field) != b.get(field)
    ]
    nets_a, nets_b = a.get("networks") or {}, b.get("networks") or {}
    for net in sorted(set(nets_a) | set(nets_b)):
        key = f"container/{name}/network/{net}"
        if net not in nets_b:
            out.append(Drift(key, f"{name} left {net}"))
        elif net not in nets_a:
            out.append(Drift(key, f"{name} joined {net}"))
        elif sorted(nets_a[net]) != sorted(nets_b[net]):
            out.append(
                Drift(
                    f"{key}/aliases",
                    f"{name} aliases on {net} {_show(nets_a[net])} → {_show(nets_b[net])}",
                )
            )
    ports_a, ports_b = a.get("ports") or {}, b.get("ports") or {}
    for port in sorted(set(ports_a) | set(ports_b)):
        was, now = ports_a.get(port), ports_b.get(port)
        if was != now:
            line = (
                f"{name} no longer publishes {port} (was {_show(was)})"
                if now is None
                else f"{name} now publishes {port} on {_show(now)}"
                if was is None
                else f"{name} publishes {port} on {_show(was)} → {_show(now)}"
            )
            out.append(Drift(f"container/{name}/ports/{port}", line))
    hosts_a, hosts_b = _hosts(a.get("extra_hosts") or []), _hosts(b.get("extra_hosts") or [])
    for host in sorted(set(hosts_a) | set(hosts_b)):
        was, now = hosts_a.get(host), hosts_b.get(host)
        if was != now:
            out.append(
                Drift(
                    f"container/{name}/extra_hosts/{host}",
                    f"{name} extra host {host} {_show(was)} → {_show(now)}",
                )
            )
    return out + _env(name, a.get("env") or {}, b.get("env") or {}, secrets_comparable)


def _function(name: str, a: Mapping, b: Mapping) -> list[Drift]:
    out = []
    for field in sorted(set(a) | set(b)):
        if a.get(field) == b.get(field):
            continue
        if field == "labels":
            gone = sorted(set(a.get(field) or []) - set(b.get(field) or []))
            new = sorted(set(b.get(field) or []) - set(a.get(field) or []))
            change = " ".join([*(f"+{x}" for x in new), *(f"−{x}" for x in gone)])
            out.append(Drift(f"function/{name}/labels", f"{name} labels {change}"))
            continue
        flat_a, flat_b = _flat(a.get(field), field), _flat(b.get(field), field)
        for path in sorted(set(flat_a) | set(flat_b)):
            if flat_a.get(path) != flat_b.get(path):
                out.append(
                    Drift(
                        f"function/{name}/{field}",
                        f"{name} {path} {_show(flat_a.get(path))} → {_show(flat_b.get(path))}",
                    )
                )
    return out


def not_compared(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(part, line) for each part either side could not read (its `unavailable`): said, never
    compared. The fingerprint's drift and the inventory's data survival say it alike.

    >>> not_compared({"unavailable": {"cvat": "timeout"}}, {})
    [('cvat', 'cvat not compared: BEFORE could not read it (timeout)')]
    """
    missing_a, missing_b = before.get("unavailable") or {}, after.get("unavailable") or {}
    out = []
    for part in sorted(set(missing_a) | set(missing_b)):
        side = "BEFORE" if part in missing_a else "AFTER"
        why = missing_a.get(part) or missing_b.get(part)
        out.append((part, f"{part} not compared: {side} could not read it ({why})"))
    return out


def drift(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Drift]:
    """Every difference, unjudged; a part either side could not read is said, not compared."""
    missing_a, missing_b = before.get("unavailable") or {}, after.get("unavailable") or {}
    out = [Drift(f"unavailable/{part}", line) for part, line in not_compared(before, after)]
    secrets_comparable = before.get("secret_key_id") == after.get("secret_key_id")
    if not secrets_comparable:
        out.append(
            Drift(
                "unavailable/secrets",
                "secrets not compared: the baselines were "
                "digested with different keys (--baseline-key)",
            )
        )
    if "containers" not in missing_a and "containers" not in missing_b:
        ca, cb = before.get("containers") or {}, after.get("containers") or {}
        for name in sorted(set(ca) | set(cb)):
            out += _presence("container", name, ca, cb) or _container(
                name, ca[name], cb[name], secrets_comparable
            )
    fa, fb = before.get("functions"), after.get("functions")
    if fa is not None and fb is not None:
        for name in sorted(set(fa) | set(fb)):
            out += _presence("function", name, fa, fb) or _function(name, fa[name], fb[name])
    va, vb = before.get("versions") or {}, after.get("versions") or {}
    for part, label in VERSIONS.items():
        if va.get(part) and vb.get(part) and va[part] != vb[part]:
            out.append(Drift(f"version/{part}", f"{label} {va[part]} → {vb[part]}"))
    return out


def judge(drifts: Iterable[Drift], risky: Iterable[str], ignore: Iterable[str] = ()) -> list[Drift]:
    """Drop what the profile ignores; mark what it calls risky. Risky first, order kept.

    >>> ds = [Drift("container/bridge/image_id", "i"), Drift("function/pth-lama/gpu", "g")]
    >>> [(d.line, d.risky) for d in judge(ds, ["function/*"])]
    [('g', True), ('i', False)]
    """
    risky, ignore = tuple(risky), tuple(ignore)
    kept = [
        replace(d, risky=any(fnmatchcase(d.key, p) for p in risky))
        for d in drifts
        if not any(fnmatchcase(d.key, p) for p in ignore)
    ]
    return sorted(kept, key=lambda d: not d.risky)
