"""pth-yolo-gridpose, twin: finds the 117 string intersections on a rectified quadrat.

Request ``{"image": "<base64 JPEG/PNG>", "threshold"?: 0..1}`` (the image warped to a
square on the 4 corners); response (CVAT detector list) with one ``grid`` skeleton whose
elements "1".."117" are the points of the 11 x 11 lattice minus its 4 outer corners,
numbered row by row from the top-left (rows of 9, 11 x 9, 9), like the exported label::

    [{"label": "grid", "type": "skeleton", "confidence": "96",
      "attributes": [{"name": "confidence", "value": "96"}],
      "elements": [{"label": "1", "type": "points", "points": [x, y], "outside": 0,
                    "confidence": "97"}, ...]}]

The elements carry no attributes: the project's point sublabels have none.

How: a white top-hat along rows (columns) keeps thin bright vertical (horizontal)
structures, which are smoothed along their direction so that long strings win over
specks. The 9 strongest peaks of the column (row) profile place the strings roughly; in
bands across the image each string's response peak is located to a sub-pixel and a
straight line is fitted through them. The 9 x 9 crossings are the inner points; the
points on the frame come from the plane homography fitted to those crossings. Element
confidence is the share of bands in which the string(s) through the point were seen.
An empty list means the grid was not found.

Knobs (environment, read on every call): ``CRIOBE_TWIN_DELAY_S`` seconds to sleep before
answering; ``CRIOBE_TWIN_FAULT`` a comma-separated list of faults (see ``FAULTS``).

Coordinates: pixels, origin at the top-left corner of the top-left pixel.
"""

import base64
import itertools
import json
import os
import time

import cv2
import numpy as np

LABEL = "grid"
N = 11  # lattice lines each way: 2 frame sides and 9 strings
FAULTS = {
    "116-points": 'drop element "117"',
    "column-major": "number the elements column by column instead of row by row",
    "unknown-label": 'label the skeleton "grid_point", a name the CRIOBE project lacks',
    "error-500": "raise in the handler, so the processor answers 500",
}
BANDS = 24


def init_context(context):
    faults()  # a typo in CRIOBE_TWIN_FAULT stops the function at start, not at first call
    context.user_data.label = LABEL
    context.logger.info("pth-yolo-gridpose twin ready")


def faults():
    names = {f.strip() for f in os.environ.get("CRIOBE_TWIN_FAULT", "").split(",") if f.strip()}
    unknown = sorted(names - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown CRIOBE_TWIN_FAULT {unknown}; known: {sorted(FAULTS)}")
    return names


def request_body(event):
    """Nuclio hands JSON bodies over parsed, others as bytes."""
    body = event.body
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


def decode_image(b64):
    image = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("'image' is not a JPEG or PNG")
    return image


def percent(value):
    return str(round(100 * min(max(value, 0.0), 1.0)))


def lattice_of_elements(column_major=False):
    """(row, column) of elements "1".."117" (row-major, like the label)."""
    corners = {(0, 0), (0, N - 1), (N - 1, 0), (N - 1, N - 1)}
    cells = [(r, c) for r in range(N) for c in range(N) if (r, c) not in corners]
    if column_major:
        cells = sorted(cells, key=lambda rc: (rc[1], rc[0]))
    return cells


def handler(context, event):
    active = faults()
    if "error-500" in active:
        raise RuntimeError("CRIOBE_TWIN_FAULT=error-500")
    body = request_body(event)
    image = decode_image(body["image"])
    found = find_grid(image)
    results = []
    threshold = float(body.get("threshold") or 0.0)
    if found is not None:
        points, confidence = found
        score = float(np.mean(list(confidence.values())))
        if score >= threshold:
            results.append(skeleton(points, confidence, score, active))
    delay = float(os.environ.get("CRIOBE_TWIN_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return context.Response(
        body=json.dumps(results), headers={}, content_type="application/json", status_code=200
    )


def skeleton(points, confidence, score, active):
    cells = lattice_of_elements(column_major="column-major" in active)
    if "116-points" in active:
        cells = cells[:-1]
    elements = []
    for number, rc in enumerate(cells, start=1):
        c = percent(confidence[rc])
        x, y = points[rc]
        elements.append(
            {
                "label": str(number),
                "type": "points",
                "points": [round(float(x), 2), round(float(y), 2)],
                "outside": 0,
                "confidence": c,
            }
        )
    c = percent(score)
    return {
        "label": "grid_point" if "unknown-label" in active else LABEL,
        "type": "skeleton",
        "confidence": c,
        "attributes": [{"name": "confidence", "value": c}],
        "elements": elements,
    }


def find_grid(image):
    """({(row, col): (x, y)} for the 117 elements, {(row, col): confidence}), or None."""
    h, w = image.shape[:2]
    gray = cv2.GaussianBlur(image.astype(np.float32).mean(axis=2), (0, 0), 0.8)
    k = max(9, round(min(h, w) / 60) | 1)
    length = max(15, round(min(h, w) / 25) | 1)
    vertical = line_response(gray, k, length, vertical=True)
    horizontal = line_response(gray, k, length, vertical=False)
    cols = find_lines(vertical, w, h)
    rows = find_lines(horizontal.T, h, w)
    if cols is None or rows is None:
        return None
    # cols: x = a*y + b for each vertical string; rows: y = a*x + b for each horizontal one.
    inner_src, inner_dst, points, confidence = [], [], {}, {}
    for i, (ac, bc, sc) in enumerate(cols, start=1):
        for j, (ar, br, sr) in enumerate(rows, start=1):
            # Solve x = ac*y + bc, y = ar*x + br.
            y = (ar * bc + br) / (1 - ar * ac)
            x = ac * y + bc
            points[(j, i)] = (x + 0.5, y + 0.5)
            confidence[(j, i)] = min(sc, sr)
            inner_src.append((i, j))
            inner_dst.append((x + 0.5, y + 0.5))
    hmat, _ = cv2.findHomography(np.float32(inner_src), np.float32(inner_dst), 0)
    if hmat is None:
        return None
    fitted = cv2.perspectiveTransform(np.float32(inner_src).reshape(-1, 1, 2), hmat).reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((fitted - np.float32(inner_dst)) ** 2, axis=1))))
    trust = float(np.exp(-rms / 2))
    for r, c in lattice_of_elements():
        if (r, c) in points:
            continue
        x, y = cv2.perspectiveTransform(np.float32([[[c, r]]]), hmat)[0, 0]
        points[(r, c)] = (float(x), float(y))
        along = cols[c - 1][2] if r in (0, N - 1) else rows[r - 1][2]
        confidence[(r, c)] = along * trust
    return points, confidence


