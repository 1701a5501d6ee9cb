"""pth-yolo-gridcorners, twin: finds the quadrat frame's 4 corners with classical vision.

Request ``{"image": "<base64 JPEG/PNG>", "threshold"?: 0..1}``; response (CVAT detector
list) with one ``quadrat_corner`` skeleton whose elements "1".."4" are the corners TL,
TR, BR, BL (clockwise from the top-left), confidence as integer-percent strings::

    [{"label": "quadrat_corner", "type": "skeleton", "confidence": "93",
      "attributes": [{"name": "confidence", "value": "93"}],
      "elements": [{"label": "1", "type": "points", "points": [x, y], "outside": 0,
                    "confidence": "95"}, ...]}]

The elements carry no attributes: the project's point sublabels have none.

How: the frame is the one bright tube, thicker than the strings and far longer than any
rubble, that rings the image. A white top-hat picks bright structures narrower than a
few tube widths, an opening drops the strings, the largest ring-shaped component is the
frame; straight lines fitted to the middle of each side of its outer and inner outline
meet at the outer and inner corners, whose midpoints are the corners of the tube's
centre line. The confidence is the share of outline points lying on the fitted lines.
An empty list means no frame was found.

Knobs (environment, read on every call): ``CRIOBE_TWIN_DELAY_S`` seconds to sleep before
answering; ``CRIOBE_TWIN_FAULT`` a comma-separated list of faults (see ``FAULTS``).

Coordinates: pixels, origin at the top-left corner of the top-left pixel.
"""

import base64
import json
import os
import time

import cv2
import numpy as np

LABEL = "quadrat_corner"
FAULTS = {
    "three-corners": "drop element 4 (BL)",
    "two-corners": "keep only elements 1 and 2",
    "counter-clockwise": "number the corners TL, BL, BR, TR",
    "offset-10px": "move every corner 10 px away from the frame's centre",
    "moved-4px": "move every corner 4 px to the right (an upgraded model's small shift)",
    "confidence-fraction": 'confidence as a fraction string ("0.87"), which CVAT drops',
    "unknown-label": 'label the skeleton "corner", a name the CRIOBE project lacks',
    "error-500": "raise in the handler, so the processor answers 500",
}
WORK_SIZE = 1280  # larger photos are searched at this size, then refined at full size


def init_context(context):
    faults()  # a typo in CRIOBE_TWIN_FAULT stops the function at start, not at first call
    context.user_data.label = LABEL
    context.logger.info("pth-yolo-gridcorners twin ready")


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


