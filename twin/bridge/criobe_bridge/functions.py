"""The Nuclio side: the dashboard (is a function deployed?) and direct function calls, plus
turning a detector's answer into CVAT shapes the way CVAT's lambda manager does.

Functions are called at ``http://nuclio-nuclio-<fn>:8080`` on cvat_cvat (the CRIOBE bridge
docs; ``BRIDGE_TWIN_FUNCTION_URL`` changes it), the dashboard at NUCLIO_HOST:NUCLIO_PORT.

Detector answers are lists of ``{"label", "type", "points", "confidence"?, "attributes"?,
"mask"?, "elements"?}``. As CVAT 2.29.0 does with them: labels are matched by name to the
project's labels of a compatible type and others dropped; an attribute is kept when the label
has one of that name and, for a number attribute, when its value is an integer string
(CRIOBE's confidences are integer percent strings, ``"93"``; CVAT fills a missing one with its
default on read); skeleton elements are matched by name to the sublabels, unknown ones
dropped, missing ones added as outside at the mean of the given ones, and a skeleton with
every element outside dropped; a mask becomes a polygon (its ``points``) when
``conv_mask_to_poly``, else CVAT's RLE followed by its box (recordings of CVAT 2.29.0's lambda
manager, selftests/data/contracts/cvat-2.29.0-lambda on main).

    >>> labels = project_labels([{"id": 1, "name": "Porites", "type": "polygon",
    ...     "attributes": [{"id": 7, "name": "confidence", "input_type": "number"}]}])
    >>> shapes, dropped = to_shapes([{"label": "Porites", "type": "mask", "points": [0, 0, 4, 0, 4, 4],
    ...     "mask": [0, 1, 1, 1, 0, 0, 0, 0], "confidence": "91",
    ...     "attributes": [{"name": "confidence", "value": "91"}]}], 0, labels, True, "auto")
    >>> shapes[0]["type"], shapes[0]["points"], shapes[0]["attributes"], dropped
    ('polygon', [0.0, 0.0, 4.0, 0.0, 4.0, 4.0], [{'spec_id': 7, 'value': '91'}], {})
    >>> mask_rle([0, 1, 1, 0, 0, 1])
    [1, 2, 2, 1]
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import urllib3

from .settings import Settings

NUCLIO_HEADERS = {"x-nuclio-project-name": "cvat", "x-nuclio-function-namespace": "nuclio"}


class FunctionError(Exception):
    """A function or the dashboard could not be used; the message says which and why."""


class Functions:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.http = urllib3.PoolManager(retries=False)

    def url(self, name: str) -> str:
        return self.settings.function_url.format(name=name)

    def dashboard_function(self, name: str) -> dict[str, Any] | None:
        """The dashboard's record of ``name`` (None when not deployed); FunctionError when the
        dashboard cannot be asked."""
        s = self.settings
        url = f"http://{s.nuclio_host}:{s.nuclio_port}/api/functions/{name}"
        try:
            r = self.http.request(
                "GET", url, headers=NUCLIO_HEADERS, timeout=urllib3.Timeout(connect=5, read=30)
            )
        except urllib3.exceptions.HTTPError as exc:
            raise FunctionError(f"Nuclio dashboard {url} unreachable: {exc}") from None
        if r.status == 404:
            return None
        if r.status != 200:
            raise FunctionError(f"Nuclio dashboard {url} answered {r.status}: {_text(r.data)}")
        try:
            return json.loads(r.data)
        except ValueError:
            raise FunctionError(f"Nuclio dashboard {url} answered non-JSON") from None

    def invoke(self, name: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to the function and return its JSON answer; the read is bounded by
        AUTO_ANN_TIMEOUT ("max time for model inference")."""
        url = self.url(name)
        timeout = urllib3.Timeout(connect=10, read=self.settings.auto_ann_timeout)
        try:
            r = self.http.request(
                "POST",
                url,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
        except urllib3.exceptions.ReadTimeoutError:
            raise FunctionError(
                f"{name} at {url} gave no answer within AUTO_ANN_TIMEOUT "
                f"({self.settings.auto_ann_timeout:g} s)"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise FunctionError(f"{name} at {url} unreachable: {exc}") from None
        if r.status != 200:
            raise FunctionError(f"{name} at {url} answered {r.status}: {_text(r.data)}")
        try:
            return json.loads(r.data)
        except ValueError:
            raise FunctionError(f"{name} at {url} answered non-JSON: {_text(r.data)}") from None


def _text(data: bytes, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


# --- detector answers -> CVAT shapes ---------------------------------------------------------


def project_labels(labels: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{name: {"id", "type", "attributes": {name: (spec_id, input_type)}, "sublabels":
    {name: {...same}}}} from CVAT's label objects (GET /api/labels)."""

    def one(label: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": label["id"],
            "type": label.get("type"),
            "attributes": {
                a["name"]: (a["id"], a.get("input_type")) for a in label.get("attributes") or []
            },
            "sublabels": {s["name"]: one(s) for s in label.get("sublabels") or []},
        }

    return {label["name"]: one(label) for label in labels if not label.get("parent_id")}


def _attributes(anno: dict[str, Any], label: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's ``attributes`` the project label declares, with values CVAT keeps: a
    number attribute needs an integer string (``"87"``; not ``"0.87"``, not the JSON number
    87, on which CVAT's own check fails). A top-level ``confidence`` is not an attribute to
    CVAT and is not written either."""
    out = []
    for attr in anno.get("attributes") or []:
        if not isinstance(attr, dict) or attr.get("name") not in label["attributes"]:
            continue
        spec_id, input_type = label["attributes"][attr["name"]]
        value = attr.get("value")
        if not isinstance(value, str):
            continue
        if input_type == "number" and not value.isnumeric():
            continue
        out.append({"spec_id": spec_id, "value": value})
    return out


def _fits(shape_type: str, label_type: str | None) -> bool:
    """CVAT's label compatibility: the same type, "any" (but not for a skeleton), or mask and
    polygon for each other."""
    if shape_type == label_type or {shape_type, label_type} == {"mask", "polygon"}:
        return True
    return label_type == "any" and shape_type != "skeleton"


def mask_rle(flat: list[int]) -> list[int]:
    """CVAT's mask encoding: run lengths of alternating 0s and 1s, starting with 0s."""
    runs, current, count = [], 0, 0
    for v in flat:
        bit = 1 if v else 0
        if bit == current:
            count += 1
        else:
            runs.append(count)
            current, count = bit, 1
    runs.append(count)
    return runs


def _shape(frame: int, label: dict[str, Any], kind: str, points: list[float], source: str):
    return {
        "type": kind,
        "frame": frame,
        "label_id": label["id"],
        "group": None,
        "source": source,
        "occluded": False,
        "outside": False,
        "z_order": 0,
        "rotation": 0.0,
        "points": points,
        "attributes": [],
    }


def _skeleton(anno, label, frame: int, source: str, dropped: Counter) -> dict[str, Any] | None:
    """Elements matched to sublabels by name; as CVAT does, the ones left out are written
    outside at the mean of the given ones, and a skeleton with nothing visible is dropped."""
    given: dict[str, dict[str, Any]] = {}
    for el in anno.get("elements") or []:
        el = el if isinstance(el, dict) else {}
        pts = el.get("points")
        if el.get("label") in label["sublabels"] and isinstance(pts, list) and len(pts) >= 2:
            given.setdefault(el["label"], el)
        else:
            dropped["skeleton element not a sublabel"] += 1
    if not given or all(el.get("outside") for el in given.values()):
        dropped["skeleton with every element outside"] += 1
        return None
    mean = [sum(float(el["points"][i]) for el in given.values()) / len(given) for i in range(2)]
    shape = _shape(frame, label, "skeleton", [], source)
    elements = []
    for name, sub in label["sublabels"].items():
        el = given.get(name)
        pts = [float(v) for v in el["points"][:2]] if el else mean
        element = _shape(frame, sub, "points", pts, source)
        element["outside"] = el is None or bool(el.get("outside"))
        element["attributes"] = _attributes(el, sub) if el else []
        elements.append(element)
    shape["elements"] = elements
    return shape


def to_shapes(
    results: Any,
    frame: int,
    labels: dict[str, dict[str, Any]],
    conv_mask_to_poly: bool,
    source: str,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(CVAT shapes for ``frame``, {why: count} of what was dropped)."""
    if not isinstance(results, list):
        raise FunctionError(
            f"a detector must answer a JSON list of shapes; got {type(results).__name__}"
        )
    shapes, dropped = [], Counter()
    for anno in results:
        if not isinstance(anno, dict):
            dropped["not an object"] += 1
            continue
        label = labels.get(anno.get("label"))
        if label is None:
            dropped[f"label {anno.get('label')!r} not in the project"] += 1
            continue
        kind = str(anno.get("type", "")).lower()
        if not _fits(kind, label["type"]):
            dropped[f"{kind} does not fit label {anno['label']!r} ({label['type']})"] += 1
            continue
        if kind == "skeleton":
            shape = _skeleton(anno, label, frame, source, dropped)
            if shape is None:
                continue
        elif kind == "mask":
            if conv_mask_to_poly and anno.get("points"):
                shape = _shape(frame, label, "polygon", [float(v) for v in anno["points"]], source)
            elif isinstance(anno.get("mask"), list) and len(anno["mask"]) > 4:
                box = [float(v) for v in anno["mask"][-4:]]
                points = [float(v) for v in mask_rle(anno["mask"][:-4])] + box
                shape = _shape(frame, label, "mask", points, source)
            else:
                dropped["mask without mask data"] += 1
                continue
        elif kind in ("rectangle", "polygon", "polyline", "points", "ellipse"):
            shape = _shape(frame, label, kind, [float(v) for v in anno.get("points") or []], source)
        else:
            dropped[f"shape type {kind!r}"] += 1
            continue
        shape["attributes"] = _attributes(anno, label)
        shapes.append(shape)
    return shapes, dict(dropped)


def lambda_mapping(labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """CVAT's ``mapping`` for POST /api/lambda/requests: every project label by its own name,
    with its attributes and sublabels (``{name, attributes}`` each): an explicit mapping must
    name every attribute to keep."""

    def one(name: str, label: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "attributes": {a: a for a in label["attributes"]}}
        if label["sublabels"]:
            entry["sublabels"] = {s: one(s, sub) for s, sub in label["sublabels"].items()}
        return entry

    return {name: one(name, label) for name, label in labels.items()}
