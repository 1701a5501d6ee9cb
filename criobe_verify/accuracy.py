"""How close a function's answer is to the sample's ground truth.

    >>> point_errors({"1": (10.0, 10.0), "2": (20.0, 10.0)}, [(10.0, 13.0), (20.0, 10.0)])
    {'1': 3.0, '2': 0.0}

Errors are per element id: a renumbered point (column-major instead of row-major) counts as
far off, never re-matched. Only coral colonies are paired, one to one by the Hungarian
method on their IoU (Shapely polygons, SciPy's assignment).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from shapely.geometry import Polygon
from shapely.validation import make_valid

Point = tuple[float, float]


def point_errors(found: dict[str, Point], truth: Sequence[Point]) -> dict[str, float]:
    """Distance of element "k" to truth[k-1], for every element of the truth (a missing
    element is infinitely far)."""
    errors = {}
    for i, (tx, ty) in enumerate(truth):
        p = found.get(str(i + 1))
        errors[str(i + 1)] = math.inf if p is None else math.hypot(p[0] - tx, p[1] - ty)
    return errors


def skeleton_points(shapes: list[dict], label: str) -> dict[str, Point]:
    skeleton = next((s for s in shapes if s.get("label") == label), None)
    found = {}
    for e in (skeleton or {}).get("elements") or []:
        p = e.get("points") or []
        if len(p) == 2 and not e.get("outside"):
            found[str(e.get("label"))] = (float(p[0]), float(p[1]))
    return found


def _polygon(points: Sequence[Point]) -> Polygon:
    poly = Polygon(points)
    return poly if poly.is_valid else make_valid(poly)


def shape_polygon(shape: dict) -> Polygon | None:
    """A function's coral shape as a polygon: its `points` outline (what CVAT keeps with
    conv_mask_to_poly), for masks and polygons alike."""
    flat = shape.get("points") or []
    pts = [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]
    return _polygon(pts) if len(pts) >= 3 else None


@dataclass(frozen=True)
class CoralMatch:
    genus: str
    found_genus: str | None
    iou: float


def match_corals(
    shapes: list[dict], truth: Sequence[tuple[str, Sequence[Point]]]
) -> tuple[list[CoralMatch], int]:
    """Each true colony paired with at most one found shape (Hungarian on IoU); returns the
    pairs (IoU 0 and no genus for an unmatched colony) and the number of unpaired shapes."""
    found = [(s.get("label"), shape_polygon(s)) for s in shapes]
    found = [(label, poly) for label, poly in found if poly is not None and poly.area > 0]
    true = [(genus, _polygon(poly)) for genus, poly in truth]
    iou = np.zeros((len(true), len(found)))
    for i, (_, t) in enumerate(true):
        for j, (_, f) in enumerate(found):
            inter = t.intersection(f).area
            union = t.union(f).area
            iou[i, j] = inter / union if union else 0.0
    rows, cols = linear_sum_assignment(-iou) if found and true else ([], [])
    paired = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] > 0}
    matches = [
        CoralMatch(genus, found[paired[i]][0], float(iou[i, paired[i]]))
        if i in paired
        else CoralMatch(genus, None, 0.0)
        for i, (genus, _) in enumerate(true)
    ]
    return matches, len(found) - len(paired)


def line_mask(
    size: tuple[int, int], polylines: Sequence[Sequence[Point]], width: int
) -> Image.Image:
    from PIL import ImageDraw

    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for line in polylines:
        draw.line([tuple(p) for p in line], fill=255, width=width)
    return mask


def grid_lines(points: Sequence[Point], lattice: Sequence[tuple[int, int]]) -> list[list[Point]]:
    """The strings through the 117 points: rows and columns of the 11 x 11 lattice."""
    at = {rc: p for rc, p in zip(lattice, points, strict=True)}
    lines = []
    for k in range(11):
        row = [at[(k, c)] for c in range(11) if (k, c) in at]
        col = [at[(r, k)] for r in range(11) if (r, k) in at]
        lines += [row, col]
    return [line for line in lines if len(line) >= 2]


def mean_abs_error(a: Image.Image, b: Image.Image, mask: Image.Image) -> float:
    """Mean absolute RGB difference over the mask's pixels."""
    x = np.asarray(a.convert("RGB"), dtype=np.float32)
    y = np.asarray(b.convert("RGB"), dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    return float(np.abs(x - y)[m].mean()) if m.any() else 0.0