def handler(context, event):
    active = faults()
    if "error-500" in active:
        raise RuntimeError("CRIOBE_TWIN_FAULT=error-500")
    body = request_body(event)
    image = decode_image(body["image"])
    found = find_corners(image)
    results = []
    threshold = float(body.get("threshold") or 0.0)
    if found is not None and found[2] >= threshold:
        corners, per_corner, score = found
        results.append(skeleton(corners, per_corner, score, active))
    delay = float(os.environ.get("CRIOBE_TWIN_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return context.Response(
        body=json.dumps(results), headers={}, content_type="application/json", status_code=200
    )


def skeleton(corners, per_corner, score, active):
    corners = np.array(corners, dtype=float)
    order = [0, 1, 2, 3]
    if "offset-10px" in active:
        centre = corners.mean(axis=0)
        away = corners - centre
        corners = corners + 10 * away / np.linalg.norm(away, axis=1, keepdims=True)
    if "moved-4px" in active:
        corners = corners + np.array([4.0, 0.0])
    if "counter-clockwise" in active:
        order = [0, 3, 2, 1]
    if "three-corners" in active:
        order = order[:3]
    if "two-corners" in active:
        order = order[:2]

    def conf(v):
        return f"{min(max(v, 0.0), 1.0):.2f}" if "confidence-fraction" in active else percent(v)

    elements = []
    for number, i in enumerate(order, start=1):
        c = conf(per_corner[i])
        elements.append(
            {
                "label": str(number),
                "type": "points",
                "points": [round(float(corners[i][0]), 2), round(float(corners[i][1]), 2)],
                "outside": 0,
                "confidence": c,
            }
        )
    c = conf(score)
    return {
        "label": "corner" if "unknown-label" in active else LABEL,
        "type": "skeleton",
        "confidence": c,
        "attributes": [{"name": "confidence", "value": c}],
        "elements": elements,
    }


def find_corners(image):
    """((TL, TR, BR, BL) as (x, y), per-corner confidences, overall confidence), or None."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIZE / max(h, w))
    work = (
        image
        if scale == 1.0
        else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    )
    ring = frame_mask(work)
    if ring is None:
        return None
    contours, hierarchy = cv2.findContours(ring, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return None
    outer_i = max(
        range(len(contours)),
        key=lambda i: cv2.contourArea(contours[i]) if hierarchy[0][i][3] < 0 else -1,
    )
    holes = [i for i in range(len(contours)) if hierarchy[0][i][3] == outer_i]
    if not holes:
        return None
    inner_i = max(holes, key=lambda i: cv2.contourArea(contours[i]))
    outer = fit_quad(contours[outer_i])
    inner = fit_quad(contours[inner_i])
    if outer is None or inner is None:
        return None
    (oq, ofit), (iq, ifit) = outer, inner
    oq, ofit = clockwise_from_top_left(oq, ofit)
    # Match each inner corner to the nearest outer one.
    idx = [int(np.argmin(np.linalg.norm(iq - p, axis=1))) for p in oq]
    if len(set(idx)) != 4:
        return None
    iq, ifit_c = iq[idx], [ifit[k] for k in idx]
    # Contour points are the centres of the mask's boundary pixels: half a pixel inside the
    # outer edge and half a pixel inside the hole's edge, which cancel in the midpoint; the
    # 0.5 then moves pixel indices to pixel-corner coordinates.
    corners = (oq + iq) / 2 / scale + 0.5
    per_corner = [min(ofit[k], ifit_c[k]) for k in range(4)]
    return [tuple(p) for p in corners], per_corner, float(np.mean(per_corner))


def frame_mask(image):
    """Binary mask of the frame tube (uint8 0/255), or None."""
    h, w = image.shape[:2]
    gray = image.astype(np.float32).mean(axis=2)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
    # Structures narrower than k (tube, strings, rubble) stand out of the top-hat.
    k = max(15, round(0.06 * min(h, w)) | 1)
    tophat = gray - cv2.morphologyEx(
        gray, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    )
    t8 = np.clip(tophat * (255.0 / max(float(tophat.max()), 1e-6)), 0, 255).astype(np.uint8)
    _, bright = cv2.threshold(t8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # The strings are a few pixels wide, the tube several times that: an opening keeps the tube.
    s = max(3, round(0.007 * min(h, w)) | 1)
    bright = cv2.morphologyEx(
        bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s, s))
    )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    best, best_area = None, 0
    for i in range(1, n):
        _, _, bw, bh, area = stats[i]
        ringlike = area < 0.5 * bw * bh  # a ring covers little of its bounding box
        if bw > 0.3 * w and bh > 0.3 * h and ringlike and area > best_area:
            best, best_area = i, area
    if best is None:
        return None
    return np.where(labels == best, 255, 0).astype(np.uint8)


def fit_quad(contour):
    """Four corners of a roughly quadrilateral outline from lines fitted to the middle of its
    sides, and per corner the share of side points within 1.5 px of their lines."""
    hull = cv2.convexHull(contour)
    perimeter = cv2.arcLength(hull, True)
    approx = None
    for eps in np.linspace(0.005, 0.12, 47):
        a = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(a) == 4:
            approx = a.reshape(4, 2).astype(np.float64)
            break
    if approx is None:
        return None
    pts = contour.reshape(-1, 2).astype(np.float64)
    lines, support = [], []
    for i in range(4):
        p, q = approx[i], approx[(i + 1) % 4]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 10:
            return None
        u = d / length
        n = np.array([-u[1], u[0]])
        t = (pts - p) @ u / length
        dist = np.abs((pts - p) @ n)
        near = pts[(t > 0.15) & (t < 0.85) & (dist < max(4.0, 0.02 * length))]
        if len(near) < 10:
            return None
        vx, vy, x0, y0 = cv2.fitLine(near.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        direction, origin = np.array([vx, vy], float), np.array([x0, y0], float)
        normal = np.array([-direction[1], direction[0]])
        residual = np.abs((near - origin) @ normal)
        lines.append((origin, direction))
        support.append(float(np.mean(residual < 1.5)))
    corners, fit = [], []
    for i in range(4):
        (o1, d1), (o2, d2) = lines[i - 1], lines[i]
        a = np.array([d1, -d2]).T
        if abs(np.linalg.det(a)) < 1e-6:
            return None
        s, _ = np.linalg.solve(a, o2 - o1)
        corners.append(o1 + s * d1)
        fit.append(min(support[i - 1], support[i]))
    return np.array(corners), fit


def clockwise_from_top_left(quad, fit):
    centre = quad.mean(axis=0)
    # Image y points down, so increasing atan2 runs clockwise on screen.
    order = np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))
    quad, fit = quad[order], [fit[k] for k in order]
    start = int(np.argmin(quad.sum(axis=1)))
    roll = [(start + k) % 4 for k in range(4)]
    return quad[roll], [fit[k] for k in roll]
