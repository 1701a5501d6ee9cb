"""The twin's reference functions, called in-process as Nuclio's Python processor calls them
(real ``nuclio_sdk`` Context, Event and Response), on the committed sample quadrat: the
output contract, accuracy against the ground truth, the knobs, and every fault doing what
its name says.

Measured accuracies are printed (``-s``) and recorded as test-suite properties (JUnit XML).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
import re
import time
import traceback

import nuclio_sdk
import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.optimize import linear_sum_assignment
from shapely.geometry import Polygon

from criobe_verify import quadrat as q
from selftests import PROJECT_ROOT

SERVERLESS = PROJECT_ROOT / "twin" / "serverless" / "pytorch"
DIRS = {
    "pth-yolo-gridcorners": "yolo/gridcorners/nuclio",
    "pth-yolo-gridpose": "yolo/gridpose/nuclio",
    "pth-lama": "lama/nuclio",
    "pth-yolo-coralsegv4": "yolo/coralsegv4/nuclio",
    "pth-facebookresearch-sam-vit-h": "facebookresearch/sam/nuclio",
}
SAMPLE = PROJECT_ROOT / "fixtures" / "data" / "sample-quadrat"
LABELS = PROJECT_ROOT / "criobe_verify" / "data" / "criobe-labels"
CONFIDENCE = {
    "name": "confidence",
    "input_type": "number",
    "mutable": True,
    "values": ["0", "100", "1"],
    "default_value": "100",
}
KNOBS = ("CRIOBE_TWIN_FAULT", "CRIOBE_TWIN_DELAY_S", "CORALSEG_OUTPUT", "SAM_TWIN_RESPONSE")
MAX_CALL_S = 2.0


# --- calling a function the way Nuclio does -------------------------------------------------


class Function:
    def __init__(self, name: str):
        path = SERVERLESS / DIRS[name] / "main.py"
        spec = importlib.util.spec_from_file_location(f"twin_fn_{name.replace('-', '_')}", path)
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.name = name

    def context(self) -> nuclio_sdk.Context:
        logger = nuclio_sdk.Logger(logging.DEBUG, name=self.name)
        ctx = nuclio_sdk.Context(logger=logger)
        self.module.init_context(ctx)
        return ctx

    def call(self, body: dict, raw: bool = False) -> tuple[int, object, float]:
        """(status, decoded JSON body or text, seconds): the processor's answer. Nuclio
        parses a JSON body when the content type says so and passes bytes otherwise; an
        exception in the handler becomes a 500 with the traceback as text."""
        data = json.dumps(body).encode()
        event = nuclio_sdk.Event(
            body=data if raw else json.loads(data),
            content_type="text/plain" if raw else "application/json",
            method="POST",
            path="/",
        )
        start = time.perf_counter()
        try:
            output = self.module.handler(self.context(), event)
        except Exception:
            return 500, traceback.format_exc(), time.perf_counter() - start
        elapsed = time.perf_counter() - start
        response = nuclio_sdk.Response.from_entrypoint_output(json.dumps, output)
        assert response["content_type"] == "application/json"
        return response["status_code"], json.loads(response["body"]), elapsed


@pytest.fixture(autouse=True)
def _no_knobs(monkeypatch):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)


def b64(path) -> str:
    return base64.b64encode((SAMPLE / path).read_bytes()).decode()


def decode_png(text: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(text)))
    assert im.format == "PNG"
    return im.convert("RGB")


@pytest.fixture(scope="module")
def truth() -> q.GroundTruth:
    return q.load_ground_truth(SAMPLE)


@pytest.fixture(scope="module")
def fn():
    return {name: Function(name) for name in DIRS}


def baseline(fn, name, body):
    with pytest.MonkeyPatch.context() as mp:
        for knob in KNOBS:
            mp.delenv(knob, raising=False)
        status, out, elapsed = fn[name].call(body)
    assert status == 200, out
    assert elapsed < MAX_CALL_S, f"{name}: {elapsed:.2f} s"
    return out, elapsed


@pytest.fixture(scope="module")
def corners(fn, truth):
    return baseline(fn, "pth-yolo-gridcorners", {"image": b64(truth.photo_file)})


@pytest.fixture(scope="module")
def grid(fn, truth):
    return baseline(fn, "pth-yolo-gridpose", {"image": b64(truth.rectified_file)})


@pytest.fixture(scope="module")
def lama(fn, truth):
    body = {"image": b64(truth.rectified_file), "keypoints": [list(p) for p in truth.grid]}
    return baseline(fn, "pth-lama", body)


@pytest.fixture(scope="module")
def corals(fn, truth):
    return baseline(fn, "pth-yolo-coralsegv4", {"image": b64(truth.grid_free_file)})


def points(skeleton) -> np.ndarray:
    return np.array([e["points"] for e in skeleton["elements"]], float)


def is_percent(value) -> bool:
    return isinstance(value, str) and value.isdigit() and 0 <= int(value) <= 100


def assert_skeleton(shapes, label, count):
    assert isinstance(shapes, list) and len(shapes) == 1, shapes
    (s,) = shapes
    assert s["label"] == label and s["type"] == "skeleton"
    assert is_percent(s["confidence"])
    assert s["attributes"] == [{"name": "confidence", "value": s["confidence"]}]
    assert [e["label"] for e in s["elements"]] == [str(i) for i in range(1, count + 1)]
    for e in s["elements"]:
        assert e["type"] == "points" and e["outside"] == 0 and is_percent(e["confidence"])
        assert len(e["points"]) == 2 and all(isinstance(v, float) for v in e["points"])


def signed_area(p: np.ndarray) -> float:
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def cvat_mask(shape) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Decode CVAT's detector mask: the box-cropped mask, row-major, then [xtl, ytl, xbr, ybr]."""
    *flat, xtl, ytl, xbr, ybr = shape["mask"]
    w, h = xbr - xtl + 1, ybr - ytl + 1
    assert len(flat) == w * h and set(flat) <= {0, 1}
    return np.array(flat, np.uint8).reshape(h, w), (xtl, ytl, xbr, ybr)


