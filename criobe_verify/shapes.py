"""The output contract of the CRIOBE functions, on their raw answers (before CVAT pads
skeletons, replaces bad confidences and drops unknown labels, which hides defects).

    >>> corners = [{"label": "quadrat_corner", "type": "skeleton", "confidence": "93",
    ...             "elements": [{"label": str(i + 1), "type": "points", "outside": 0,
    ...                           "points": p} for i, p in enumerate(
    ...                 [[10, 10], [90, 12], [88, 90], [12, 88]])]}]
    >>> corner_problems(corners, (100, 100))
    []
    >>> ccw = [dict(e, points=p) for e, p in zip(corners[0]["elements"],
    ...        [[10, 10], [12, 88], [88, 90], [90, 12]])]
    >>> corner_problems([dict(corners[0], elements=ccw)], (100, 100))[0]
    'quadrat_corner elements are counter-clockwise (1 TL, 2 BL, 3 BR, 4 TR): expected clockwise from the top-left (1 TL, 2 TR, 3 BR, 4 BL)'

Each `*_problems` returns sentences naming what is wrong (empty when the contract holds).
CVAT detectors answer a list of `{"label", "type", "points", "confidence"?, "attributes"?,
"mask"?, "elements"?}`; CRIOBE gives confidences as integer-percent strings, which is what
CVAT 2.29.0 keeps (`str.isnumeric`), and numbers skeleton elements "1".."N".
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image

Point = tuple[float, float]
CORNER_LABEL = "quadrat_corner"
GRID_LABEL = "grid"
GRID_POINTS = 117


def _percent(value: Any) -> bool:
    return isinstance(value, str) and value.isdecimal() and 0 <= int(value) <= 100


def confidence_problems(shape: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "confidence" in shape and not _percent(shape["confidence"]):
        problems.append(
            f"{where}: confidence {shape['confidence']!r} is not an integer-percent string "
            "('0'-'100'): CVAT 2.29.0 drops it and stores the attribute's default"
        )
    for attr in shape.get("attributes") or []:
        if attr.get("name") == "confidence" and not _percent(attr.get("value")):
            problems.append(
                f"{where}: attribute confidence {attr.get('value')!r} is not an "
                "integer-percent string ('0'-'100')"
            )
    return problems


# Points on the frame's edge (the grid's border points lie on the rectified image's border)
# may round a hair outside it.
EDGE_SLACK_PX = 1.0


def _in_bounds(p: Sequence[float], size: tuple[int, int]) -> bool:
    return (
        -EDGE_SLACK_PX <= p[0] <= size[0] + EDGE_SLACK_PX
        and -EDGE_SLACK_PX <= p[1] <= size[1] + EDGE_SLACK_PX
    )


def signed_area(points: Sequence[Point]) -> float:
    """Shoelace; positive for clockwise order in image coordinates (y down)."""
    return (
        sum(
            points[i][0] * points[(i + 1) % len(points)][1]
            - points[(i + 1) % len(points)][0] * points[i][1]
            for i in range(len(points))
        )
        / 2
    )


def _corner_names(points: Sequence[Point]) -> list[str]:
    """Where each point lies in the quadrilateral: TL, TR, BR, BL."""
    cx = sum(p[0] for p in points) / len(points)
    cy = sum(p[1] for p in points) / len(points)
    return [("T" if y < cy else "B") + ("L" if x < cx else "R") for x, y in points]


def _skeleton_problems(
    shapes: list[dict[str, Any]], label: str, count: int, size: tuple[int, int]
) -> tuple[list[str], dict[str, Point]]:
    if not isinstance(shapes, list):
        return [f"answer is {type(shapes).__name__}, expected a list of shapes"], {}
    mine = [s for s in shapes if isinstance(s, dict) and s.get("label") == label]
    others = sorted({str(s.get("label")) for s in shapes if isinstance(s, dict)} - {label})
    problems = []
    if others:
        problems.append(f"labels {others} are not {label!r}: CVAT drops them")
    if len(mine) != 1:
        problems.append(f"{len(mine)} {label} skeletons, expected exactly 1")
        return problems, {}
    shape = mine[0]
    if shape.get("type") != "skeleton":
        problems.append(f"{label} has type {shape.get('type')!r}, expected 'skeleton'")
    problems += confidence_problems(shape, label)
    elements = shape.get("elements") or []
    points: dict[str, Point] = {}
    for e in elements:
        name = str(e.get("label"))
        p = e.get("points") or []
        if e.get("outside"):
            problems.append(f"{label} element {name} is outside")
            continue
        if len(p) != 2:
            problems.append(f"{label} element {name} has points {p!r}, expected [x, y]")
            continue
        if not _in_bounds(p, size):
            problems.append(
                f"{label} element {name} at ({p[0]:.0f}, {p[1]:.0f}) is outside the "
                f"{size[0]}x{size[1]} image"
            )
        points[name] = (float(p[0]), float(p[1]))
        problems += confidence_problems(e, f"{label} element {name}")
    wanted = [str(i + 1) for i in range(count)]
    names = [str(e.get("label")) for e in elements]
    missing = [n for n in wanted if n not in names]
    extra = [n for n in names if n not in wanted]
    if missing or extra or len(names) != len(set(names)):
        problems.append(
            f"{label} has {len(elements)} elements"
            + (f", missing {_ids(missing)}" if missing else "")
            + (f", unexpected {_ids(extra)}" if extra else "")
            + (", duplicated ids" if len(names) != len(set(names)) else "")
            + f": expected elements '1'-'{count}' (CVAT pads missing ones as outside)"
        )
    return problems, points


def _ids(names: list[str]) -> str:
    return ", ".join(names[:8]) + ("…" if len(names) > 8 else "")


def corner_problems(shapes: Any, size: tuple[int, int]) -> list[str]:
    problems, points = _skeleton_problems(shapes, CORNER_LABEL, 4, size)
    if len(points) == 4 and not problems:
        ordered = [points[str(i + 1)] for i in range(4)]
        names = _corner_names(ordered)
        if signed_area(ordered) < 0:
            problems.append(
                f"{CORNER_LABEL} elements are counter-clockwise ("
                + ", ".join(f"{i + 1} {n}" for i, n in enumerate(names))
                + "): expected clockwise from the top-left (1 TL, 2 TR, 3 BR, 4 BL)"
            )
        elif names[0] != "TL":
            problems.append(
                f"{CORNER_LABEL} element 1 is the {names[0]} corner: expected the top-left "
                "one, then clockwise"
            )
    return problems


def grid_problems(shapes: Any, size: tuple[int, int]) -> list[str]:
    problems, _ = _skeleton_problems(shapes, GRID_LABEL, GRID_POINTS, size)
    return problems


def _mask_problems(shape: dict[str, Any], size: tuple[int, int], where: str) -> list[str]:
    mask = shape.get("mask")
    if not isinstance(mask, list) or len(mask) < 5:
        return [f"{where}: type 'mask' without a mask list (flat 0/1 crop + [xtl, ytl, xbr, ybr])"]
    xtl, ytl, xbr, ybr = (int(v) for v in mask[-4:])
    cells = (xbr - xtl + 1) * (ybr - ytl + 1)
    problems = []
    if not (0 <= xtl <= xbr < size[0] and 0 <= ytl <= ybr < size[1]):
        problems.append(
            f"{where}: mask box {mask[-4:]} is not inside the {size[0]}x{size[1]} image"
        )
    if len(mask) - 4 != cells:
        problems.append(
            f"{where}: mask has {len(mask) - 4} cells, its box {mask[-4:]} needs {cells}"
        )
    elif any(v not in (0, 1) for v in mask[:-4]):
        problems.append(f"{where}: mask cells are not all 0 or 1")
    return problems


def coral_problems(
    shapes: Any, size: tuple[int, int], genera: Iterable[str], output: str
) -> list[str]:
    if not isinstance(shapes, list):
        return [f"answer is {type(shapes).__name__}, expected a list of shapes"]
    genera = set(genera)
    problems = []
    for i, s in enumerate(shapes):
        where = f"shape {i} ({s.get('label')!r})"
        if s.get("label") not in genera:
            problems.append(f"{where}: label is not one of the 16 CRIOBE genera: CVAT drops it")
        if s.get("type") != output:
            problems.append(
                f"{where}: type {s.get('type')!r}, the profile expects {output!r} "
                "([inference] coral_output)"
            )
        points = s.get("points") or []
        if output == "polygon" and (len(points) < 6 or len(points) % 2):
            problems.append(
                f"{where}: polygon points {len(points)} values, expected x, y pairs ≥ 3"
            )
        if any(not _in_bounds(points[j : j + 2], size) for j in range(0, len(points) - 1, 2)):
            problems.append(f"{where}: points outside the {size[0]}x{size[1]} image")
        if s.get("type") == "mask":
            problems += _mask_problems(s, size, where)
        problems += confidence_problems(s, where)
    return problems


def decode_image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def inpaint_problems(answer: Any, size: tuple[int, int], response: str) -> tuple[list[str], Any]:
    """(problems, decoded image): the profile names the real pth-lama's answer format."""
    if response != "image-b64-png":
        return [f"unknown lama_response {response!r}"], None
    if not isinstance(answer, dict) or not isinstance(answer.get("image"), str):
        keys = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [
            f"answer has {keys}, expected {{'image': <base64 PNG>}} (profile lama_response)"
        ], None
    try:
        image = decode_image(answer["image"])
        image.load()
    except Exception as exc:
        return [f"answer's image does not decode: {exc}"], None
    if image.size != size:
        return [
            f"answer's image is {image.size[0]}x{image.size[1]}, the input was "
            f"{size[0]}x{size[1]}: the bridge cannot map the corals back onto the grid"
        ], image
    return [], image


SAM_BLOB_BYTES = 1 * 256 * 64 * 64 * 4  # CVAT 2.29.0's SAM: float32 image embedding


def interactor_problems(answer: Any) -> list[str]:
    """CVAT 2.29.0's SAM answers {"blob": <base64 float32 1x256x64x64>}; the UI decodes it."""
    if not isinstance(answer, dict) or not isinstance(answer.get("blob"), str):
        return [f"answer is not {{'blob': <base64>}}: got {type(answer).__name__}"]
    size = len(base64.b64decode(answer["blob"]))
    if size != SAM_BLOB_BYTES:
        return [f"blob has {size} bytes, expected {SAM_BLOB_BYTES} (float32 1x256x64x64)"]
    return []
