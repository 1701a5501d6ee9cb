"""Whether each function still answers the baseline's sample images as it did: a pure
comparison of two runs' recorded answers (a baseline's `answers`, criobe_verify/baseline.py),
within the profile's tolerances. A changed model, image or post-processing is seen here even
when its new answer still follows the output contract.

    changes = answer_changes(before["answers"], after["answers"], Tolerances.of(profile))
    changes = answer_changes(before, after, tol, before_dir=Path("before"), after_dir=Path("after"))
    for c in changes:
        print("CHANGED" if c.finding else "info", c.line)

An answer record is `{"role": ..., <what is kept of the answer>}` (`record_of`): for corners
and grid, the skeleton as the function returned it, compared per element (pixels); for
corals, the shapes without their masks, compared by IoU per genus (the union of the genus's
outlines); for LaMa, its image: a PNG beside the baseline (`file`) and a 64×64 grey
thumbnail, compared by the share of pixels that changed (`changed_share`; on the full images
when both files are there); for SAM, its embedding's per-channel means. A function or image on one side
only is information (not compared), never a finding: a run given other photos, or a layer
not run, is not a regression.

    >>> corners = lambda *pts: {"role": "corners", "answer": [{"label": "quadrat_corner",
    ...     "type": "skeleton", "elements": [{"label": str(i + 1), "points": list(p)}
    ...     for i, p in enumerate(pts)]}]}
    >>> was = {"gridcorners": {"q.jpg": corners((10, 10), (90, 10), (90, 90), (10, 90))}}
    >>> now = {"gridcorners": {"q.jpg": corners((14, 10), (90, 10), (90, 90), (10, 90))}}
    >>> [c.line for c in answer_changes(was, now, Tolerances())]
    ['gridcorners on q.jpg: corner 1 (10.0, 10.0) → (14.0, 10.0): moved 4.0 px > 2 px']
    >>> answer_changes(was, was, Tolerances())
    []
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from criobe_verify.profile import Profile

THUMBNAIL = (64, 64)
# A pixel of LaMa's image counts as changed past this grey-level difference: JPEG and GPU
# noise stay below it, a string left in or a colony repainted do not.
GREY_NOISE = 16
# SAM's embedding floats move a little between GPUs and runs of the same model.
EMBEDDING_TOLERANCE = 0.01


@dataclass(frozen=True)
class Tolerances:
    """How far an answer may move and still be the same: the profile's [inference]
    golden_tolerance_px, golden_iou_min and golden_image_changed_max."""

    point_px: float = 2.0
    coral_iou_min: float = 0.97
    image_changed: float = 0.005
    embedding: float = EMBEDDING_TOLERANCE

    @classmethod
    def of(cls, profile: Profile) -> Tolerances:
        i = profile.inference
        return cls(i.golden_tolerance_px, i.golden_iou_min, i.golden_image_changed_max)


@dataclass(frozen=True)
class AnswerChange:
    """One difference of a function's answer on one image; `finding`: the answer changed
    beyond the tolerance (compare exits 1, as for a functional flip), else information."""

    function: str
    image: str
    element: str
    before: str
    after: str
    finding: bool
    measure: str = ""

    @property
    def line(self) -> str:
        says = f"{self.function} on {self.image}: {self.element} {self.before} → {self.after}"
        return says + (f": {self.measure}" if self.measure else "")


# --- what is kept of an answer -----------------------------------------------------------


def _grey(image: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    grey = image.convert("L")
    return grey.resize(size) if size else grey


def record_of(role: str, data: Any) -> dict[str, Any]:
    """What a baseline keeps of a function's raw answer (`data`, its JSON): shapes as they
    are (coral masks left out: CVAT keeps the outline, and masks weigh megabytes); LaMa's
    image as its size, SHA-256 and grey thumbnail (the PNG itself goes beside the baseline,
    `image_png`); SAM's embedding as per-channel means."""
    if role == "inpaint":
        from PIL import Image

        png = base64.b64decode(data["image"])
        image = Image.open(io.BytesIO(png))
        return {
            "role": role,
            "size": list(image.size),
            "sha256": hashlib.sha256(png).hexdigest(),
            "thumbnail": list(_grey(image, THUMBNAIL).tobytes()),
        }
    if role == "interactor":
        import numpy as np

        blob = np.frombuffer(base64.b64decode(data["blob"]), dtype=np.float32).reshape(256, -1)
        return {"role": role, "channel_means": [round(float(v), 5) for v in blob.mean(axis=1)]}
    if role == "corals":
        return {"role": role, "answer": [{k: v for k, v in s.items() if k != "mask"} for s in data]}
    return {"role": role, "answer": data}


