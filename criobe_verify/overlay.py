"""Pictures for the report: a function's answer drawn over the image it was given, beside
the ground truth, with Pillow.

    png = side_by_side(image, predicted=draw_shapes(image, shapes), truth=draw_truth(...))

Points are drawn as numbered dots (so a renumbering shows), polygons and masks' outlines in
the genus's colour; the ground truth in white dashes of the same geometry.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw

Point = tuple[float, float]
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]  # fmt: skip


def _colour(key: str) -> tuple[int, int, int]:
    return PALETTE[sum(map(ord, key)) % len(PALETTE)]


def _points(draw: ImageDraw.ImageDraw, points: dict[str, Point], colour, numbered: bool) -> None:
    for name, (x, y) in points.items():
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=colour, width=2)
        if numbered:
            draw.text((x + 5, y - 12), name, fill=colour)


def draw_shapes(image: Image.Image, shapes: Iterable[dict]) -> Image.Image:
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for s in shapes:
        if not isinstance(s, dict):
            continue
        colour = _colour(str(s.get("label")))
        if s.get("elements"):
            pts = {
                str(e.get("label")): (float(e["points"][0]), float(e["points"][1]))
                for e in s["elements"]
                if len(e.get("points") or []) == 2 and not e.get("outside")
            }
            _points(draw, pts, colour, numbered=len(pts) <= 20)
            continue
        flat = s.get("points") or []
        poly = [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]
        if len(poly) >= 3:
            draw.line([*poly, poly[0]], fill=colour, width=3)
            draw.text(poly[0], str(s.get("label")), fill=colour)
    return out


def draw_truth(
    image: Image.Image,
    points: Sequence[Point] = (),
    polygons: Iterable[tuple[str, Sequence[Point]]] = (),
) -> Image.Image:
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    named = {str(i + 1): p for i, p in enumerate(points)}
    _points(draw, named, (255, 255, 255), numbered=len(named) <= 20)
    for genus, poly in polygons:
        draw.line([*poly, poly[0]], fill=(255, 255, 255), width=2)
        draw.text(poly[0], genus, fill=(255, 255, 255))
    return out


def row(images: Sequence[Image.Image], width: int = 900) -> str:
    """The images side by side, each scaled to the first one's size, fitting `width`
    together; a base64 PNG for pytest-html."""
    first = images[0]
    scale = width / (first.width * len(images))
    size = (max(1, int(first.width * scale)), max(1, int(first.height * scale)))
    canvas = Image.new("RGB", ((size[0] + 8) * len(images) - 8, size[1]), (30, 30, 30))
    for i, image in enumerate(images):
        canvas.paste(image.convert("RGB").resize(size), (i * (size[0] + 8), 0))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def side_by_side(left: Image.Image, right: Image.Image, width: int = 900) -> str:
    """Both images scaled to fit `width` together; a base64 PNG for pytest-html."""
    return row([left, right], width)
