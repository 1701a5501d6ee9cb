"""Synthetic CRIOBE quadrat photos with exact ground truth, and loading a user's own sample.

A quadrat photo shows a square PVC frame lying on the reef, with an 11 x 11 string grid
(the frame's sides are the outer lines of the lattice, 9 strings run each way). The
CRIOBE pipeline detects the frame's 4 corners, warps the quadrat to a square, detects
the 117 string intersections there (121 lattice points minus the 4 frame corners,
numbered row-major from the top-left like the exported ``grid`` label), paints the
strings out (LaMa) and segments the coral colonies by genus. :func:`generate` draws such
a photo, deterministic by seed, together with every image the pipeline derives from it
and the exact ground truth of each stage::

    >>> sample = generate(seed=3, size=256)
    >>> sample.photo.size, sample.rectified.size
    ((256, 256), (256, 256))
    >>> len(sample.truth.corners), len(sample.truth.grid)
    (4, 117)
    >>> sample.truth.grid[0]            # element "1": row 0, column 1 of the lattice
    (25.6, 0.0)
    >>> {c.genus for c in sample.truth.corals} <= set(GENERA)
    True

:meth:`QuadratSample.write` lays the sample out like the CRIOBE test samples
(``1-raw_jpg/``, ``2-quadrat_corner_export/instances_default.json`` …) plus a plain
``ground_truth.json``; :func:`load_ground_truth` reads either form back, also for a user's
own photo with its COCO exports::

    python -m criobe_verify.quadrat --seed 7 --out /tmp/sample
    truth = load_ground_truth("/tmp/sample")        # ground_truth.json, or the COCO files

Coordinates are continuous image coordinates in pixels, origin at the top-left corner of
the top-left pixel (pixel centres at i + 0.5), as in COCO and Pillow. The rectified frame
maps the corners TL, TR, BR, BL to (0, 0), (S, 0), (S, S), (0, S) of an S x S image, so
lattice point (row r, column c) lies at (c * S / 10, r * S / 10) there.

Only NumPy and Pillow are used: the suite must not depend on OpenCV.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

Point = tuple[float, float]

LATTICE = 11
"""Lines of the lattice each way: the frame's two sides and the 9 strings between them."""

GENERA: tuple[str, ...] = (
    "Acanthastrea",
    "Acropora",
    "Astreopora",
    "Atrea",
    "Fungia",
    "Goniastrea",
    "Leptastrea",
    "Merulinidae",
    "Millepora",
    "Montastrea",
    "Montipora",
    "Other",
    "Pavona/Leptoseris",
    "Pocillopora",
    "Porites",
    "Psammocora",
)
"""The 16 coral labels of the CRIOBE segmentation project, in the exported order."""

CORNER_LABEL = "quadrat_corner"
GRID_LABEL = "grid"
CORNER_NAMES = ("TL", "TR", "BR", "BL")
"""Corner elements "1".."4" in order: clockwise from the top-left."""

CORNERS_COCO = "2-quadrat_corner_export/instances_default.json"
GRID_COCO = "4-grid_pose_export/person_keypoints_default.json"
CORALS_COCO = "6-coral_segmentation_export/instances_default.json"
TRUTH_JSON = "ground_truth.json"
TRUTH_FORMAT = "criobe-verify/quadrat-ground-truth"


def lattice_of_elements() -> tuple[tuple[int, int], ...]:
    """(row, column) of grid elements "1".."117", in element order.

    >>> cells = lattice_of_elements()
    >>> len(cells), cells[0], cells[8], cells[9], cells[-1]
    (117, (0, 1), (0, 9), (1, 0), (10, 9))
    """
    last = LATTICE - 1
    return tuple(
        (r, c)
        for r in range(LATTICE)
        for c in range(LATTICE)
        if (r, c) not in {(0, 0), (0, last), (last, 0), (last, last)}
    )


# --- geometry -------------------------------------------------------------------------------


def homography(src: Sequence[Point], dst: Sequence[Point]) -> np.ndarray:
    """The 3x3 projective map taking each ``src`` point to its ``dst`` point (least squares
    for more than 4 pairs), normalised so that ``H[2, 2] == 1``.

    >>> H = homography([(0, 0), (1, 0), (1, 1), (0, 1)], [(10, 10), (30, 10), (30, 30), (10, 30)])
    >>> apply_homography(H, [(0.5, 0.5)]).round(6).tolist()
    [[20.0, 20.0]]
    """
    s = np.asarray(src, dtype=float)
    d = np.asarray(dst, dtype=float)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or len(s) < 4:
        raise ValueError("homography needs at least 4 pairs of (x, y) points")

    # Hartley normalisation keeps the SVD well conditioned at pixel scales.
    def norm(p: np.ndarray) -> np.ndarray:
        mean = p.mean(axis=0)
        scale = math.sqrt(2) / max(np.sqrt(((p - mean) ** 2).sum(axis=1)).mean(), 1e-12)
        return np.array([[scale, 0, -scale * mean[0]], [0, scale, -scale * mean[1]], [0, 0, 1]])

    ts, td = norm(s), norm(d)
    sh = (ts @ np.c_[s, np.ones(len(s))].T).T
    dh = (td @ np.c_[d, np.ones(len(d))].T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(sh, dh, strict=True):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    return h / h[2, 2]


def apply_homography(h: np.ndarray, points: Iterable[Sequence[float]]) -> np.ndarray:
    """Map (x, y) points through ``h``; returns an (N, 2) array."""
    p = np.asarray(list(points), dtype=float).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ np.asarray(h, dtype=float).T
    return q[:, :2] / q[:, 2:3]


def rectified_corners(size: tuple[int, int]) -> tuple[Point, Point, Point, Point]:
    """Where the corners TL, TR, BR, BL land in a rectified image of ``size`` (w, h)."""
    w, h = size
    return ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))


