"""pth-lama, twin: paints the grid strings out of a rectified quadrat.

Called by the bridge (not by CVAT) with the rectified image and the 117 grid points the
grid stage produced, in element order "1".."117" (row-major over the 11 x 11 lattice
minus its 4 outer corners)::

    request   {"image": "<base64 JPEG/PNG>", "keypoints": [[x, y], ... 117 of them]}
    response  {"image": "<base64 PNG>"}    same width and height as the input

The real function's response format is not documented anywhere public; this twin
chooses a JSON object with the inpainted image as base64 PNG (lossless, so the next
stage sees exactly what the inpainter produced).

How: the strings are the lattice lines through the keypoints (9 columns and 9 rows, each
running frame side to frame side); a mask of those polylines, ``GRID_LINE_WIDTH`` pixels
wide (default 8, as the CRIOBE docs), is filled by OpenCV's Telea inpainting, the classical
stand-in for LaMa.

Knobs (environment, read on every call): ``GRID_LINE_WIDTH``; ``CRIOBE_TWIN_DELAY_S``
seconds to sleep before answering; ``CRIOBE_TWIN_FAULT`` a comma-separated list of faults
(see ``FAULTS``).

Coordinates: pixels, origin at the top-left corner of the top-left pixel.
"""

import base64
import json
import os
import time

import cv2
import numpy as np

N = 11  # lattice lines each way: 2 frame sides and 9 strings
FAULTS = {
    "wrong-size": "answer at half the input's width and height",
    "identity": "answer the input image unchanged (strings still there)",
    "error-500": "raise in the handler, so the processor answers 500",
}
SHIFT = 4  # fractional bits for OpenCV's sub-pixel polylines


def init_context(context):
    faults()  # a typo in CRIOBE_TWIN_FAULT stops the function at start, not at first call
    context.user_data.line_width = line_width()
    context.logger.info("pth-lama twin ready")


def faults():
    names = {f.strip() for f in os.environ.get("CRIOBE_TWIN_FAULT", "").split(",") if f.strip()}
    unknown = sorted(names - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown CRIOBE_TWIN_FAULT {unknown}; known: {sorted(FAULTS)}")
    return names


def line_width():
    width = int(os.environ.get("GRID_LINE_WIDTH", "8") or 8)
    if width < 1:
        raise ValueError(f"GRID_LINE_WIDTH must be a positive number of pixels; got {width}")
    return width


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


def lattice_of_elements():
    corners = {(0, 0), (0, N - 1), (N - 1, 0), (N - 1, N - 1)}
    return [(r, c) for r in range(N) for c in range(N) if (r, c) not in corners]


def handler(context, event):
    active = faults()
    if "error-500" in active:
        raise RuntimeError("CRIOBE_TWIN_FAULT=error-500")
    body = request_body(event)
    image = decode_image(body["image"])
    keypoints = np.asarray(body["keypoints"], dtype=np.float64)
    cells = lattice_of_elements()
    if keypoints.shape != (len(cells), 2):
        raise ValueError(
            f"'keypoints' must be {len(cells)} [x, y] pairs; got shape {keypoints.shape}"
        )
    if "identity" in active:
        out = image
    else:
        mask = string_mask(image.shape[:2], dict(zip(cells, keypoints, strict=True)), line_width())
        out = cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)
    if "wrong-size" in active:
        out = cv2.resize(out, (out.shape[1] // 2, out.shape[0] // 2), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("could not encode the inpainted image")
    results = {"image": base64.b64encode(png.tobytes()).decode("ascii")}
    delay = float(os.environ.get("CRIOBE_TWIN_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return context.Response(
        body=json.dumps(results), headers={}, content_type="application/json", status_code=200
    )


def string_mask(shape, points, width):
    """uint8 mask (255 on the strings) of the 9 + 9 lattice lines through ``points``."""
    mask = np.zeros(shape, np.uint8)
    lines = [[points[(r, c)] for r in range(N)] for c in range(1, N - 1)]
    lines += [[points[(r, c)] for c in range(N)] for r in range(1, N - 1)]
    for line in lines:
        # OpenCV puts pixel centres at integers; ours are at +0.5.
        fixed = np.round((np.asarray(line) - 0.5) * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(mask, [fixed], False, 255, thickness=width, lineType=cv2.LINE_8, shift=SHIFT)
    return mask
