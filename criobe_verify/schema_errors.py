"""msgspec's ValidationError said in the words of the file that was read: the key as written
there (`containers[0].restart`), the value given, and what the JSON Schema says is expected,
so the schema an editor shows and the message a run prints say the same thing.

    >>> from criobe_verify.profile import Port
    >>> def explained(raw):
    ...     try:
    ...         msgspec.convert(raw, Port)
    ...     except msgspec.ValidationError as exc:
    ...         return explain(exc, raw, msgspec.json.schema(Port))
    >>> good = {"port": 80, "container": "traefik", "protocol": "none", "exposure": "public"}
    >>> explained({**good, "port": 80800})
    Finding(key='port', problem='got 80800', expected='a TCP port number (1-65535)', fix='correct it')
    >>> explained({**good, "exposure": "publik"})
    Finding(key='exposure', problem="got 'publik'", expected='one of gateway, loopback, public', fix='did you mean public?')
    >>> explained({**good, "expsure": "public"}).fix
    'did you mean exposure?'
    >>> explained({"port": 80}).problem, explained({"port": 80}).key
    ('missing', 'container')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from criobe_verify.bad_input import did_you_mean

_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>.+)`$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
TYPE_WORDS = {
    "object": "a table",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


@dataclass(frozen=True)
class Finding:
    key: str  # as written in the file: containers[0].restart
    problem: str  # got 'allways' | missing | unknown key
    expected: str
    fix: str


def _path(where: str) -> list[str | int]:
    """`$.containers[0].restart` → ['containers', 0, 'restart']."""
    return [name if name else int(index) for name, index in _SEGMENT.findall(where)]


def key_of(path: list[str | int]) -> str:
    """['containers', 0, 'restart'] → 'containers[0].restart'.

    >>> key_of(["host", "docker_api_clients", 1, "api_version"])
    'host.docker_api_clients[1].api_version'
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _node(schema: dict[str, Any], path: list[str | int]) -> dict[str, Any]:
    """The schema of the value at path (optional values: their non-null branch)."""
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = {
                **defs[node["$ref"].rsplit("/", 1)[1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
        for branch in node.get("anyOf", []):
            if branch.get("type") != "null":
                return {**resolve(branch), **{k: v for k, v in node.items() if k != "anyOf"}}
        return node

    node = resolve(schema)
    for part in path:
        node = resolve(
            node.get("items", {})
            if isinstance(part, int)
            else node.get("properties", {}).get(part, {})
        )
    return node


def expectation(node: dict[str, Any]) -> str:
    """What a value must be, from its schema: its choices, its description, or its type."""
    if "enum" in node:
        return "one of " + ", ".join(str(v) for v in node["enum"])
    if "description" in node and node.get("type") != "object":
        return node["description"]
    return TYPE_WORDS.get(node.get("type", ""), "a value of the schema")


def _value_at(raw: Any, path: list[str | int]) -> Any:
    for part in path:
        raw = raw[part]
    return raw


def shown(value: Any) -> str:
    """A value as the file wrote it, short.

    >>> shown(True), shown("lots"), shown({"a": 1}), shown(list(range(40)))[-4:]
    ('true', "'lots'", 'a table', '1, …')
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def explain(exc: msgspec.ValidationError, raw: Any, schema: dict[str, Any]) -> Finding:
    """The key, the value and the expectation behind a msgspec ValidationError on `raw`."""
    reason, _, where = str(exc).partition(" - at ")
    path = _path(where.strip("`"))
    if m := _UNKNOWN.match(reason):
        known = list(_node(schema, path).get("properties", {}))
        return Finding(
            key_of([*path, m["name"]]),
            "unknown key",
            "one of " + ", ".join(known),
            did_you_mean(m["name"], known) or "remove it",
        )
    if m := _MISSING.match(reason):
        path = [*path, m["name"]]
        return Finding(key_of(path), "missing", expectation(_node(schema, path)), "add it")
    node, value = _node(schema, path), _value_at(raw, path)
    fix = "correct it"
    if "default" in node:
        fix += f", or remove it for the default ({shown(node['default'])})"
    if isinstance(value, str) and "enum" in node:
        fix = did_you_mean(value, map(str, node["enum"])) or fix
    return Finding(key_of(path), f"got {shown(value)}", expectation(node), fix)
