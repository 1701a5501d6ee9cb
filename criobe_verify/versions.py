"""Version strings compared as numbers.

>>> version_tuple("20.10.24+dfsg1") >= version_tuple("20.10")
True
"""

from __future__ import annotations

import re


def version_tuple(text: str) -> tuple[int, ...]:
    """Leading numeric dotted part of a version ('v2.40.3-desktop.1' -> (2, 40, 3))."""
    m = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in m.group(1).split("."))
