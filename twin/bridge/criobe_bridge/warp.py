"""The quadrat warp: the photo's 4 frame corners (TL, TR, BR, BL) to the corners of a square.

Coordinates are continuous pixels with the origin at the top-left corner of the top-left
pixel (pixel centres at i + 0.5), as in CVAT and Pillow, so corner TL lands on (0, 0) and
BR on (S, S) of an S x S image. Pillow's PERSPECTIVE transform takes the map from output to
input coordinates, i.e. the homography from the square back to the photo; BICUBIC resampling.

    >>> h = homography([(0, 0), (1, 0), (1, 1), (0, 1)], [(10, 10), (30, 10), (30, 30), (10, 30)])
    >>> [round(v, 6) for v in apply(h, (0.5, 0.5))]
    [20.0, 20.0]
    >>> from PIL import Image
    >>> out = rectify(Image.new("RGB", (64, 48)), [(8, 4), (56, 6), (54, 44), (6, 40)], "photo")
    >>> out.size
    (64, 64)

Size of the square (``BRIDGE_TWIN_WARP_SIZE``; the real bridge's is not documented):
``photo`` (default) is the photo's longer side, as the CRIOBE samples' warped images keep
the raw photo's size; ``quadrat`` the longest side of the quadrat as photographed (no
upsampling); a number is that many pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

Point = tuple[float, float]
Matrix = list[list[float]]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (8 x 8: no NumPy needed)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            raise ValueError("degenerate corners: three of them are on one line")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def homography(src: Sequence[Point], dst: Sequence[Point]) -> Matrix:
    """The 3 x 3 projective map taking the 4 ``src`` points to the 4 ``dst`` points."""
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("a homography needs exactly 4 point pairs")
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        b.append(u)
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.append(v)
    h = _solve(a, b)
    return [h[0:3], h[3:6], [h[6], h[7], 1.0]]


def apply(h: Matrix, p: Point) -> Point:
    x, y = p
    w = h[2][0] * x + h[2][1] * y + h[2][2]
    return ((h[0][0] * x + h[0][1] * y + h[0][2]) / w, (h[1][0] * x + h[1][1] * y + h[1][2]) / w)


def square_size(photo: tuple[int, int], corners: Sequence[Point], mode: str) -> int:
    """The side of the square, in pixels, for BRIDGE_TWIN_WARP_SIZE ``mode``.

    >>> square_size((1920, 1440), [(0, 0), (900, 0), (900, 800), (0, 800)], "quadrat")
    900
    """
    if mode == "photo":
        return max(photo)
    if mode == "quadrat":
        sides = [math.dist(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        return max(1, round(max(sides)))
    return int(mode)


def check_corners(corners: Sequence[Point]) -> None:
    """Refuse corners that do not bound a convex quadrilateral in TL, TR, BR, BL order
    (clockwise on screen): warping them would fold the image."""
    cross = []
    for i in range(4):
        (x0, y0), (x1, y1), (x2, y2) = corners[i], corners[(i + 1) % 4], corners[(i + 2) % 4]
        cross.append((x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1))
    if not all(c > 0 for c in cross):
        raise ValueError(
            "the 4 corners are not a convex quadrilateral in the order TL, TR, BR, BL "
            "(clockwise from the top-left)"
        )


def rectify(image: Image.Image, corners: Sequence[Point], size_mode: str = "photo") -> Image.Image:
    """The quadrat bounded by ``corners`` (TL, TR, BR, BL) warped to a square image."""
    check_corners(corners)
    s = square_size(image.size, corners, size_mode)
    back = homography([(0.0, 0.0), (s, 0.0), (s, s), (0.0, s)], corners)
    coeffs = (*back[0], *back[1], back[2][0], back[2][1])
    return image.convert("RGB").transform(
        (s, s), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC
    )
