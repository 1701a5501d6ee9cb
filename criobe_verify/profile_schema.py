"""The profile's JSON Schema, from its model (criobe_verify/profile.py), shipped in the package
for editors: taplo and VS Code's "Even Better TOML" complete and check a profile with it.

    python -m criobe_verify.profile_schema          # rewrites criobe_verify/data/profile.schema.json
    criobe-verify profile-schema > profile.schema.json   # a copy beside a lab's profile

It declares draft 7: taplo validates with draft 4 to 7 (its jsonschema crate is built without
2019-09/2020-12), and msgspec's output uses nothing later (`$defs` is only where its `$ref`
pointers lead).

    >>> schema = profile_schema()
    >>> schema["$defs"]["Port"]["properties"]["port"]["maximum"]
    65535
    >>> SCHEMA_FILE.read_text() == schema_text()    # the shipped file is current
    True
"""

from __future__ import annotations

import functools
import json
from typing import Any

import msgspec

from criobe_verify.paths import PACKAGE_DIR

SCHEMA_FILE = PACKAGE_DIR / "data" / "profile.schema.json"


def _one_line_descriptions(node: Any) -> Any:
    """Descriptions as one line each: an editor's hover reflows them anyway, and msgspec
    releases differ in how they dedent a docstring's continuation lines."""
    if isinstance(node, dict):
        return {
            k: " ".join(v.split()) if k == "description" and isinstance(v, str)
            else _one_line_descriptions(v)
            for k, v in node.items()
        }  # fmt: skip
    if isinstance(node, list):
        return [_one_line_descriptions(v) for v in node]
    return node


@functools.cache
def profile_schema() -> dict[str, Any]:
    """The JSON Schema (draft 7) of a profile file."""
    from criobe_verify.profile import ProfileFile

    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "criobe-verify profile",
        **_one_line_descriptions(msgspec.json.schema(ProfileFile)),
    }


def schema_text() -> str:
    return json.dumps(profile_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text())
    print(f"wrote {SCHEMA_FILE}")