def outline(shape) -> Polygon:
    p = np.array(shape["points"], float).reshape(-1, 2)
    return Polygon(p).buffer(0)


def match_corals(shapes, truth_corals):
    """Hungarian pairing of predicted and true colonies on IoU (coral shapes only)."""
    pred = [(s["label"], outline(s)) for s in shapes]
    gt = [(c.genus, Polygon(c.polygon)) for c in truth_corals]
    iou = np.zeros((len(gt), len(pred)))
    for i, (_, g) in enumerate(gt):
        for j, (_, p) in enumerate(pred):
            iou[i, j] = g.intersection(p).area / g.union(p).area
    rows, cols = linear_sum_assignment(-iou)
    return [(gt[i][0], pred[j][0], float(iou[i, j])) for i, j in zip(rows, cols, strict=True)]


# --- function.yaml ---------------------------------------------------------------------------


def exported_labels(file: str) -> list[dict]:
    return json.loads((LABELS / file).read_text())


@pytest.mark.parametrize("name", list(DIRS))
def test_function_yaml_is_deployable_like_cvat_functions(name):
    doc = yaml.safe_load((SERVERLESS / DIRS[name] / "function.yaml").read_text())
    meta, spec = doc["metadata"], doc["spec"]
    assert meta["name"] == name and meta["namespace"] == "cvat"
    assert meta["annotations"]["framework"] == "pytorch" and meta["annotations"]["name"]
    assert spec["description"].strip()
    assert spec["runtime"] == "python:3.11" and spec["handler"] == "main:handler"
    assert spec["eventTimeout"]
    assert spec["image"] == f"criobe-twin/{name}:latest"
    trigger = spec["triggers"]["myHttpTrigger"]
    assert trigger["kind"] == "http"
    assert trigger["attributes"] == {"maxRequestBodySize": 33554432}  # no port: Nuclio picks
    attrs = spec["platform"]["attributes"]
    assert attrs["network"] == "cvat_cvat"
    assert attrs["restartPolicy"] == {"name": "always", "maximumRetryCount": 3}
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env["CRIOBE_TWIN_FAULT"] == "" and float(env["CRIOBE_TWIN_DELAY_S"]) == 0


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("pth-yolo-gridcorners", "corner_annotation_example.json"),
        ("pth-yolo-gridpose", "grid_annotation_example.json"),
        ("pth-yolo-coralsegv4", "finegained_seg_example.json"),
    ],
)
def test_detector_spec_declares_the_criobe_labels(name, file):
    doc = yaml.safe_load((SERVERLESS / DIRS[name] / "function.yaml").read_text())
    assert doc["metadata"]["annotations"]["type"] == "detector"
    spec = json.loads(doc["metadata"]["annotations"]["spec"])
    exported = exported_labels(file)
    assert [(s["name"], s["type"]) for s in spec] == [(e["name"], e["type"]) for e in exported]
    for s, e in zip(spec, exported, strict=True):
        assert s["attributes"] == [CONFIDENCE]
        if e["type"] == "skeleton":
            assert [x["name"] for x in s["sublabels"]] == [x["name"] for x in e["sublabels"]]
            # CVAT's form, as in its hrnet32 function: element names, not exported label ids.
            assert "data-label-id" not in s["svg"] and "&quot;" not in s["svg"]
            names = [int(n) for n in re.findall(r'data-label-name="(\d+)"', s["svg"])]
            assert names == list(range(1, len(e["sublabels"]) + 1))