def rectify(image: Image.Image, corners: Sequence[Point], size: tuple[int, int]) -> Image.Image:
    """Warp the quadrat bounded by ``corners`` (TL, TR, BR, BL) to a ``size`` image, the way
    the bridge crops a photo for the grid and coral stages."""
    # Pillow's PERSPECTIVE takes the map from output to input coordinates (pixel-centre
    # convention, like ours), so the homography goes from the rectified frame to the photo.
    back = homography(rectified_corners(size), corners)
    return image.transform(
        size, Image.Transform.PERSPECTIVE, tuple(back.ravel()[:8]), Image.Resampling.BICUBIC
    )


def _polygon_area(poly: Sequence[Point]) -> float:
    p = np.asarray(poly, dtype=float)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _bbox(points: Sequence[Point]) -> list[float]:
    p = np.asarray(points, dtype=float)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return [
        round(float(x0), 2),
        round(float(y0), 2),
        round(float(x1 - x0), 2),
        round(float(y1 - y0), 2),
    ]


# --- ground truth ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Coral:
    """One coral colony: its genus (one of :data:`GENERA`) and outline."""

    genus: str
    polygon: tuple[Point, ...]

    @property
    def area(self) -> float:
        return abs(_polygon_area(self.polygon))


@dataclass(frozen=True)
class GroundTruth:
    """What a sample quadrat should yield at each stage.

    ``corners`` are in the photo; ``grid`` (element "k" is ``grid[k - 1]``) and ``corals``
    are in the rectified frame, the images the grid and coral functions see.
    """

    photo_size: tuple[int, int]
    corners: tuple[Point, Point, Point, Point]
    rectified_size: tuple[int, int]
    grid: tuple[Point, ...]
    corals: tuple[Coral, ...] = ()
    photo_file: str = ""
    rectified_file: str = ""
    grid_free_file: str = ""

    def __post_init__(self) -> None:
        if len(self.corners) != 4:
            raise ValueError(f"expected 4 corners (TL, TR, BR, BL); got {len(self.corners)}")
        if len(self.grid) != len(lattice_of_elements()):
            raise ValueError(
                f"expected {len(lattice_of_elements())} grid points; got {len(self.grid)}"
            )
        unknown = sorted({c.genus for c in self.corals} - set(GENERA))
        if unknown:
            raise ValueError(f"coral genera not among the 16 CRIOBE labels: {unknown}")

    @property
    def homography(self) -> np.ndarray:
        """Photo -> rectified frame."""
        return homography(self.corners, rectified_corners(self.rectified_size))

    def grid_in_photo(self) -> tuple[Point, ...]:
        back = np.linalg.inv(self.homography)
        return tuple((float(x), float(y)) for x, y in apply_homography(back, self.grid))

    def corals_in_photo(self) -> tuple[Coral, ...]:
        back = np.linalg.inv(self.homography)
        return tuple(
            Coral(
                c.genus, tuple((float(x), float(y)) for x, y in apply_homography(back, c.polygon))
            )
            for c in self.corals
        )

    # plain JSON ---------------------------------------------------------------------------

    def to_json(self, **extra: Any) -> dict[str, Any]:
        def pts(points: Iterable[Sequence[float]]) -> list[list[float]]:
            return [[round(float(x), 3), round(float(y), 3)] for x, y in points]

        return {
            "format": TRUTH_FORMAT,
            "version": 1,
            **extra,
            "coordinates": "pixels, origin at the top-left corner of the top-left pixel",
            "photo": {
                "file_name": self.photo_file,
                "width": self.photo_size[0],
                "height": self.photo_size[1],
            },
            "corners": {
                "label": CORNER_LABEL,
                "order": list(CORNER_NAMES),
                "points": pts(self.corners),
            },
            "rectified": {
                "file_name": self.rectified_file,
                "grid_free_file_name": self.grid_free_file,
                "width": self.rectified_size[0],
                "height": self.rectified_size[1],
                "homography_from_photo": [
                    [round(float(v), 12) for v in row] for row in self.homography
                ],
            },
            "grid": {
                "label": GRID_LABEL,
                "elements": [str(i + 1) for i in range(len(self.grid))],
                "lattice": [list(rc) for rc in lattice_of_elements()],
                "points": pts(self.grid),
                "points_in_photo": pts(self.grid_in_photo()),
            },
            "corals": [
                {"genus": c.genus, "polygon": pts(c.polygon), "polygon_in_photo": pts(p.polygon)}
                for c, p in zip(self.corals, self.corals_in_photo(), strict=True)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroundTruth:
        if data.get("format") != TRUTH_FORMAT:
            raise ValueError(f"not a {TRUTH_FORMAT} file (format: {data.get('format')!r})")
        photo, rect = data["photo"], data["rectified"]
        return cls(
            photo_size=(int(photo["width"]), int(photo["height"])),
            corners=tuple(_point(p) for p in data["corners"]["points"]),  # type: ignore[arg-type]
            rectified_size=(int(rect["width"]), int(rect["height"])),
            grid=tuple(_point(p) for p in data["grid"]["points"]),
            corals=tuple(
                Coral(c["genus"], tuple(_point(p) for p in c["polygon"])) for c in data["corals"]
            ),
            photo_file=photo.get("file_name", ""),
            rectified_file=rect.get("file_name", ""),
            grid_free_file=rect.get("grid_free_file_name", ""),
        )

    # COCO, like CVAT's exports of the CRIOBE projects ---------------------------------------

    def to_coco_corners(self) -> dict[str, Any]:
        return _coco_keypoints(
            CORNER_LABEL, ["1", "2", "3", "4"], self.corners, self.photo_file, self.photo_size
        )

    def to_coco_grid(self) -> dict[str, Any]:
        names = [str(i + 1) for i in range(len(self.grid))]
        return _coco_keypoints(
            GRID_LABEL, names, self.grid, self.rectified_file, self.rectified_size
        )

    def to_coco_corals(self) -> dict[str, Any]:
        doc = _coco_skeleton(self.grid_free_file or self.rectified_file, self.rectified_size)
        doc["categories"] = [
            {"id": i + 1, "name": g, "supercategory": ""} for i, g in enumerate(GENERA)
        ]
        for n, coral in enumerate(self.corals, start=1):
            doc["annotations"].append(
                {
                    "id": n,
                    "image_id": 1,
                    "category_id": GENERA.index(coral.genus) + 1,
                    "segmentation": [[round(v, 2) for p in coral.polygon for v in p]],
                    "area": round(coral.area, 2),
                    "bbox": _bbox(coral.polygon),
                    "iscrowd": 0,
                    "attributes": {"occluded": False},
                }
            )
        return doc


def _point(p: Sequence[float]) -> Point:
    return (float(p[0]), float(p[1]))


def _coco_skeleton(file_name: str, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {
            "contributor": "",
            "date_created": "",
            "description": "",
            "url": "",
            "version": "",
            "year": "",
        },
        "categories": [],
        "images": [
            {
                "id": 1,
                "width": size[0],
                "height": size[1],
                "file_name": Path(file_name).name,
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
        ],
        "annotations": [],
    }


def _coco_keypoints(
    label: str, names: list[str], points: Sequence[Point], file_name: str, size: tuple[int, int]
) -> dict[str, Any]:
    doc = _coco_skeleton(file_name, size)
    doc["categories"] = [
        {"id": 1, "name": label, "supercategory": "", "keypoints": names, "skeleton": []}
    ]
    box = _bbox(points)
    doc["annotations"] = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "segmentation": [],
            "area": round(box[2] * box[3], 2),
            "bbox": box,
            "iscrowd": 0,
            "attributes": {"occluded": False},
            # v = 2: labelled and visible, as CVAT exports a skeleton element that is not outside
            "keypoints": [v for x, y in points for v in (round(x, 3), round(y, 3), 2)],
            "num_keypoints": len(points),
        }
    ]
    return doc


# --- loading a user's sample ----------------------------------------------------------------


def _pick_image(doc: dict[str, Any], image_name: str | None, what: str) -> dict[str, Any]:
    images = doc.get("images") or []
    if not images:
        raise ValueError(f"{what}: no images in the COCO file")
    if image_name:
        named = [im for im in images if Path(im.get("file_name", "")).stem == Path(image_name).stem]
        if named:
            return named[0]
    if len(images) == 1:
        return images[0]
    raise ValueError(
        f"{what}: {len(images)} images and none named like {image_name!r}; "
        "pass the sample image so its entry can be found"
    )


def _keypoints(doc: dict[str, Any], count: int, image: dict[str, Any], what: str) -> list[Point]:
    cats = {c["id"]: c for c in doc.get("categories", []) if len(c.get("keypoints") or []) == count}
    anns = [a for a in doc.get("annotations", []) if a.get("image_id") == image["id"]]
    anns = [a for a in anns if a.get("category_id") in cats]
    if len(anns) != 1:
        raise ValueError(
            f"{what}: expected one annotation with {count} keypoints on {image.get('file_name')!r}; "
            f"found {len(anns)}"
        )
    ann, names = anns[0], cats[anns[0]["category_id"]]["keypoints"]
    flat = ann["keypoints"]
    if len(flat) != 3 * count:
        raise ValueError(f"{what}: {len(flat) // 3} keypoints, expected {count}")
    triples = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    # CVAT names skeleton elements "1".."N"; order by that name, not by position in the file.
    if sorted(names, key=str) == sorted((str(i + 1) for i in range(count)), key=str):
        by_name = dict(zip((str(n) for n in names), triples, strict=True))
        triples = [by_name[str(i + 1)] for i in range(count)]
    missing = [str(i + 1) for i, t in enumerate(triples) if t[2] == 0]
    if missing:
        raise ValueError(f"{what}: elements not labelled (v=0): {', '.join(missing)}")
    return [(float(x), float(y)) for x, y, _ in triples]


def _corals(doc: dict[str, Any], image: dict[str, Any]) -> list[Coral]:
    names = {c["id"]: c["name"] for c in doc.get("categories", [])}
    out = []
    for a in doc.get("annotations", []):
        genus = names.get(a.get("category_id"))
        if a.get("image_id") != image["id"] or genus not in GENERA:
            continue
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            raise ValueError(
                f"coral {genus!r} is an RLE mask; export the coral project with polygons"
            )
        for ring in seg or []:
            out.append(Coral(genus, tuple(zip(ring[0::2], ring[1::2], strict=True))))
    return out


def from_coco(
    corners_coco: dict[str, Any],
    grid_coco: dict[str, Any],
    corals_coco: dict[str, Any] | None = None,
    image_name: str | None = None,
) -> GroundTruth:
    """Ground truth from CVAT COCO exports of the corner project (4 keypoints on the photo),
    the grid project (117 keypoints on the warped image) and, optionally, coral polygons.

    Coral polygons are read from any of the three files: in the corner export they are in
    the photo's frame and are carried over to the rectified frame; elsewhere they are taken
    to be in the rectified frame (the CRIOBE coral project works on warped images).
    The warped image is assumed to map the corners onto its own corners.
    """
    photo = _pick_image(corners_coco, image_name, "corner export")
    corners = _keypoints(corners_coco, 4, photo, "corner export")
    rect = _pick_image(grid_coco, image_name, "grid export")
    grid = _keypoints(grid_coco, len(lattice_of_elements()), rect, "grid export")
    truth = GroundTruth(
        photo_size=(int(photo["width"]), int(photo["height"])),
        corners=tuple(corners),  # type: ignore[arg-type]
        rectified_size=(int(rect["width"]), int(rect["height"])),
        grid=tuple(grid),
        photo_file=photo.get("file_name", ""),
        rectified_file=rect.get("file_name", ""),
    )
    corals = _corals(grid_coco, rect)
    if corals_coco is not None:
        corals += _corals(corals_coco, _pick_image(corals_coco, image_name, "coral export"))
    in_photo = _corals(corners_coco, photo)
    if in_photo:
        h = truth.homography
        corals += [
            Coral(c.genus, tuple(map(_point, apply_homography(h, c.polygon)))) for c in in_photo
        ]
    return GroundTruth(**{**truth.__dict__, "corals": tuple(corals)})


def _classify_coco(doc: dict[str, Any]) -> str | None:
    counts = {len(c.get("keypoints") or []) for c in doc.get("categories", [])}
    if 4 in counts:
        return "corners"
    if len(lattice_of_elements()) in counts:
        return "grid"
    if {c.get("name") for c in doc.get("categories", [])} & set(GENERA):
        return "corals"
    return None


def load_ground_truth(
    ground_truth: str | Path | Sequence[str | Path], image: str | Path | None = None
) -> GroundTruth:
    """Ground truth for a sample, from a ``ground_truth.json`` file, COCO files (told apart
    by content: 4 keypoints, 117 keypoints, genus polygons), or directories holding either
    (laid out like the CRIOBE test samples or flat); one path or several.

    ``image`` (the sample photo) picks its entry in multi-image COCO files and is checked
    against the recorded photo size.
    """
    paths = (
        [Path(ground_truth)]
        if isinstance(ground_truth, str | Path)
        else list(map(Path, ground_truth))
    )
    files: list[Path] = []
    for p in paths:
        if p.is_dir() and (p / TRUTH_JSON).is_file():
            files.append(p / TRUTH_JSON)
        elif p.is_dir():
            files += sorted(p.rglob("*.json"))
        else:
            files.append(p)
    path = paths[0] if len(paths) == 1 else Path(", ".join(map(str, paths)))
    docs: dict[str, dict[str, Any]] = {}
    for f in files:
        doc = json.loads(f.read_text())
        if isinstance(doc, dict) and doc.get("format") == TRUTH_FORMAT:
            truth = GroundTruth.from_json(doc)
            break
        kind = _classify_coco(doc) if isinstance(doc, dict) else None
        if kind and kind in docs:
            raise ValueError(f"{path}: more than one {kind} COCO file ({f.name})")
        if kind:
            docs[kind] = doc
    else:
        lacking = [k for k in ("corners", "grid") if k not in docs]
        if lacking:
            raise ValueError(
                f"{path}: no ground truth found: need {TRUTH_JSON}, or COCO exports of the "
                f"corner project (4 keypoints) and the grid project (117 keypoints); "
                f"missing: {', '.join(lacking)}"
            )
        name = Path(image).name if image else None
        truth = from_coco(docs["corners"], docs["grid"], docs.get("corals"), image_name=name)
    if image is not None:
        with Image.open(image) as im:
            if im.size != truth.photo_size:
                raise ValueError(
                    f"{image}: image is {im.size[0]}x{im.size[1]}, the ground truth says "
                    f"{truth.photo_size[0]}x{truth.photo_size[1]}"
                )
    return truth


# --- drawing --------------------------------------------------------------------------------

SAND = (204, 188, 152)
FRAME_WHITE = (244, 242, 232)
STRING_WHITE = (240, 238, 228)
TUBE_WIDTH = 0.028
"""Frame tube diameter, as a fraction of the frame's side (a 1 m quadrat of ~3 cm PVC)."""
STRING_WIDTH = 0.0036


@dataclass(frozen=True)
class _Look:
    colour: tuple[int, int, int]
    texture: str


# A handful of genera with colours far apart in chromaticity, so that each colony reads
# as one genus from its colour alone, and textures that give a segmenter real edges.
LOOKS: dict[str, _Look] = {
    "Acropora": _Look((150, 92, 178), "branching"),
    "Pocillopora": _Look((218, 104, 128), "bumpy"),
    "Porites": _Look((208, 168, 52), "lumpy"),
    "Montipora": _Look((198, 96, 40), "mottled"),
    "Goniastrea": _Look((102, 142, 48), "maze"),
    "Pavona/Leptoseris": _Look((64, 112, 182), "ridged"),
    "Millepora": _Look((40, 160, 150), "tipped"),
}


@dataclass
class QuadratSample:
    """A generated quadrat: the photo, the images derived from it, and their ground truth."""

    seed: int
    name: str
    photo: Image.Image
    rectified: Image.Image
    rectified_grid_free: Image.Image
    truth: GroundTruth
    params: dict[str, Any] = field(default_factory=dict)

    def write(self, out: str | Path, quality: int = 90) -> dict[str, Path]:
        """Write the images (JPEG) and the ground truth (plain JSON and COCO) under ``out``."""
        root = Path(out)
        paths = {
            "photo": root / self.truth.photo_file,
            "rectified": root / self.truth.rectified_file,
            "grid_free": root / self.truth.grid_free_file,
            "corners_coco": root / CORNERS_COCO,
            "grid_coco": root / GRID_COCO,
            "corals_coco": root / CORALS_COCO,
            "truth": root / TRUTH_JSON,
        }
        for p in paths.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        for key, im in (
            ("photo", self.photo),
            ("rectified", self.rectified),
            ("grid_free", self.rectified_grid_free),
        ):
            im.save(paths[key], "JPEG", quality=quality, subsampling=0, optimize=True)

        def dump(path: Path, doc: dict[str, Any]) -> None:
            path.write_text(json.dumps(doc, indent=1) + "\n")

        dump(paths["corners_coco"], self.truth.to_coco_corners())
        dump(paths["grid_coco"], self.truth.to_coco_grid())
        dump(paths["corals_coco"], self.truth.to_coco_corals())
        dump(paths["truth"], self.truth.to_json(seed=self.seed, generator=self.params))
        return paths


def _noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1] with about ``cells`` features across, shape (h, w)."""
    w, h = size
    small = rng.random((max(2, cells * h // w) + 1, cells + 1)).astype(np.float32)
    return np.asarray(
        Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BICUBIC), np.float32
    ).clip(0, 1)


def _fractal(
    rng: np.random.Generator, size: tuple[int, int], cells: int, octaves: int
) -> np.ndarray:
    total = np.zeros((size[1], size[0]), np.float32)
    weight = 0.0
    for k in range(octaves):
        total += _noise(rng, size, cells * 2**k) * 0.5**k
        weight += 0.5**k
    return total / weight


def _blob(rng: np.random.Generator, centre: Point, radius: float, n: int = 96) -> np.ndarray:
    """An irregular colony outline: a radius wobbling with a few low harmonics."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 10):
        r += rng.uniform(0, 0.26 / k**0.6) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.45)
    aspect = rng.uniform(0.8, 1.2)
    spin = rng.uniform(0, np.pi)
    x = radius * r * np.cos(theta) * aspect
    y = radius * r * np.sin(theta) / aspect
    c, s = np.cos(spin), np.sin(spin)
    return np.c_[centre[0] + c * x - s * y, centre[1] + s * x + c * y]