def image_png(role: str, data: Any) -> bytes | None:
    """The image file a record needs beside it (LaMa's answer, as PNG bytes), else None."""
    return base64.b64decode(data["image"]) if role == "inpaint" else None


# --- comparing two records ---------------------------------------------------------------


def _xy(p: tuple[float, float] | None) -> str:
    return "absent" if p is None else f"({p[0]:.1f}, {p[1]:.1f})"


def _skeleton(a: Mapping, b: Mapping, role: str, tol: Tolerances) -> list[tuple]:
    from criobe_verify.accuracy import skeleton_points
    from criobe_verify.shapes import CORNER_LABEL, GRID_LABEL

    label, noun = (CORNER_LABEL, "corner") if role == "corners" else (GRID_LABEL, "grid point")
    was = skeleton_points(a.get("answer") or [], label)
    now = skeleton_points(b.get("answer") or [], label)
    out = []
    for name in sorted(
        set(was) | set(now), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n)
    ):
        p, q = was.get(name), now.get(name)
        if p is None or q is None:
            out.append((f"{noun} {name}", _xy(p), _xy(q), "found on one side only"))
            continue
        moved = math.dist(p, q)
        if moved > tol.point_px:
            measure = f"moved {moved:.1f} px > {tol.point_px:g} px"
            out.append((f"{noun} {name}", _xy(p), _xy(q), measure))
    return out


def _genus_areas(shapes: Any) -> dict[str, Any]:
    from shapely.ops import unary_union

    from criobe_verify.accuracy import shape_polygon

    by_genus: dict[str, list] = {}
    for s in shapes or []:
        poly = shape_polygon(s)
        if poly is not None and poly.area > 0:
            by_genus.setdefault(str(s.get("label")), []).append(poly)
    return {g: unary_union(polys) for g, polys in by_genus.items()}


def _corals(a: Mapping, b: Mapping, tol: Tolerances) -> list[tuple]:
    was, now = _genus_areas(a.get("answer")), _genus_areas(b.get("answer"))
    out = []
    for genus in sorted(set(was) | set(now)):
        p, q = was.get(genus), now.get(genus)
        union = (p.union(q).area if p is not None and q is not None else 0) or 1
        iou = 0.0 if p is None or q is None else p.intersection(q).area / union
        if iou < tol.coral_iou_min:
            area = lambda g: "absent" if g is None else f"{g.area:.0f} px²"  # noqa: E731
            measure = f"IoU {iou:.3f} < {tol.coral_iou_min:g}"
            out.append((f"coral {genus}", area(p), area(q), measure))
    return out


def changed_share(a: Image.Image, b: Image.Image) -> float:
    """The share of pixels whose grey level differs by more than GREY_NOISE.

    >>> from PIL import Image, ImageDraw
    >>> a = Image.new("L", (100, 100), 120)
    >>> b = a.copy(); ImageDraw.Draw(b).line([(0, 50), (99, 50)], fill=0, width=2)
    >>> changed_share(a, b), changed_share(a, Image.new("L", (100, 100), 130))
    (0.02, 0.0)
    """
    from PIL import ImageChops

    if a.size != b.size:
        b = b.resize(a.size)
    histogram = ImageChops.difference(_grey(a), _grey(b)).histogram()
    return sum(histogram[GREY_NOISE + 1 :]) / (a.size[0] * a.size[1])