def test_lama_is_hidden_from_cvat_and_sam_is_cvats_interactor():
    lama = yaml.safe_load((SERVERLESS / DIRS["pth-lama"] / "function.yaml").read_text())
    # CVAT v2.29.0 lists only these kinds and skips any other function.
    assert lama["metadata"]["annotations"]["type"] not in {
        "detector",
        "interactor",
        "reid",
        "tracker",
    }
    assert "base64 PNG" in lama["spec"]["description"]
    sam = yaml.safe_load(
        (SERVERLESS / DIRS["pth-facebookresearch-sam-vit-h"] / "function.yaml").read_text()
    )
    annotations = sam["metadata"]["annotations"]
    assert annotations["type"] == "interactor" and annotations["version"] == 2


# --- gridcorners -----------------------------------------------------------------------------


def test_gridcorners_contract_and_accuracy(corners, truth, record_testsuite_property):
    shapes, elapsed = corners
    assert_skeleton(shapes, "quadrat_corner", 4)
    found = points(shapes[0])
    assert int(np.argmin(found.sum(axis=1))) == 0 and signed_area(found) > 0
    error = np.linalg.norm(found - np.array(truth.corners), axis=1)
    print(f"\ngridcorners: corner error px {error.round(2).tolist()}, {elapsed * 1000:.0f} ms")
    record_testsuite_property("corner_error_px", error.round(3).tolist())
    record_testsuite_property("gridcorners_s", round(elapsed, 3))
    assert error.max() <= 3


def test_json_body_as_bytes_gives_the_same_answer(fn, corners, truth):
    status, out, _ = fn["pth-yolo-gridcorners"].call({"image": b64(truth.photo_file)}, raw=True)
    assert status == 200 and out == corners[0]


def test_threshold_above_the_confidence_finds_nothing(fn, corners, truth):
    score = int(corners[0][0]["confidence"]) / 100
    body = {"image": b64(truth.photo_file), "threshold": min(score + 0.01, 1.0) + 0.001}
    assert fn["pth-yolo-gridcorners"].call(body)[:2] == (200, [])


def test_no_frame_no_corners(fn):
    buf = io.BytesIO()
    q.generate(seed=3, size=256).rectified_grid_free.crop((60, 60, 200, 200)).save(buf, "PNG")
    body = {"image": base64.b64encode(buf.getvalue()).decode()}
    assert fn["pth-yolo-gridcorners"].call(body)[:2] == (200, [])


def labels_of(s) -> list[str]:
    return [e["label"] for e in s["elements"]]


def drops_bottom_left(base, s):
    return labels_of(s) == ["1", "2", "3"] and np.allclose(points(s), base[:3])


def keeps_the_top_two(base, s):
    return labels_of(s) == ["1", "2"] and np.allclose(points(s), base[:2])


def runs_counter_clockwise(base, s):
    return np.allclose(points(s), base[[0, 3, 2, 1]]) and signed_area(points(s)) < 0


def moves_out_by_10px(base, s):
    centre = base.mean(axis=0)
    farther = np.linalg.norm(points(s) - centre, axis=1) - np.linalg.norm(base - centre, axis=1)
    return np.allclose(farther, 10, atol=0.05)


def moves_right_by_4px(base, s):
    return np.allclose(points(s) - base, [4, 0], atol=0.01)


def confidences_are_fractions(base, s):
    # What CVAT drops: str.isnumeric() is False for "0.97".
    values = [s["confidence"], *(e["confidence"] for e in s["elements"])]
    fractions = all(not v.isnumeric() and 0 < float(v) <= 1 for v in values)
    return fractions and s["attributes"][0]["value"] == s["confidence"]