def line_response(gray, k, length, vertical):
    """Thin bright lines running vertically (or horizontally), smoothed along their run."""
    size = (k, 1) if vertical else (1, k)
    opened = cv2.morphologyEx(gray, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, size))
    tophat = gray - opened
    along = (1, length) if vertical else (length, 1)
    return cv2.blur(tophat, along)


def find_lines(response, w, h):
    """Nine near-vertical lines x = a*y + b in ``response`` (h x w), with their support."""
    margin = int(0.04 * h)
    profile = response[margin : h - margin].mean(axis=0)
    lo, hi = int(0.03 * w), int(0.97 * w)
    spacing = w / (N - 1)
    candidates = [
        x
        for x in range(max(lo, 1), min(hi, w - 1))
        if profile[x] >= profile[x - 1] and profile[x] > profile[x + 1]
    ]
    chosen = []
    for x in sorted(candidates, key=lambda x: -profile[x]):
        if all(abs(x - c) > 0.5 * spacing for c in chosen):
            chosen.append(x)
        if len(chosen) == N - 2:
            break
    if len(chosen) < N - 2:
        return None
    chosen.sort()
    bounds = np.linspace(margin, h - margin, BANDS + 1).astype(int)
    band_means = [response[y0:y1].mean(axis=0) for y0, y1 in itertools.pairwise(bounds)]
    band_centres = (bounds[:-1] + bounds[1:]) / 2 - 0.5
    strength = float(np.median([profile[x] for x in chosen]))
    window = int(0.3 * spacing)
    lines = []
    for x0 in chosen:
        ys, xs = [], []
        for yc, prof in zip(band_centres, band_means, strict=True):
            a, b = max(1, x0 - window), min(w - 1, x0 + window)
            seg = prof[a:b]
            i = int(np.argmax(seg))
            if seg[i] < 0.4 * strength or i == 0 or i == len(seg) - 1:
                continue
            # Sub-pixel peak: vertex of the parabola through the maximum and its neighbours.
            left, mid, right = seg[i - 1], seg[i], seg[i + 1]
            den = left - 2 * mid + right
            offset = 0.5 * (left - right) / den if den < 0 else 0.0
            xs.append(a + i + offset)
            ys.append(yc)
        if len(xs) < BANDS // 3:
            return None
        ys, xs = np.array(ys), np.array(xs)
        keep = np.ones(len(xs), bool)
        for _ in range(3):
            slope, intercept = np.polyfit(ys[keep], xs[keep], 1)
            residual = np.abs(xs - (slope * ys + intercept))
            keep = residual < max(1.5, 2.5 * np.median(residual[keep]))
            if keep.sum() < BANDS // 3:
                return None
        lines.append((float(slope), float(intercept), float(keep.sum()) / BANDS))
    return lines