def _inside(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points (px: row vector, py: column vector) against a polygon."""
    inside = np.zeros((py.shape[0], px.shape[1]), bool)
    x1, y1 = poly[-1]
    for x2, y2 in poly:
        if y1 != y2:
            spans = (y1 > py) != (y2 > py)
            cross = x1 + (py - y1) * ((x2 - x1) / (y2 - y1))
            inside ^= spans & (px < cross)
        x1, y1 = x2, y2
    return inside


class _Canvas:
    """A supersampled photo canvas that knows the seabed (world) coordinate of each pixel.

    Polygons are rasterised by testing each supersampled pixel's centre, which keeps edges
    where the geometry puts them (ImageDraw rounds them to whole pixels).
    """

    def __init__(self, size: int, world_to_photo: np.ndarray, ss: int):
        self.size, self.ss, self.h = size, ss, world_to_photo
        self.hinv = np.linalg.inv(world_to_photo)
        self.n = size * ss

    def photo_xy(self, world: np.ndarray) -> np.ndarray:
        """World points -> supersampled canvas coordinates (pixel-corner convention)."""
        return apply_homography(self.h, world) * self.ss

    def box_of(self, world: np.ndarray, pad: int = 2) -> tuple[int, int, int, int]:
        p = self.photo_xy(world)
        x0, y0 = np.floor(p.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(p.max(axis=0)).astype(int) + pad
        return (max(0, x0), max(0, y0), min(self.n, x1), min(self.n, y1))

    def mask(
        self, polygons: Iterable[np.ndarray], box: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """Coverage (0/1, float32) of the union of world polygons, over ``box`` (default:
        the whole canvas)."""
        bx0, by0, bx1, by1 = box or (0, 0, self.n, self.n)
        m = np.zeros((by1 - by0, bx1 - bx0), np.float32)
        for poly in polygons:
            x0, y0, x1, y1 = self.box_of(poly)
            x0, y0, x1, y1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
            if x0 >= x1 or y0 >= y1:
                continue
            px = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, :]
            py = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]
            hit = _inside(px, py, self.photo_xy(poly))
            sub = m[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
            np.maximum(sub, hit, out=sub)
        return m

    def padded(self, box: tuple[int, int, int, int], pad: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        return (max(0, x0 - pad), max(0, y0 - pad), min(self.n, x1 + pad), min(self.n, y1 + pad))

    def world_grid(self, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """World (x, y) of every supersampled pixel centre in ``box`` = (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = box
        xs = (np.arange(x0, x1, dtype=np.float64) + 0.5) / self.ss
        ys = (np.arange(y0, y1, dtype=np.float64) + 0.5) / self.ss
        px, py = np.meshgrid(xs, ys)
        hv = self.hinv
        den = hv[2, 0] * px + hv[2, 1] * py + hv[2, 2]
        wx = (hv[0, 0] * px + hv[0, 1] * py + hv[0, 2]) / den
        wy = (hv[1, 0] * px + hv[1, 1] * py + hv[1, 2]) / den
        return wx.astype(np.float32), wy.astype(np.float32)


def _blurred(mask: np.ndarray, radius: float) -> np.ndarray:
    im = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(im, np.float32) / 255


def _composite(rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray, box=None) -> None:
    """Blend ``colour`` (h, w, 3) over ``rgb`` where ``alpha`` (h, w) in [0, 1], in place."""
    if box is None:
        box = (0, 0, rgb.shape[1], rgb.shape[0])
    x0, y0, x1, y1 = box
    a = alpha[..., None]
    rgb[y0:y1, x0:x1] = rgb[y0:y1, x0:x1] * (1 - a) + colour * a


def _texture(
    look: _Look,
    wx: np.ndarray,
    wy: np.ndarray,
    centre: Point,
    radius: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Brightness modulation of a colony, as a function of seabed coordinates."""
    u, v = (wx - centre[0]) / radius, (wy - centre[1]) / radius
    rho = np.sqrt(u * u + v * v)
    ang = np.arctan2(v, u)
    dome = 0.82 + 0.22 * np.sqrt(np.clip(1 - (rho / 1.3) ** 2, 0, 1))
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    if look.texture == "branching":
        t = 0.86 + 0.14 * np.cos(ang * 26 + 5 * rho + p1) * np.cos(rho * 18 + p2)
    elif look.texture == "bumpy":
        t = 0.85 + 0.15 * ((np.cos(u * 34 + p1) * np.cos(v * 34 + p2)) > 0.35)
    elif look.texture == "lumpy":
        t = 0.9 + 0.1 * np.cos(u * 9 + p1) * np.cos(v * 8 + p2)
    elif look.texture == "mottled":
        t = 0.9 + 0.1 * np.sign(np.sin(u * 47 + p1) * np.sin(v * 43 + p2 + 3 * u))
    elif look.texture == "maze":
        m = np.sin(u * 22 + 2.5 * np.sin(v * 7 + p1)) * np.sin(v * 22 + 2.5 * np.sin(u * 6 + p2))
        t = 0.78 + 0.22 * (np.abs(m) > 0.25)
    elif look.texture == "ridged":
        t = 0.86 + 0.14 * np.cos(rho * 36 + 0.6 * np.cos(ang * 5 + p1))
    else:  # tipped: smooth, with pale growing tips at the rim
        t = 1.0 + 0.25 * np.clip((rho - 0.8) / 0.3, 0, 1)
    return (dome * t).astype(np.float32)


def _corner_positions(rng: np.random.Generator, size: int) -> np.ndarray:
    for _ in range(1000):
        half = rng.uniform(0.36, 0.40) * size
        centre = size / 2 + rng.uniform(-0.02, 0.02, 2) * size
        spin = math.radians(rng.uniform(-6, 6))
        c, s = math.cos(spin), math.sin(spin)
        base = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], float) * half
        pts = (
            centre + base @ np.array([[c, s], [-s, c]]) + rng.uniform(-0.035, 0.035, (4, 2)) * size
        )
        edges = np.roll(pts, -1, axis=0) - pts
        turns = (
            edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
            - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        )
        if pts.min() > 0.06 * size and pts.max() < 0.94 * size and (turns > 0).all():
            return pts
    raise RuntimeError("could not place the frame")  # pragma: no cover


def _place_corals(
    rng: np.random.Generator, count: int, genera: Sequence[str]
) -> list[tuple[str, Point, float]]:
    placed: list[tuple[str, Point, float]] = []
    margin = TUBE_WIDTH / 2 + 0.03
    for _ in range(4000):
        if len(placed) == count:
            break
        r = rng.uniform(0.045, 0.095)
        lo, hi = margin + 1.3 * r, 1 - margin - 1.3 * r
        c = (rng.uniform(lo, hi), rng.uniform(lo, hi))
        # Colonies keep a gap, so that each one stays a shape of its own.
        if all(math.dist(c, q) > 1.3 * (r + rq) + 0.025 for _, q, rq in placed):
            placed.append((genera[len(placed) % len(genera)], c, r))
    return placed


def generate(
    seed: int,
    size: int = 1024,
    rectified_size: int | None = None,
    corals: int = 9,
    genera: int = 6,
    supersample: int = 2,
) -> QuadratSample:
    """Draw a quadrat photo and everything the pipeline derives from it (see the module
    docstring). ``corals`` colonies of ``genera`` genera (at most ``len(LOOKS)``)."""
    if size < 64:
        raise ValueError("size must be at least 64 pixels")
    rng = np.random.default_rng(seed)
    rsize = int(rectified_size or size)
    chosen = [str(g) for g in rng.permutation(sorted(LOOKS))[: max(1, min(genera, len(LOOKS)))]]

    corners = _corner_positions(rng, size)
    unit = np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)
    world_to_photo = homography(unit, corners)
    cv = _Canvas(size, world_to_photo, supersample)
    n = cv.n

    # Seabed: sand with grain and patches of light, then rubble with soft shadows.
    sand = np.array(SAND, np.float32) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    light = 0.86 + 0.28 * _fractal(rng, (n, n), 5, 4)
    grain = 0.94 + 0.12 * _noise(rng, (n, n), size // 3)
    rgb = sand[None, None, :] * (light * grain)[..., None]

    rubble = []
    for _ in range(int(rng.integers(45, 75))):
        c = rng.uniform(-0.3, 1.3, 2)
        k = int(rng.integers(6, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.006, 0.022) * rng.uniform(0.5, 1.0, k)
        stretch = rng.uniform(1, 2.6)
        spin = rng.uniform(0, np.pi)
        x, y = rad * np.cos(ang) * stretch, rad * np.sin(ang)
        poly = np.c_[
            c[0] + np.cos(spin) * x - np.sin(spin) * y, c[1] + np.sin(spin) * x + np.cos(spin) * y
        ]
        shade = rng.uniform(0.95, 1.12) if rng.random() < 0.7 else rng.uniform(0.45, 0.6)
        rubble.append((poly, shade))
    shadows = _blurred(cv.mask([p + 0.004 for p, _ in rubble]), 3 * cv.ss)
    rgb *= 1 - 0.35 * shadows[..., None]
    for poly, shade in rubble:
        box = cv.box_of(poly)
        if box[0] >= box[2] or box[1] >= box[3]:
            continue
        alpha = cv.mask([poly], box)
        tone = np.array((212, 208, 198), np.float32) * shade
        spots = 0.9 + 0.1 * rng.random(alpha.shape, dtype=np.float32)
        _composite(rgb, tone * spots[..., None], alpha, box)

    # Coral colonies, each with a drop shadow, its genus colour and texture.
    truth_corals = []
    for genus, centre, radius in _place_corals(rng, corals, chosen):
        look = LOOKS[genus]
        outline = _blob(rng, centre, radius)
        truth_corals.append(Coral(genus, tuple((x * rsize, y * rsize) for x, y in outline)))
        moved = outline + np.array([0.006, 0.008])
        sbox = cv.padded(cv.box_of(moved), 16 * cv.ss)
        shadow = _blurred(cv.mask([moved], sbox), 4 * cv.ss)
        rgb[sbox[1] : sbox[3], sbox[0] : sbox[2]] *= 1 - 0.3 * shadow[..., None]
        box = cv.box_of(outline)
        alpha = cv.mask([outline], box)
        wx, wy = cv.world_grid(box)
        tone = np.array(look.colour, np.float32) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
        colour = tone * _texture(look, wx, wy, centre, radius, rng)[..., None]
        _composite(rgb, colour.clip(0, 255), alpha, box)

    # The strings, 9 each way between the frame's sides, drawn on a copy: the grid-free
    # photo is the same scene without them (what LaMa should give back).
    clean = rgb.copy()
    half = STRING_WIDTH / 2
    strings = []
    for i in range(1, LATTICE - 1):
        t = i / (LATTICE - 1)
        strings.append(np.array([(t - half, 0), (t + half, 0), (t + half, 1), (t - half, 1)]))
        strings.append(np.array([(0, t - half), (1, t - half), (1, t + half), (0, t + half)]))
    salpha = cv.mask(strings)
    sheen = 0.9 + 0.1 * _noise(rng, (n, n), 60)
    on = salpha > 0
    a = salpha[on][:, None]
    rgb[on] = rgb[on] * (1 - a) + np.array(STRING_WHITE, np.float32) * sheen[on][:, None] * a

    # The frame: a PVC tube centred on the lattice's outer lines, with elbows at the corners.
    tw = TUBE_WIDTH / 2
    outer = np.array([(-tw, -tw), (1 + tw, -tw), (1 + tw, 1 + tw), (-tw, 1 + tw)])
    inner = np.array([(tw, tw), (1 - tw, tw), (1 - tw, 1 - tw), (tw, 1 - tw)])
    e = 1.5 * tw
    elbows = [
        np.array([(x - e, y - e), (x + e, y - e), (x + e, y + e), (x - e, y + e)]) for x, y in unit
    ]
    box = cv.box_of(outer + np.sign(outer - 0.5) * e)
    falpha = np.maximum(cv.mask([outer], box) - cv.mask([inner], box), cv.mask(elbows, box))
    wx, wy = cv.world_grid(box)
    # Across-tube coordinate in [-1, 1], for the cylinder's shading.
    across = np.minimum.reduce([np.abs(wx), np.abs(wx - 1), np.abs(wy), np.abs(wy - 1)]) / tw
    shading = 0.74 + 0.26 * np.sqrt(np.clip(1 - across**2, 0, 1))
    shading += 0.08 * np.exp(-(((across - 0.3) / 0.25) ** 2))
    tube = np.array(FRAME_WHITE, np.float32) * np.clip(shading, 0, 1.05)[..., None]
    for layer in (rgb, clean):
        _composite(layer, tube, falpha, box)

    # Camera: down to the photo size (anti-aliased), water colour cast, vignetting, a
    # little defocus and sensor noise, the same on both versions of the scene.
    cast = np.array([rng.uniform(0.76, 0.82), rng.uniform(0.93, 0.97), 1.0], np.float32)
    haze = np.array([4, 12, 18], np.float32)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
    vignette = (1 - 0.35 * (xx * xx + yy * yy))[..., None]
    noise = rng.normal(0, 1.6, (size, size, 3)).astype(np.float32)

    def camera(layer: np.ndarray) -> Image.Image:
        im = Image.fromarray(layer.clip(0, 255).astype(np.uint8)).reduce(cv.ss)
        im = im.filter(ImageFilter.GaussianBlur(0.5))
        a = np.asarray(im, np.float32) * cast * vignette + haze + noise
        return Image.fromarray(a.clip(0, 255).round().astype(np.uint8))

    photo, photo_clean = camera(rgb), camera(clean)
    corner_pts = tuple((float(x), float(y)) for x, y in corners)
    rect_size = (rsize, rsize)
    step = rsize / (LATTICE - 1)
    name = f"Synthetic_2024_{seed:02d}"
    truth = GroundTruth(
        photo_size=(size, size),
        corners=corner_pts,  # type: ignore[arg-type]
        rectified_size=rect_size,
        grid=tuple((c * step, r * step) for r, c in lattice_of_elements()),
        corals=tuple(truth_corals),
        photo_file=f"1-raw_jpg/{name}.jpg",
        rectified_file=f"3-image_warping/{name}.jpg",
        grid_free_file=f"5-grid_removal/{name}.jpg",
    )
    return QuadratSample(
        seed=seed,
        name=name,
        photo=photo,
        rectified=rectify(photo, corner_pts, rect_size),
        rectified_grid_free=rectify(photo_clean, corner_pts, rect_size),
        truth=truth,
        params={
            "size": size,
            "rectified_size": rsize,
            "corals": corals,
            "genera": chosen,
            "supersample": supersample,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m criobe_verify.quadrat --seed N --out DIR``: write a sample quadrat."""
    parser = argparse.ArgumentParser(
        prog="python -m criobe_verify.quadrat", description=main.__doc__
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--size", type=int, default=1024, help="photo width and height")
    parser.add_argument("--rectified-size", type=int, default=None, help="default: --size")
    parser.add_argument("--corals", type=int, default=9, help="number of colonies")
    parser.add_argument("--genera", type=int, default=6, help=f"at most {len(LOOKS)}")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args(argv)
    sample = generate(
        args.seed, args.size, args.rectified_size, corals=args.corals, genera=args.genera
    )
    paths = sample.write(args.out, quality=args.quality)
    for key, path in paths.items():
        print(f"{key:13} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