def label_is_unknown(base, s):
    return s["label"] != "quadrat_corner" and np.allclose(points(s), base)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("three-corners", drops_bottom_left),
        ("two-corners", keeps_the_top_two),
        ("counter-clockwise", runs_counter_clockwise),
        ("offset-10px", moves_out_by_10px),
        ("moved-4px", moves_right_by_4px),
        ("confidence-fraction", confidences_are_fractions),
        ("unknown-label", label_is_unknown),
    ],
)
def test_gridcorners_faults(fn, corners, truth, monkeypatch, fault, check):
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", fault)
    status, out, _ = fn["pth-yolo-gridcorners"].call({"image": b64(truth.photo_file)})
    assert status == 200 and len(out) == 1
    assert out != corners[0]
    assert check(points(corners[0][0]), out[0])


# --- gridpose --------------------------------------------------------------------------------


def test_gridpose_contract_and_accuracy(grid, truth, record_testsuite_property):
    shapes, elapsed = grid
    assert_skeleton(shapes, "grid", 117)
    found = points(shapes[0])
    error = np.linalg.norm(found - np.array(truth.grid), axis=1)
    print(
        f"\ngridpose: mean error {error.mean():.3f} px, max {error.max():.3f} px, "
        f"{elapsed * 1000:.0f} ms"
    )
    record_testsuite_property("grid_mean_error_px", round(float(error.mean()), 4))
    record_testsuite_property("gridpose_s", round(elapsed, 3))
    assert error.mean() <= 3
    # Row-major: element 1..9 is the top row, left to right.
    assert np.all(np.diff(found[:9, 0]) > 0) and np.ptp(found[:9, 1]) < 5


def test_gridpose_faults(fn, grid, truth, monkeypatch):
    base = points(grid[0][0])
    cells = list(q.lattice_of_elements())
    body = {"image": b64(truth.rectified_file)}
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "116-points")
    status, out, _ = fn["pth-yolo-gridpose"].call(body)
    assert status == 200 and [e["label"] for e in out[0]["elements"]] == [
        str(i) for i in range(1, 117)
    ]
    assert np.allclose(points(out[0]), base[:116])

    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "column-major")
    status, out, _ = fn["pth-yolo-gridpose"].call(body)
    by_cell = dict(zip(cells, base, strict=True))
    column_major = sorted(cells, key=lambda rc: (rc[1], rc[0]))
    assert status == 200 and len(out[0]["elements"]) == 117
    assert np.allclose(points(out[0]), [by_cell[rc] for rc in column_major])
    assert not np.allclose(points(out[0]), base)

    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "unknown-label")
    status, out, _ = fn["pth-yolo-gridpose"].call(body)
    assert status == 200 and out[0]["label"] != "grid" and np.allclose(points(out[0]), base)


# --- lama ------------------------------------------------------------------------------------


def string_mask(truth, width=8) -> np.ndarray:
    """Where the strings are, from the ground truth alone (not from the function's code)."""
    w, h = truth.rectified_size
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cells = dict(zip(q.lattice_of_elements(), truth.grid, strict=True))
    mask = np.zeros((h, w), bool)
    for i in range(1, q.LATTICE - 1):
        mask |= np.abs(xx - cells[(0, i)][0]) < width / 2
        mask |= np.abs(yy - cells[(i, 0)][1]) < width / 2
    return mask


def test_lama_removes_the_strings_and_nothing_else(lama, truth, record_testsuite_property):
    out, elapsed = lama
    assert set(out) == {"image"}
    painted = np.asarray(decode_png(out["image"]), float)
    given = np.asarray(Image.open(SAMPLE / truth.rectified_file).convert("RGB"), float)
    clean = np.asarray(Image.open(SAMPLE / truth.grid_free_file).convert("RGB"), float)
    assert painted.shape == given.shape
    on = string_mask(truth, width=4)
    before = np.abs(given - clean)[on].mean()
    after = np.abs(painted - clean)[on].mean()
    print(f"\nlama: error on the strings {before:.1f} -> {after:.1f}, {elapsed * 1000:.0f} ms")
    record_testsuite_property(
        "lama_string_error", [round(float(before), 2), round(float(after), 2)]
    )
    record_testsuite_property("lama_s", round(elapsed, 3))
    assert after < 0.4 * before
    off = ~string_mask(truth, width=12)
    assert np.array_equal(painted[off], given[off])


def test_lama_faults(fn, lama, truth, monkeypatch):
    body = {"image": b64(truth.rectified_file), "keypoints": [list(p) for p in truth.grid]}
    given = Image.open(SAMPLE / truth.rectified_file).convert("RGB")
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "wrong-size")
    status, out, _ = fn["pth-lama"].call(body)
    assert status == 200
    assert decode_png(out["image"]).size == (given.width // 2, given.height // 2)
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "identity")
    status, out, _ = fn["pth-lama"].call(body)
    assert status == 200 and out != lama[0]
    assert np.array_equal(np.asarray(decode_png(out["image"])), np.asarray(given))