def _image(a: Mapping, b: Mapping, tol: Tolerances, load: Callable) -> list[tuple]:
    if a.get("size") and b.get("size") and a["size"] != b["size"]:
        return [("image size", str(a.get("size")), str(b.get("size")), "another size")]
    if a.get("sha256") and a.get("sha256") == b.get("sha256"):
        return []
    full = (load("before", a.get("file")), load("after", b.get("file")))
    if full[0] is not None and full[1] is not None:
        share, how = changed_share(*full), "full image"
    else:
        from PIL import Image

        ta, tb = a.get("thumbnail") or [], b.get("thumbnail") or []
        if len(ta) != THUMBNAIL[0] * THUMBNAIL[1] or len(tb) != len(ta):
            return [("image", "a thumbnail", "none to compare", "not compared")]
        thumbs = [Image.frombytes("L", THUMBNAIL, bytes(t)) for t in (ta, tb)]
        share, how = changed_share(*thumbs), "64×64 thumbnail"
    if share > tol.image_changed:
        measure = (
            f"{share:.1%} of its pixels differ by more than {GREY_NOISE} grey levels > "
            f"{tol.image_changed:.1%} ({how})"
        )
        return [("image", str(a.get("sha256", "?"))[:12], str(b.get("sha256", "?"))[:12], measure)]
    return []


def _embedding(a: Mapping, b: Mapping, tol: Tolerances) -> list[tuple]:
    ma, mb = a.get("channel_means") or [], b.get("channel_means") or []
    if len(ma) != len(mb):
        return [("embedding channels", str(len(ma)), str(len(mb)), "another shape")]
    diff = max((abs(x - y) for x, y in zip(ma, mb, strict=True)), default=0.0)
    if diff > tol.embedding:
        return [
            (
                "embedding",
                "channel means",
                "channel means",
                f"moved by up to {diff:.4f} > {tol.embedding:g}",
            )
        ]
    return []


def _loader(before_dir: Path | None, after_dir: Path | None) -> Callable:
    def load(side: str, file: str | None) -> Image.Image | None:
        folder = before_dir if side == "before" else after_dir
        if folder is None or not file:
            return None
        try:
            from PIL import Image

            with Image.open(folder / file) as im:
                return im.convert("RGB")
        except OSError:
            return None  # a file gone from the folder: the thumbnail still compares

    return load


def record_changes(
    function: str,
    image: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    tol: Tolerances,
    before_dir: Path | None = None,
    after_dir: Path | None = None,
) -> list[AnswerChange]:
    """How one function's answer on one image changed beyond the tolerances (empty: the same
    answer). Folders: where the records' image files are (a baseline's folder)."""
    role = before.get("role")
    if role != after.get("role"):
        return [AnswerChange(function, image, "role", str(role), str(after.get("role")), True)]
    if role in ("corners", "grid"):
        found = _skeleton(before, after, role, tol)
    elif role == "corals":
        found = _corals(before, after, tol)
    elif role == "inpaint":
        found = _image(before, after, tol, _loader(before_dir, after_dir))
    elif role == "interactor":
        found = _embedding(before, after, tol)
    else:
        return [AnswerChange(function, image, "role", str(role), str(role), False, "not compared")]
    return [
        AnswerChange(function, image, element, was, now, measure != "not compared", measure)
        for element, was, now, measure in found
    ]


def answer_changes(
    before: Mapping[str, Mapping[str, Mapping[str, Any]]],
    after: Mapping[str, Mapping[str, Mapping[str, Any]]],
    tol: Tolerances,
    before_dir: Path | None = None,
    after_dir: Path | None = None,
) -> list[AnswerChange]:
    """Every change between two runs' answers (`{function: {image: record}}`, a baseline's
    `answers`), findings first; a function or image on one side only is information."""
    out: list[AnswerChange] = []
    for fn in sorted(set(before) | set(after)):
        a, b = before.get(fn) or {}, after.get(fn) or {}
        for image in sorted(set(a) | set(b)):
            if image not in b:
                out.append(
                    AnswerChange(fn, image, "answer", "recorded", "absent", False, "not compared")
                )
            elif image not in a:
                out.append(AnswerChange(fn, image, "answer", "absent", "recorded", False, "new"))
            else:
                out += record_changes(fn, image, a[image], b[image], tol, before_dir, after_dir)
    out.sort(key=lambda c: not c.finding)
    return out
