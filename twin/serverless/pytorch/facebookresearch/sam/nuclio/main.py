"""pth-facebookresearch-sam-vit-h, twin: CVAT's Segment Anything interactor, classically.

CVAT v2.29.0's SAM function (``version: 2`` in its function.yaml) does not answer with a
mask: it returns the image embedding, and CVAT's UI plugin runs SAM's decoder in the
browser on the clicks. The request is the interactor's::

    request   {"image": "<base64>", "pos_points": [[x, y], ...], "neg_points": [...],
               "obj_bbox": [[x1, y1], [x2, y2]] or null}
    response  {"blob": "<base64 of float32 C-order array, shape 1 x 256 x 64 x 64>"}

The twin keeps that transport exactly (size, dtype, layout; the UI decodes it as
``Float32Array`` of ``[1, 256, 64, 64]``) but fills it with classical features of the
image resized and padded like SAM's input (longest side 1024): per 16 x 16 cell the Lab
mean and spread and an 8-bin gradient-orientation histogram, at 4 context scales
(channels 0-55), a sine/cosine position code (56-119), zeros above. CVAT's decoder will
not make sense of it; it proves the plumbing, not the masks.

``SAM_TWIN_RESPONSE=mask`` switches to the reply CVAT's SAM function gave before the
decoder moved to the browser, ``{"points": [[x, y], ...], "mask": [[0, 1, ...], ...]}``
(outline and full-size mask), computed with GrabCut seeded by the clicks and the box.

Knobs (environment, read on every call): ``SAM_TWIN_RESPONSE`` (``embedding`` or
``mask``), ``CRIOBE_TWIN_DELAY_S`` seconds to sleep before answering,
``CRIOBE_TWIN_FAULT`` a comma-separated list of faults (see ``FAULTS``).
"""

import base64
import json
import os
import time

import cv2
import numpy as np

SAM_SIZE = 1024
GRID = 64
CHANNELS = 256
FAULTS = {
    "short-blob": "return a 1 x 256 x 32 x 32 embedding, a quarter of what the UI decodes",
    "error-500": "raise in the handler, so the processor answers 500",
}


def init_context(context):
    faults()  # a typo in CRIOBE_TWIN_FAULT stops the function at start, not at first call
    context.user_data.grid = GRID
    context.logger.info("pth-facebookresearch-sam-vit-h twin ready")


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


def handler(context, event):
    active = faults()
    if "error-500" in active:
        raise RuntimeError("CRIOBE_TWIN_FAULT=error-500")
    body = request_body(event)
    image = decode_image(body["image"])
    mode = os.environ.get("SAM_TWIN_RESPONSE", "embedding") or "embedding"
    if mode == "embedding":
        features = embedding(image, GRID // 2 if "short-blob" in active else GRID)
        results = {"blob": base64.b64encode(features.tobytes()).decode("ascii")}
    elif mode == "mask":
        mask = interact(
            image, body.get("pos_points") or [], body.get("neg_points") or [], body.get("obj_bbox")
        )
        results = {"points": outline(mask), "mask": mask.tolist()}
    else:
        raise ValueError(f"SAM_TWIN_RESPONSE must be 'embedding' or 'mask'; got {mode!r}")
    delay = float(os.environ.get("CRIOBE_TWIN_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return context.Response(
        body=json.dumps(results), headers={}, content_type="application/json", status_code=200
    )


def embedding(image, grid):
    """float32 array (1, 256, grid, grid) of classical features, laid out like SAM's."""
    h, w = image.shape[:2]
    scale = SAM_SIZE / max(h, w)
    resized = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    padded = np.zeros((SAM_SIZE, SAM_SIZE, 3), np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    lab = cv2.cvtColor(padded, cv2.COLOR_BGR2LAB).astype(np.float32) / 255
    gray = lab[:, :, 0]
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    magnitude = np.sqrt(gx * gx + gy * gy)
    bins = ((np.arctan2(gy, gx) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
    cell = (grid, grid)
    maps = []
    for c in range(3):
        mean = cv2.resize(lab[:, :, c], cell, interpolation=cv2.INTER_AREA)
        square = cv2.resize(lab[:, :, c] ** 2, cell, interpolation=cv2.INTER_AREA)
        maps += [mean, np.sqrt(np.maximum(square - mean**2, 0))]
    for b in range(8):
        maps.append(cv2.resize(magnitude * (bins == b), cell, interpolation=cv2.INTER_AREA))
    base = np.stack(maps)
    scales = [base] + [np.stack([cv2.blur(m, (k, k)) for m in base]) for k in (3, 7, 15)]
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32) / grid
    position = []
    for f in range(16):
        for coord in (xs, ys):
            position += [np.sin(np.pi * (f + 1) * coord), np.cos(np.pi * (f + 1) * coord)]
    features = np.concatenate([*scales, np.stack(position)])
    out = np.zeros((1, CHANNELS, grid, grid), np.float32)
    out[0, : len(features)] = features
    return out


def interact(image, pos_points, neg_points, obj_bbox):
    """uint8 0/1 mask of the object under the clicks, by GrabCut."""
    h, w = image.shape[:2]
    pos = np.asarray(pos_points, float).reshape(-1, 2)
    neg = np.asarray(neg_points, float).reshape(-1, 2)
    if obj_bbox:
        (x1, y1), (x2, y2) = np.asarray(obj_bbox, float).reshape(2, 2)
    elif len(pos):
        # No box: look around the positive clicks, well beyond their spread.
        (x1, y1), (x2, y2) = pos.min(axis=0), pos.max(axis=0)
        pad = max(0.12 * max(h, w), 0.5 * max(x2 - x1, y2 - y1))
        x1, y1, x2, y2 = x1 - pad, y1 - pad, x2 + pad, y2 + pad
    else:
        raise ValueError("need at least one positive point or an object box")
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    x1, y1 = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
    x2, y2 = int(min(w, np.ceil(x2))), int(min(h, np.ceil(y2)))
    if x2 - x1 < 4 or y2 - y1 < 4:
        raise ValueError("the object box is too small")
    # GrabCut on a crop around the box: the rest is background by construction.
    m = 16
    cx1, cy1, cx2, cy2 = max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)
    crop = image[cy1:cy2, cx1:cx2]
    seed = np.zeros(crop.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (x1 - cx1, y1 - cy1, x2 - x1, y2 - y1)
    cv2.grabCut(crop, seed, rect, bgd, fgd, 3, cv2.GC_INIT_WITH_RECT)
    if len(pos) or len(neg):
        radius = max(3, round(0.006 * max(h, w)))
        for points, value in ((pos, cv2.GC_FGD), (neg, cv2.GC_BGD)):
            for x, y in points:
                cv2.circle(seed, (int(x) - cx1, int(y) - cy1), radius, int(value), -1)
        cv2.grabCut(crop, seed, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    found = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # Keep the piece under the positive clicks (else the largest one).
    n, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    keep = set()
    for x, y in pos:
        px, py = int(x) - cx1, int(y) - cy1
        if 0 <= py < labels.shape[0] and 0 <= px < labels.shape[1] and labels[py, px]:
            keep.add(int(labels[py, px]))
    if not keep and n > 1:
        keep = {1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))}
    mask = np.zeros((h, w), np.uint8)
    mask[cy1:cy2, cx1:cx2] = np.isin(labels, sorted(keep)) if keep else 0
    return mask


def outline(mask):
    """Largest outer contour as [[x, y], ...] in pixel indices, as CVAT's SAM did."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_TC89_KCOS)
    if not contours:
        return []
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return [[int(x), int(y)] for x, y in contour]