def test_lama_refuses_a_grid_without_117_points(fn, truth):
    body = {"image": b64(truth.rectified_file), "keypoints": [list(p) for p in truth.grid[:116]]}
    status, out, _ = fn["pth-lama"].call(body)
    assert status == 500 and "117" in out


# --- coralsegv4 ------------------------------------------------------------------------------


def assert_coral_shapes(shapes, kind):
    assert isinstance(shapes, list) and shapes
    for s in shapes:
        assert s["label"] in q.GENERA and s["type"] == kind
        assert is_percent(s["confidence"])
        assert s["attributes"] == [{"name": "confidence", "value": s["confidence"]}]
        assert len(s["points"]) >= 6 and len(s["points"]) % 2 == 0
        if kind == "mask":
            mask, (xtl, ytl, xbr, ybr) = cvat_mask(s)
            # The mask and the outline describe the same colony.
            yy, xx = np.nonzero(mask)
            assert (xx.min(), yy.min(), xx.max(), yy.max()) == (0, 0, xbr - xtl, ybr - ytl)
            from_mask = mask.sum()
            assert abs(outline(s).area - from_mask) / from_mask < 0.05


def test_coralseg_contract_and_accuracy(corals, truth, record_testsuite_property):
    shapes, elapsed = corals
    assert_coral_shapes(shapes, "mask")
    assert len(shapes) == len(truth.corals)
    pairs = match_corals(shapes, truth.corals)
    per_genus: dict[str, list[float]] = {}
    for genus, label, iou in pairs:
        per_genus.setdefault(genus, []).append(round(iou, 3))
        assert label == genus
    print(f"\ncoralsegv4: IoU by genus {per_genus}, {elapsed * 1000:.0f} ms")
    record_testsuite_property("coral_iou_by_genus", per_genus)
    record_testsuite_property("coralseg_s", round(elapsed, 3))
    assert min(iou for _, _, iou in pairs) >= 0.8


def test_pipeline_grid_lama_coralseg_on_detected_points(fn, grid, truth, record_testsuite_property):
    """The 3-stage chain on the warped image: the grid function's own points feed LaMa,
    LaMa's image feeds the segmenter."""
    keypoints = points(grid[0][0]).tolist()
    status, out, _ = fn["pth-lama"].call(
        {"image": b64(truth.rectified_file), "keypoints": keypoints}
    )
    assert status == 200
    status, shapes, _ = fn["pth-yolo-coralsegv4"].call({"image": out["image"]})
    assert status == 200 and len(shapes) == len(truth.corals)
    pairs = match_corals(shapes, truth.corals)
    record_testsuite_property("pipeline_coral_iou", [round(iou, 3) for *_, iou in pairs])
    assert all(label == genus for genus, label, _ in pairs)
    assert min(iou for _, _, iou in pairs) >= 0.8


def test_coralseg_polygons_on_request(fn, corals, truth, monkeypatch):
    monkeypatch.setenv("CORALSEG_OUTPUT", "polygon")
    status, out, _ = fn["pth-yolo-coralsegv4"].call({"image": b64(truth.grid_free_file)})
    assert status == 200
    assert_coral_shapes(out, "polygon")
    assert all("mask" not in s for s in out)
    assert [s["points"] for s in out] == [s["points"] for s in corals[0]]


def test_coralseg_faults(fn, corals, truth, monkeypatch):
    body = {"image": b64(truth.grid_free_file)}
    base = corals[0]
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "unknown-label")
    status, out, _ = fn["pth-yolo-coralsegv4"].call(body)
    assert status == 200 and len(out) == len(base)
    assert not {s["label"] for s in out} & set(q.GENERA)

    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "drift")
    monkeypatch.setenv("CRIOBE_TWIN_DRIFT_PX", "8")
    status, out, _ = fn["pth-yolo-coralsegv4"].call(body)
    assert status == 200 and [s["label"] for s in out] == [s["label"] for s in base]
    for moved, still in zip(out, base, strict=True):
        a, b = outline(moved).centroid, outline(still).centroid
        assert (a.x - b.x, a.y - b.y) == pytest.approx((8, 8), abs=0.5)
        (ma, ba), (mb, bb) = cvat_mask(moved), cvat_mask(still)
        assert np.array_equal(ma, mb) and np.subtract(ba, bb).tolist() == [8, 8, 8, 8]
    drifted = min(iou for *_, iou in match_corals(out, truth.corals))
    assert drifted < min(iou for *_, iou in match_corals(base, truth.corals))


