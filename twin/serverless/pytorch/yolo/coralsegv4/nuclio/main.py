"""pth-yolo-coralsegv4, twin: segments coral colonies by genus on a grid-free quadrat.

Request ``{"image": "<base64 JPEG/PNG>", "threshold"?: 0..1}`` (the rectified image with
the strings painted out); response (CVAT detector list), one shape per colony labelled
with one of the 16 CRIOBE genera. By default each shape is a CVAT mask, as CVAT's own
segmentation functions return them: ``points`` is the outline (flat x, y list, which CVAT
keeps when asked for polygons, ``conv_mask_to_poly``), ``mask`` is the mask cropped to its
box, row-major 0/1, followed by the box ``[xtl, ytl, xbr, ybr]`` in (inclusive) pixel
indices::

    [{"label": "Porites", "type": "mask", "points": [x1, y1, x2, y2, ...],
      "mask": [0, 1, 1, ..., xtl, ytl, xbr, ybr], "confidence": "91",
      "attributes": [{"name": "confidence", "value": "91"}]}, ...]

With ``CORALSEG_OUTPUT=polygon`` shapes are ``{"type": "polygon", "points": [...]}`` instead.

How: corals stand out from sand, rubble and the frame by colour, not brightness. Each
pixel's log-chromaticity relative to the image's median colour (the sand) cancels the
water's colour cast and the lighting; pixels far from the sand's chromaticity are coral,
cleaned up morphologically and split into connected colonies. A colony's genus is the
nearest genus prototype in that chromaticity space. The prototypes are this twin's
"weights": what it has learnt each genus looks like on the synthetic quadrats; on real
photos it will misclassify. Confidence comes from the distances to the prototypes.

Knobs (environment, read on every call): ``CONF_THRESHOLD`` (default 0.25, as the CRIOBE
docs; a request's ``threshold`` raises it), ``CORALSEG_OUTPUT`` (``mask`` or ``polygon``),
``CRIOBE_TWIN_DRIFT_PX`` (default 8, for the ``drift`` fault), ``CRIOBE_TWIN_DELAY_S``
seconds to sleep before answering, ``CRIOBE_TWIN_FAULT`` a comma-separated list of
faults (see ``FAULTS``).

Coordinates: polygon points in pixels, origin at the top-left corner of the top-left
pixel; mask boxes in pixel indices, as CVAT's ``to_cvat_mask``.
"""

import base64
import json
import os
import time

import cv2
import numpy as np

GENERA = (
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
# Mean log-chromaticity (R, G, B, relative to the sand; sums to zero) of the genera this
# model knows.
PROTOTYPES = {
    "Acropora": (-0.04, -0.36, 0.40),
    "Pocillopora": (0.23, -0.32, 0.09),
    "Porites": (0.30, 0.20, -0.50),
    "Montipora": (0.46, -0.06, -0.40),
    "Goniastrea": (-0.06, 0.31, -0.25),
    "Pavona/Leptoseris": (-0.56, -0.05, 0.61),
    "Millepora": (-0.87, 0.34, 0.53),
}
CORAL_CHROMA = 0.26  # sand, rubble and the frame stay below, every known genus above
MAX_PROTOTYPE_DISTANCE = 0.3
FAULTS = {
    "unknown-label": "label each colony with its genus in lower case, names CVAT does not know",
    "drift": "shift every shape by CRIOBE_TWIN_DRIFT_PX pixels right and down",
    "error-500": "raise in the handler, so the processor answers 500",
}


def init_context(context):
    faults()  # a typo in CRIOBE_TWIN_FAULT stops the function at start, not at first call
    context.user_data.genera = GENERA
    context.logger.info("pth-yolo-coralsegv4 twin ready")


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
    output = os.environ.get("CORALSEG_OUTPUT", "mask") or "mask"
    if output not in ("mask", "polygon"):
        raise ValueError(f"CORALSEG_OUTPUT must be 'mask' or 'polygon'; got {output!r}")
    threshold = max(
        float(os.environ.get("CONF_THRESHOLD", "0.25") or 0.25), float(body.get("threshold") or 0.0)
    )
    drift = int(os.environ.get("CRIOBE_TWIN_DRIFT_PX", "8") or 8) if "drift" in active else 0
    results = []
    for genus, confidence, mask in segment(image):
        if confidence < threshold:
            continue
        if drift:
            mask = shifted(mask, drift)
        shape = to_shape(genus, confidence, mask, output)
        if shape is None:
            continue
        if "unknown-label" in active:
            shape["label"] = genus.lower()
        results.append(shape)
    delay = float(os.environ.get("CRIOBE_TWIN_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return context.Response(
        body=json.dumps(results), headers={}, content_type="application/json", status_code=200
    )


def segment(image):
    """[(genus, confidence, full-size uint8 0/1 mask)] for each colony found."""
    h, w = image.shape[:2]
    rgb = cv2.GaussianBlur(image[:, :, ::-1].astype(np.float32), (0, 0), 1.5)
    sand = np.median(rgb.reshape(-1, 3), axis=0)
    log = np.log(rgb + 8) - np.log(sand + 8)
    chroma = log - log.mean(axis=2, keepdims=True)
    distance = np.linalg.norm(chroma, axis=2)
    coral = (distance > CORAL_CHROMA).astype(np.uint8)
    k = max(3, round(min(h, w) / 200) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    coral = cv2.morphologyEx(coral, cv2.MORPH_CLOSE, disc)
    coral = cv2.morphologyEx(coral, cv2.MORPH_OPEN, disc)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(coral, connectivity=8)
    min_area = 0.0015 * h * w
    names = list(PROTOTYPES)
    protos = np.array([PROTOTYPES[g] for g in names])
    found = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        # Fill holes: the colony is everything inside its outer outline.
        sub = (labels[y : y + bh, x : x + bw] == i).astype(np.uint8)
        contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = np.zeros_like(sub)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        # The colony's colour from its core, away from edge pixels mixed with sand.
        core = cv2.erode(filled, disc)
        sel = core.astype(bool) if core.any() else filled.astype(bool)
        mean = chroma[y : y + bh, x : x + bw][sel].mean(axis=0)
        d = np.linalg.norm(protos - mean, axis=1)
        best = int(np.argmin(d))
        if d[best] > MAX_PROTOTYPE_DISTANCE:
            continue  # coloured, but like no genus this model knows
        weights = np.exp(-((d / 0.12) ** 2))
        confidence = float(weights[best] / weights.sum()) * float(np.exp(-((d[best] / 0.25) ** 2)))
        mask = np.zeros((h, w), np.uint8)
        mask[y : y + bh, x : x + bw] = filled
        found.append((names[best], confidence, mask))
    return found


def shifted(mask, px):
    out = np.zeros_like(mask)
    out[px:, px:] = mask[:-px, :-px]
    return out


def to_shape(genus, confidence, mask, output):
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    outline = cv2.approxPolyDP(contour, 0.8, True).reshape(-1, 2)
    if len(outline) < 3:
        return None
    # OpenCV traces the centres of the boundary pixels (integers); ours sit at +0.5.
    points = [round(float(v) + 0.5, 2) for p in outline for v in p]
    c = percent(confidence)
    shape = {
        "label": genus,
        "type": "polygon",
        "points": points,
        "confidence": c,
        "attributes": [{"name": "confidence", "value": c}],
    }
    if output == "mask":
        ys, xs = np.nonzero(mask)
        xtl, ytl, xbr, ybr = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
        shape["type"] = "mask"
        shape["mask"] = [*mask[ytl : ybr + 1, xtl : xbr + 1].ravel().tolist(), xtl, ytl, xbr, ybr]
    return shape
