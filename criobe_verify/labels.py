"""The exported CRIOBE label configurations (criobe_verify/data/criobe-labels/), ready for
CVAT's REST API.

    >>> [label["name"] for label in project_labels("corners")]
    ['quadrat_corner']
    >>> 'data-label-name="1"' in project_labels("corners")[0]["svg"]
    True

The exports carry HTML-escaped svg with the exporting instance's `data-label-id`s; CVAT only
rewrites `data-label-name` into its own ids on save, so each node's id is replaced by its
element number (the labels' README and CONTRACTS §2).
"""

from __future__ import annotations

import html
import json
import re

from criobe_verify.paths import LABELS_DIR

FILES = {
    "corners": "corner_annotation_example.json",
    "grid": "grid_annotation_example.json",
    "corals": "finegained_seg_example.json",
}
_NODE = re.compile(r'data-element-id="(\d+)" data-node-id="(\d+)" data-label-id="\d+"')


def fix_svg(svg: str) -> str:
    return _NODE.sub(
        r'data-element-id="\1" data-node-id="\2" data-label-name="\1"', html.unescape(svg)
    )


def project_labels(kind: str) -> list[dict]:
    """The labels of a CRIOBE project of this kind (corners, grid, corals), for POST
    /api/projects."""
    labels = json.loads((LABELS_DIR / FILES[kind]).read_text())
    for label in labels:
        if label.get("svg"):
            label["svg"] = fix_svg(label["svg"])
    return labels