# --- SAM -------------------------------------------------------------------------------------


def test_sam_answers_cvats_embedding(fn, truth, record_testsuite_property):
    clicks = {"pos_points": [[500, 500]], "neg_points": [], "obj_bbox": None}
    status, out, elapsed = fn["pth-facebookresearch-sam-vit-h"].call(
        {"image": b64(truth.grid_free_file), **clicks}
    )
    assert status == 200 and set(out) == {"blob"}
    blob = np.frombuffer(base64.b64decode(out["blob"]), np.float32)
    assert blob.size == 1 * 256 * 64 * 64 and np.isfinite(blob).all()
    record_testsuite_property("sam_s", round(elapsed, 3))
    assert elapsed < MAX_CALL_S
    # The features come from the picture: another picture, another embedding.
    _, other, _ = fn["pth-facebookresearch-sam-vit-h"].call(
        {"image": b64(truth.photo_file), **clicks}
    )
    assert other["blob"] != out["blob"]


def test_sam_mask_mode_segments_the_clicked_colony(fn, truth, monkeypatch):
    monkeypatch.setenv("SAM_TWIN_RESPONSE", "mask")
    coral = truth.corals[0]
    inside = Polygon(coral.polygon).representative_point()
    body = {
        "image": b64(truth.grid_free_file),
        "pos_points": [[inside.x, inside.y]],
        "neg_points": [],
        "obj_bbox": None,
    }
    status, out, elapsed = fn["pth-facebookresearch-sam-vit-h"].call(body)
    assert status == 200 and set(out) == {"points", "mask"}
    mask = np.array(out["mask"], np.uint8)
    assert mask.shape == (truth.rectified_size[1], truth.rectified_size[0])
    found = Polygon(out["points"]).buffer(0)
    gt = Polygon(coral.polygon)
    assert gt.intersection(found).area / gt.union(found).area >= 0.8
    assert elapsed < MAX_CALL_S


def test_sam_short_blob_fault(fn, truth, monkeypatch):
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "short-blob")
    body = {"image": b64(truth.grid_free_file), "pos_points": [], "neg_points": []}
    status, out, _ = fn["pth-facebookresearch-sam-vit-h"].call(body)
    assert status == 200
    assert len(base64.b64decode(out["blob"])) == 256 * 32 * 32 * 4


# --- knobs shared by every function ----------------------------------------------------------


def bodies(truth) -> dict[str, dict]:
    return {
        "pth-yolo-gridcorners": {"image": b64(truth.photo_file)},
        "pth-yolo-gridpose": {"image": b64(truth.rectified_file)},
        "pth-lama": {
            "image": b64(truth.rectified_file),
            "keypoints": [list(p) for p in truth.grid],
        },
        "pth-yolo-coralsegv4": {"image": b64(truth.grid_free_file)},
        "pth-facebookresearch-sam-vit-h": {
            "image": b64(truth.grid_free_file),
            "pos_points": [],
            "neg_points": [],
        },
    }


@pytest.mark.parametrize("name", list(DIRS))
def test_error_500_fault(fn, truth, monkeypatch, name):
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "error-500")
    status, out, _ = fn[name].call(bodies(truth)[name])
    assert status == 500 and "error-500" in out


@pytest.mark.parametrize("name", list(DIRS))
def test_unknown_fault_name_stops_the_function(fn, monkeypatch, name):
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "no-such-fault")
    with pytest.raises(ValueError, match="no-such-fault"):
        fn[name].context()


@pytest.mark.parametrize("name", ["pth-yolo-gridcorners", "pth-lama"])
def test_delay_knob_delays_the_same_answer(fn, truth, monkeypatch, name):
    body = bodies(truth)[name]
    _, quick, fast = fn[name].call(body)
    # 1 s, several times an undelayed call (0.1-0.3 s): on a loaded 2-core machine an
    # undelayed call can outlast a short delay, and "slower than the last call" was a race.
    monkeypatch.setenv("CRIOBE_TWIN_DELAY_S", "1.0")
    status, slow_out, slow = fn[name].call(body)
    assert status == 200 and slow_out == quick
    assert slow >= 1.0, f"answered in {slow:.2f} s with a 1 s delay (undelayed: {fast:.2f} s)"
