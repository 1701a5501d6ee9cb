"""The bridge twin (twin/bridge/) in-process: its app over httpx's ASGI transport, a fake CVAT
with CVAT 2.29.0's job/task status rules and webhook events, and the twin's reference
functions called as Nuclio calls them (selftests/bridge_fakes.py), on the committed sample
quadrat. No Docker.

    pytest selftests/test_bridge_twin.py -q

What is checked: every endpoint and its answers (pings, signatures with and without
BRIDGE_TWIN_REFUSE_UNSIGNED, bad bodies, unknown target projects), acting only on real state
changes (detection once per change to "in progress", crop once per completion, the stale
``jobs`` counts of update:task ignored), the warp placing the 4 corners at the square's
corners, grid removal through pth-lama, the whole three-stage chain, detection through CVAT's
lambda requests bounded by AUTO_ANN_TIMEOUT, the knobs, and no secret in the log.
"""

from __future__ import annotations

import base64
import doctest
import importlib
import io
import json
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from criobe_verify import quadrat as q
from criobe_verify.labels import project_labels
from selftests import PROJECT_ROOT
from selftests.bridge_fakes import ADMIN, RECORDED, BridgeStack

BRIDGE_DIR = PROJECT_ROOT / "twin" / "bridge"
if str(BRIDGE_DIR) not in sys.path:
    sys.path.insert(0, str(BRIDGE_DIR))

SAMPLE = PROJECT_ROOT / "fixtures" / "data" / "sample-quadrat"
NAME = "Synthetic_2024_07"
DETECT_CORNERS = "/detect-model-webhook?model_name=pth-yolo-gridcorners"
DETECT_GRID = "/detect-model-webhook?model_name=pth-yolo-gridpose"
DETECT_CORALS = "/detect-model-webhook?model_name=pth-yolo-coralsegv4&conv_mask_to_poly=true"
CROP = "/crop-quadrat-and-create-new-task-webhook?target_proj_id={}"
GRID = "/remove-grid-and-create-new-task-webhook?target_proj_id={}"
ENDPOINTS = (
    DETECT_CORNERS,
    CROP.format(1),
    GRID.format(1),
    "/test-webhook",
    "/test-webhook?target_proj_id=1&debug=true",
    "/health",
)
FAST_S = 3.0  # CVAT gives a delivery 10 s; the bridge answers before doing any work
KNOBS = ("CRIOBE_TWIN_FAULT", "CRIOBE_TWIN_DELAY_S", "CORALSEG_OUTPUT")


@pytest.fixture(autouse=True)
def _functions_without_knobs(monkeypatch):
    for knob in KNOBS:
        monkeypatch.delenv(knob, raising=False)


@pytest.fixture(scope="module")
def truth() -> q.GroundTruth:
    return q.load_ground_truth(SAMPLE)


@pytest.fixture(scope="module")
def photo(truth) -> bytes:
    return (SAMPLE / truth.photo_file).read_bytes()


@pytest.fixture(scope="module")
def rectified(truth) -> bytes:
    return (SAMPLE / truth.rectified_file).read_bytes()


def recorded_delivery(prefix: str) -> dict:
    path = next(RECORDED.glob(f"{prefix}_*.json"))
    return json.loads(path.read_text())["request"]


def stack_with_projects(tmp_path, env=None, **kwargs):
    """A BridgeStack whose CVAT has the three CRIOBE projects wired as the 3-stage guide
    does (corners -> grid -> corals); (stack, {kind: project id}, {kind: {hook: id}})."""
    stack = BridgeStack(tmp_path, env, **kwargs).__enter__()
    c = stack.cvat
    pid = {
        kind: c.add_project(kind, project_labels(kind)) for kind in ("corners", "grid", "corals")
    }
    hooks = {
        "corners": {
            "detect": c.add_webhook(pid["corners"], DETECT_CORNERS, ["update:job"]),
            "crop": c.add_webhook(pid["corners"], CROP.format(pid["grid"])),
        },
        "grid": {
            "detect": c.add_webhook(pid["grid"], DETECT_GRID, ["update:job"]),
            "remove": c.add_webhook(pid["grid"], GRID.format(pid["corals"])),
        },
        "corals": {"detect": c.add_webhook(pid["corals"], DETECT_CORALS, ["update:job"])},
    }
    return stack, pid, hooks


@pytest.fixture
def wired(tmp_path):
    stack, pid, hooks = stack_with_projects(tmp_path)
    yield stack, pid, hooks
    stack.__exit__(None, None, None)


def skeleton(stack, pid: int, label: str, points, frame: int = 0) -> dict:
    """A manual skeleton shape of ``label`` with elements "1".."n" at ``points``."""
    labels = stack.cvat.project_labels(pid)
    subs = {stack.cvat.labels[s]["name"]: s for s in labels[label]["sublabels"]}
    return {
        "type": "skeleton",
        "frame": frame,
        "label_id": labels[label]["id"],
        "points": [],
        "source": "manual",
        "attributes": [],
        "elements": [
            {"type": "points", "frame": frame, "label_id": subs[str(k)], "points": list(p),
             "outside": p is None, "source": "manual", "attributes": []}
            for k, p in enumerate(points, start=1)
            if p is not None
        ],
    }  # fmt: skip


def annotate(stack, job: int, shapes: list[dict]) -> None:
    """PUT /api/jobs/<id>/annotations, as the UI saves (events included)."""
    auth = {"Authorization": f"Token {stack.cvat.token}"}
    body = json.dumps({"shapes": shapes}).encode()
    code, out, _, _ = stack.cvat.route("PUT", f"/api/jobs/{job}/annotations", {}, auth, body)
    assert code == 200, out


def frame_image(stack, task: dict, n: int = 0) -> Image.Image:
    return Image.open(io.BytesIO(task["frames"][n]["content"])).convert("RGB")


def log_of(stack) -> str:
    return stack.log.getvalue()


# --- the fake CVAT is CVAT's recordings ------------------------------------------------------


def _recorded_sequence() -> list[tuple[str, dict, list[dict]]]:
    """The recorded job PATCHes (files 50-74) with the deliveries each one caused."""
    steps: list[tuple[str, dict, list[dict]]] = []
    for path in sorted(RECORDED.glob("[5-7][0-9]_*.json")):
        exchange = json.loads(path.read_text())
        request = exchange["request"]
        if "body_raw" in request and steps:
            steps[-1][2].append(request["json"])
        elif request.get("method") == "PATCH" and request["path"].startswith("/api/jobs/"):
            steps.append((request["path"], request["json"], []))
    return steps


def _essence(delivery: dict) -> tuple:
    resource = "job" if "job" in delivery else "task"
    obj = delivery[resource]
    return (
        delivery["event"],
        list(delivery),
        list(obj),
        list(delivery.get("before_update", {})),
        obj.get("status"),
        obj.get("stage"),
        obj.get("state"),
        {k: v for k, v in (obj.get("jobs") or {}).items() if k != "url"},
    )


def test_the_fake_cvat_sends_the_recorded_events_for_the_recorded_patches(tmp_path):
    """The fake behind these tests must be CVAT, not a lenient stand-in: the job PATCHes of
    recordings 50-74 give the recorded deliveries, in order, with the same changed fields,
    statuses, stale task jobs counts and keys."""
    steps = _recorded_sequence()
    assert len(steps) == 6
    with BridgeStack(tmp_path) as stack:
        c = stack.cvat
        pid = c.add_project("completion", project_labels("corners"))
        c.add_webhook(pid, "/test-webhook")
        jobs = {}
        for recorded_job in (7, 8):  # tasks A and B, one JPEG each
            _, jobs[recorded_job] = c.add_task(pid, f"task {recorded_job}", [("a.jpg", jpeg())])
        c.take_outbox()
        for path, body, recorded in steps:
            c.patch_job(jobs[int(path.rsplit("/", 1)[1])], body)
            got = [payload for _, payload in c.take_outbox()]
            assert [_essence(d) for d in got] == [_essence(d) for d in recorded], (path, body)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 150)).save(out, "JPEG")
    return out.getvalue()


# --- endpoints -----------------------------------------------------------------------------


# FastAPI 0.92 names both methods of the one /health route alike in the schema; harmless.
@pytest.mark.filterwarnings("ignore:Duplicate Operation ID:UserWarning")
def test_health_docs_and_openapi_list_the_documented_endpoints(tmp_path):
    with BridgeStack(tmp_path) as stack:
        assert stack.request("GET", "/health")[:2] == (200, {"status": "healthy"})
        assert stack.request("POST", "/health")[:2] == (200, {"status": "healthy"})
        code, page, _ = stack.request("GET", "/docs")
        assert code == 200 and "swagger" in page.lower()
        code, spec, _ = stack.request("GET", "/openapi.json")
        assert code == 200
        params = {
            path: {p["name"]: p.get("required", False) for p in op["post"].get("parameters", [])}
            for path, op in spec["paths"].items()
            if "post" in op and path != "/health"
        }
    assert params == {
        "/crop-quadrat-and-create-new-task-webhook": {"target_proj_id": True},
        "/remove-grid-and-create-new-task-webhook": {"target_proj_id": True},
        "/detect-model-webhook": {"model_name": True, "conv_mask_to_poly": False},
        "/test-webhook": {"target_proj_id": False, "debug": False},
    }


@pytest.mark.parametrize("methods, post", [("GET", 405), ("GET,POST", 200)])
def test_health_methods_knob(tmp_path, methods, post):
    with BridgeStack(tmp_path, {"BRIDGE_TWIN_HEALTH_METHODS": methods}) as stack:
        assert stack.request("GET", "/health")[0] == 200
        code, body, _ = stack.request("POST", "/health")
    assert code == post
    if post == 405:
        assert body == {"detail": "Method Not Allowed"}


def test_a_ping_gets_200_on_every_endpoint_at_once_and_does_nothing(tmp_path):
    ping = recorded_delivery("27")["json"]  # a real CVAT ping: no job, no task
    with BridgeStack(tmp_path) as stack:
        stack.cvat.add_project("corners", project_labels("corners"))
        answers = {path: stack.post(path, ping) for path in ENDPOINTS}
        assert not stack.worker.busy()
        calls, nuclio = list(stack.cvat.calls), list(stack.nuclio.calls)
    for path, (code, body, seconds) in answers.items():
        assert code == 200, (path, body)
        assert seconds < FAST_S, (path, seconds)
        if path.startswith("/test-webhook"):
            assert body["status"] == "received" and body["event"] == "ping"
        elif path != "/health":
            assert body == {"status": "ok", "event": "ping"}, path
    assert calls == [] and nuclio == [], "a ping must not touch CVAT or a function"


@pytest.mark.parametrize("checks", [False, True])
def test_ping_to_an_unknown_target_follows_the_knob(tmp_path, checks):
    env = {"BRIDGE_TWIN_PING_CHECKS_TARGET": str(checks).lower()}
    with BridgeStack(tmp_path, env) as stack:
        known = stack.cvat.add_project("grid", project_labels("grid"))
        unknown = stack.post(CROP.format(999), {"event": "ping"})
        good = stack.post(CROP.format(known), {"event": "ping"})
    assert good[:2] == (200, {"status": "ok", "event": "ping"})
    if checks:
        assert unknown[0] == 404 and "999" in unknown[1]["detail"]
    else:
        assert unknown[:2] == (200, {"status": "ok", "event": "ping"})


@pytest.mark.parametrize("refuse", [True, False])
def test_signatures_are_checked_against_the_raw_body(tmp_path, refuse):
    """CVAT's own signed bytes (recorded, secret "lab-webhook-secret") verify; a wrong one is
    refused always, a missing one when BRIDGE_TWIN_REFUSE_UNSIGNED."""
    delivery = recorded_delivery("27")
    raw = delivery["body_raw"].encode()
    signature = dict(delivery["headers"])["X-Signature-256"]
    env = {"WEBHOOK_SECRET": "lab-webhook-secret",
           "BRIDGE_TWIN_REFUSE_UNSIGNED": str(refuse).lower()}  # fmt: skip
    with BridgeStack(tmp_path, env) as stack:

        def send(headers):
            return stack.request(
                "POST",
                DETECT_CORNERS,
                body=raw,
                headers={"Content-Type": "application/json", **headers},
            )

        good = send({"X-Signature-256": signature})
        tampered = stack.request("POST", DETECT_CORNERS, body=raw.replace(b"lab receiver", b"lab receivex"),
                                 headers={"X-Signature-256": signature})  # fmt: skip
        bare_hex = send({"X-Signature-256": signature.removeprefix("sha256=")})
        wrong_secret = stack.post(DETECT_CORNERS, delivery["json"], secret="another-secret")
        missing = send({})
    assert good[:2] == (200, {"status": "ok", "event": "ping"})
    for code, body, _ in (tampered, bare_hex, wrong_secret):
        assert code == 403 and "X-Signature-256" in body["detail"]
    if refuse:
        assert missing[0] == 403 and missing[1] == {"detail": "X-Signature-256 missing"}
    else:
        assert missing[:2] == (200, {"status": "ok", "event": "ping"})


def test_unsigned_deliveries_pass_without_a_secret(tmp_path):
    with BridgeStack(tmp_path, {"WEBHOOK_SECRET": ""}) as stack:
        assert stack.post(DETECT_CORNERS, {"event": "ping"})[0] == 200
        signed = stack.post(DETECT_CORNERS, {"event": "ping"}, secret="whatever")
    assert signed[0] == 200  # nothing to check it against


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_is_400(tmp_path, body):
    with BridgeStack(tmp_path) as stack:
        code, out, _ = stack.request("POST", DETECT_CORNERS, body=body)
    assert code == 400 and out == {"detail": "the body is not a JSON object"}


@pytest.mark.parametrize("name", ["Pth-Yolo", "../x", "a b", "nuclio:8070/x"])
def test_model_name_must_be_a_function_name(tmp_path, name):
    with BridgeStack(tmp_path) as stack:
        code, out, _ = stack.post(f"/detect-model-webhook?model_name={name}", {"event": "ping"})
    assert code == 400 and "model_name" in out["detail"]


def test_missing_query_parameters_are_fastapis_422(tmp_path):
    with BridgeStack(tmp_path) as stack:
        crop = stack.post("/crop-quadrat-and-create-new-task-webhook", {"event": "ping"})
        detect = stack.post("/detect-model-webhook", {"event": "ping"})
    assert crop[0] == detect[0] == 422


# --- detection ----------------------------------------------------------------------------


def test_detection_runs_once_per_change_to_in_progress(wired, photo, truth):
    stack, pid, hooks = wired
    c = stack.cvat
    _task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
    stack.settle()  # create:task / create:job are not subscribed
    c.patch_job(job, {"state": "in progress"})  # as the UI does on the first save
    stack.settle()
    assert stack.nuclio.called("pth-yolo-gridcorners") == 1
    shapes = c.job_shapes(job)
    assert len(shapes) == 1 and shapes[0]["type"] == "skeleton" and shapes[0]["source"] == "auto"
    labels = c.project_labels(pid["corners"])
    corner = labels["quadrat_corner"]
    assert shapes[0]["label_id"] == corner["id"]
    (confidence,) = shapes[0]["attributes"]
    assert confidence["spec_id"] == corner["attributes"][0]["id"] and confidence["value"].isdigit()
    by_name = {c.labels[e["label_id"]]["name"]: e["points"] for e in shapes[0]["elements"]}
    for k, expected in enumerate(truth.corners, start=1):
        assert np.hypot(*np.subtract(by_name[str(k)], expected)) < 3, k
    assert {"type": "frame", "number": "0", "quality": "original"}.items() <= c.frame_queries[
        0
    ].items()

    detect = stack.deliveries(hooks["corners"]["detect"])
    assert [d["response"]["status"] for d in detect] == ["accepted", "ignored"]
    # The detection's own save re-sent the job with only updated_date changed.
    assert list(detect[1]["payload"]["before_update"]) == ["updated_date"]
    assert all(d["status_code"] == 200 and d["seconds"] < FAST_S for d in detect)

    # Saving again, re-PATCHing the same state, or a redelivery of a save: nothing new.
    annotate(stack, job, [])
    c.patch_job(job, {"state": "in progress"})
    stack.settle()
    code, body, _ = stack.post(DETECT_CORNERS, detect[1]["payload"])
    assert (code, body["status"]) == (200, "ignored")
    assert "state unchanged" in body["reason"]
    assert stack.nuclio.called("pth-yolo-gridcorners") == 1

    # A real change again (reopened job) is detected again.
    c.patch_job(job, {"state": "completed"})
    c.patch_job(job, {"state": "in progress"})
    stack.settle()
    assert stack.nuclio.called("pth-yolo-gridcorners") == 2


def test_the_webhook_is_answered_before_the_work_is_done(wired, photo):
    stack, pid, _ = wired
    stack.nuclio.gate.clear()  # the function answers only once the gate opens
    _task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
    after = stack.cvat.patch_job(job, {"state": "in progress"})
    payload = {"event": "update:job", "job": after, "before_update": {"state": "new"}}
    code, body, seconds = stack.post(DETECT_CORNERS, payload)
    assert (code, body["status"], body["job_id"]) == (200, "accepted", job)
    assert seconds < FAST_S and stack.worker.busy()
    # The same change again while it runs is not queued twice.
    code, again, _ = stack.post(DETECT_CORNERS, payload)
    assert again["status"] == "ignored" and "already queued or running" in again["reason"]
    assert stack.cvat.job_shapes(job) == []
    stack.nuclio.gate.set()
    assert stack.worker.wait_idle(30)
    assert len(stack.cvat.job_shapes(job)) == 1
    assert stack.nuclio.called("pth-yolo-gridcorners") == 1


@pytest.mark.parametrize(
    "env, source, warped_name, clean_name",
    [({}, "auto", f"{NAME}_warped", f"{NAME}_warped_clean"),
     ({"BRIDGE_TWIN_SHAPE_SOURCE": "manual", "BRIDGE_TWIN_WARPED_TASK_NAME": "warped-{name}",
       "BRIDGE_TWIN_CLEAN_TASK_NAME": "{name} (clean)"}, "manual", f"warped-{NAME}",
      f"warped-{NAME} (clean)")],
)  # fmt: skip
def test_the_three_stage_chain(tmp_path, photo, truth, env, source, warped_name, clean_name):
    """corners detected -> task completed -> warped task in the grid project, its job in
    progress, grid detected -> completed -> pth-lama -> clean task in the corals project,
    corals detected as polygons (conv_mask_to_poly=true); every delivery 200 and fast."""
    stack, pid, hooks = stack_with_projects(tmp_path, env)
    try:
        c = stack.cvat
        task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        c.patch_job(job, {"state": "in progress"})
        stack.settle()
        c.complete_task(task)
        stack.settle()
        (warped,) = c.tasks_in(pid["grid"])
        assert warped["name"] == warped_name
        (warped_job,) = c.jobs_of(warped["id"])
        assert warped_job["state"] == "in progress"
        (grid,) = c.job_shapes(warped_job["id"])
        assert grid["source"] == source and len(grid["elements"]) == 117
        assert not any(e["outside"] for e in grid["elements"])
        c.complete_task(warped["id"])
        stack.settle()
        (clean,) = c.tasks_in(pid["corals"])
        assert clean["name"] == clean_name
        (clean_job,) = c.jobs_of(clean["id"])
        corals = c.job_shapes(clean_job["id"])
        labels = {lab["id"]: name for name, lab in c.project_labels(pid["corals"]).items()}
        assert len(corals) >= len(truth.corals) - 1
        assert {s["type"] for s in corals} == {"polygon"}
        assert {labels[s["label_id"]] for s in corals} <= set(q.GENERA)
        assert {s["source"] for s in corals} == {source}
        assert stack.nuclio.called("pth-lama") == 1
        for kind in hooks.values():
            for hook in kind.values():
                for d in stack.deliveries(hook):
                    assert d["status_code"] == 200 and d["seconds"] < FAST_S, d["response"]
    finally:
        stack.__exit__(None, None, None)


# --- crop / warp --------------------------------------------------------------------------


def test_crop_acts_once_per_completion_on_task_status_not_the_stale_counts(
    wired, photo, truth, rectified
):
    stack, pid, hooks = wired
    c = stack.cvat
    _task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
    annotate(stack, job, [skeleton(stack, pid["corners"], "quadrat_corner", truth.corners)])
    stack.settle()
    c.patch_job(job, {"stage": "acceptance", "state": "completed"})
    stack.settle()
    crop = stack.deliveries(hooks["corners"]["crop"])
    accepted = [d for d in crop if d["response"].get("status") == "accepted"]
    assert len(accepted) == 1
    event = accepted[0]["payload"]
    assert event["event"] == "update:task" and event["task"]["status"] == "completed"
    assert event["task"]["jobs"]["count"] == 0 and event["task"]["jobs"]["completed"] is None
    (warped,) = c.tasks_in(pid["grid"])
    assert warped["name"] == f"{NAME}_warped"
    (frame,) = warped["frames"]
    assert (frame["width"], frame["height"]) == truth.rectified_size  # the photo's size
    # The warp of the photo on its true corners is the sample's rectified image.
    got = np.asarray(frame_image(stack, warped), float)
    want = np.asarray(Image.open(io.BytesIO(rectified)).convert("RGB"), float)
    assert np.abs(got - want).mean() < 4.0

    # Completing again (nothing changes: update:job only) or a task save that is not a
    # status change, even with the real counts in it, creates nothing more.
    c.patch_job(job, {"stage": "acceptance", "state": "completed"})
    stack.settle()
    resaved = {**event, "before_update": {"updated_date": event["task"]["updated_date"]}}
    resaved["task"] = {**event["task"], "jobs": {"count": 1, "completed": 1, "validation": 0}}
    code, body, _ = stack.post(CROP.format(pid["grid"]), resaved)
    assert (code, body["status"]) == (200, "ignored") and "status unchanged" in body["reason"]
    stack.settle()
    assert len(c.tasks_in(pid["grid"])) == 1


def test_a_job_completed_in_annotation_stage_does_not_complete_the_task(wired, photo, truth):
    stack, pid, hooks = wired
    c = stack.cvat
    _task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
    annotate(stack, job, [skeleton(stack, pid["corners"], "quadrat_corner", truth.corners)])
    c.patch_job(job, {"state": "completed"})  # stage still annotation: task stays annotation
    stack.settle()
    assert c.tasks_in(pid["grid"]) == []
    assert {d["response"]["status"] for d in stack.deliveries(hooks["corners"]["crop"])} == {
        "ignored"
    }


def test_warp_puts_the_four_corners_at_the_squares_corners(truth, photo):
    from criobe_bridge import warp

    image = Image.open(io.BytesIO(photo))
    square = warp.rectify(image, truth.corners)
    s = square.width
    assert square.size == (s, s) == (image.width, image.width)
    back = warp.homography([(0, 0), (s, 0), (s, s), (0, s)], truth.corners)
    for corner, expected in zip([(0, 0), (s, 0), (s, s), (0, s)], truth.corners, strict=True):
        assert np.allclose(warp.apply(back, corner), expected, atol=1e-6)
    # Same pixels as the suite's own rectification (Pillow, pixel-centre convention).
    reference = q.rectify(image.convert("RGB"), truth.corners, (s, s))
    assert np.array_equal(np.asarray(square), np.asarray(reference))
    # And the frame's corners are where the square's corners are: the white frame tube runs
    # along every side of the square.
    gray = np.asarray(square.convert("L"), float)
    border = max(4, s // 100)
    edges = [
        gray[:border].mean(),
        gray[-border:].mean(),
        gray[:, :border].mean(),
        gray[:, -border:].mean(),
    ]
    inside = gray[s // 4 : 3 * s // 4, s // 4 : 3 * s // 4].mean()
    assert min(edges) > inside + 30, (edges, inside)


@pytest.mark.parametrize("size, expected", [("quadrat", None), ("512", 512)])
def test_warp_size_knob(tmp_path, photo, truth, size, expected):
    stack, pid, _ = stack_with_projects(tmp_path, {"BRIDGE_TWIN_WARP_SIZE": size})
    try:
        task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        annotate(stack, job, [skeleton(stack, pid["corners"], "quadrat_corner", truth.corners)])
        stack.cvat.complete_task(task)
        stack.settle()
        (warped,) = stack.cvat.tasks_in(pid["grid"])
    finally:
        stack.__exit__(None, None, None)
    sides = [np.hypot(*np.subtract(truth.corners[i], truth.corners[(i + 1) % 4])) for i in range(4)]
    side = expected or round(max(sides))
    assert (warped["frames"][0]["width"], warped["frames"][0]["height"]) == (side, side)


def test_fewer_than_four_corners_fail_clearly_and_create_nothing(wired, photo, truth):
    stack, pid, _ = wired
    c = stack.cvat
    task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
    three = [*truth.corners[:3], None]
    annotate(stack, job, [skeleton(stack, pid["corners"], "quadrat_corner", three)])
    c.complete_task(task)
    stack.settle()
    assert c.tasks_in(pid["grid"]) == []
    log = log_of(stack)
    assert "Insufficient annotations (need 4 corner points minimum)" in log
    assert f"task {task} frame 0 has 3" in log


def test_an_unknown_target_project_is_404_and_nothing_is_created(tmp_path, photo, truth):
    with BridgeStack(tmp_path) as stack:
        c = stack.cvat
        corners = c.add_project("corners", project_labels("corners"))
        hook = c.add_webhook(corners, CROP.format(999))
        task, job = c.add_task(corners, NAME, [(f"{NAME}.jpg", photo)])
        annotate(stack, job, [skeleton(stack, corners, "quadrat_corner", truth.corners)])
        stack.settle()
        before = set(c.tasks)
        c.complete_task(task)
        stack.settle()
        deliveries = stack.deliveries(hook)
        assert set(c.tasks) == before
        assert not [w for w in c.writes() if w[1].startswith("/api/tasks") and w[0] == "POST"]
        assert not stack.worker.busy()
    completion = [d for d in deliveries if d["event"] == "update:task"][-1]
    assert completion["status_code"] == 404
    assert completion["response"] == {
        "detail": "target project 999 not found",
        "target_proj_id": 999,
    }
    assert all(
        d["status_code"] == 404 for d in deliveries
    )  # every event shows the misconfiguration


def test_cvat_unreachable_for_the_target_check_is_502(tmp_path):
    with BridgeStack(tmp_path, {"CVAT_URL": "http://127.0.0.1:9"}) as stack:
        code, body, seconds = stack.post(
            CROP.format(3), {"event": "update:task", "task": {"id": 1, "status": "completed"},
                             "before_update": {"status": "annotation"}}
        )  # fmt: skip
    assert code == 502 and "target project 3" in body["detail"] and seconds < 8


# --- grid removal -------------------------------------------------------------------------


def test_grid_removal_sends_the_117_points_to_lama_and_uploads_its_image(wired, rectified, truth):
    stack, pid, _ = wired
    c = stack.cvat
    task, job = c.add_task(pid["grid"], f"{NAME}_warped", [(f"{NAME}.jpg", rectified)])
    annotate(stack, job, [skeleton(stack, pid["grid"], "grid", truth.grid)])
    c.complete_task(task)
    stack.settle()
    ((_name, request),) = [call for call in stack.nuclio.calls if call[0] == "pth-lama"]
    assert np.allclose(request["keypoints"], truth.grid)
    (clean,) = c.tasks_in(pid["corals"])
    assert clean["name"] == f"{NAME}_warped_clean"
    (frame,) = clean["frames"]
    assert frame["name"] == f"{NAME}.png" and frame["mime"] == "image/png"
    expected = stack.nuclio.invoke("pth-lama", request)["image"]
    assert frame["content"] == base64.b64decode(expected)
    (clean_job,) = c.jobs_of(clean["id"])
    assert clean_job["state"] == "in progress"
    # The strings are gone: closer to the sample's grid-free image than the input was.
    grid_free = np.asarray(Image.open(SAMPLE / truth.grid_free_file).convert("RGB"), float)
    before = np.abs(np.asarray(Image.open(io.BytesIO(rectified)).convert("RGB"), float) - grid_free)
    after = np.abs(np.asarray(frame_image(stack, clean), float) - grid_free)
    assert after.mean() < 0.8 * before.mean()


def test_grid_removal_needs_all_117_points(wired, rectified, truth):
    stack, pid, _ = wired
    c = stack.cvat
    task, job = c.add_task(pid["grid"], f"{NAME}_warped", [(f"{NAME}.jpg", rectified)])
    annotate(stack, job, [skeleton(stack, pid["grid"], "grid", [*truth.grid[:116], None])])
    c.complete_task(task)
    stack.settle()
    assert c.tasks_in(pid["corals"]) == [] and stack.nuclio.called("pth-lama") == 0
    assert "Insufficient annotations (need 117 grid points)" in log_of(stack)
    assert "element(s) 117" in log_of(stack)


def test_a_failing_lama_leaves_no_task_behind(wired, rectified, truth, monkeypatch):
    stack, pid, _ = wired
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "error-500")
    task, job = stack.cvat.add_task(pid["grid"], f"{NAME}_warped", [(f"{NAME}.jpg", rectified)])
    annotate(stack, job, [skeleton(stack, pid["grid"], "grid", truth.grid)])
    stack.cvat.complete_task(task)
    stack.settle()
    assert stack.cvat.tasks_in(pid["corals"]) == []
    assert "pth-lama at" in log_of(stack) and "answered 500" in log_of(stack)


# --- detection variants -------------------------------------------------------------------


def test_detection_through_cvat_lambda_requests(tmp_path, photo, truth):
    stack, pid, _ = stack_with_projects(tmp_path, {"BRIDGE_TWIN_DETECT_VIA": "lambda"})
    try:
        c = stack.cvat
        task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        c.patch_job(job, {"state": "in progress"})
        stack.settle()
        ((rid, call),) = c.lambda_calls.items()
        shapes = c.job_shapes(job)
    finally:
        stack.__exit__(None, None, None)
    request = call["request"]
    assert request["function"] == "pth-yolo-gridcorners" and request["job"] == job
    assert request["task"] == task and request["cleanup"] is False
    assert request["conv_mask_to_poly"] is False
    assert request["mapping"]["quadrat_corner"] == {
        "name": "quadrat_corner",
        "attributes": {"confidence": "confidence"},
        "sublabels": {k: {"name": k, "attributes": {}} for k in "1234"},
    }
    assert call["status"] == "finished"
    assert len(shapes) == 1 and len(shapes[0]["elements"]) == 4 and shapes[0]["attributes"]
    assert ("GET", f"/api/lambda/requests/{rid.replace(':', '%3A')}") in c.calls


def test_lambda_requests_are_bounded_by_auto_ann_timeout(tmp_path, photo, monkeypatch):
    monkeypatch.setenv("CRIOBE_TWIN_DELAY_S", "3")
    env = {"BRIDGE_TWIN_DETECT_VIA": "lambda", "AUTO_ANN_TIMEOUT": "0.5"}
    stack, pid, _ = stack_with_projects(tmp_path, env)
    try:
        _task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        stack.cvat.patch_job(job, {"state": "in progress"})
        stack.settle()
        (call,) = stack.cvat.lambda_calls.values()
    finally:
        stack.__exit__(None, None, None)
    assert "not finished within AUTO_ANN_TIMEOUT (0.5 s" in log_of(stack)
    assert ("DELETE", "/api/lambda/requests/autoannotate%3Atask-1") in stack.cvat.calls
    assert call["status"] in ("canceled", "finished")


def test_direct_calls_are_bounded_by_auto_ann_timeout(tmp_path, photo, monkeypatch):
    monkeypatch.setenv("CRIOBE_TWIN_DELAY_S", "2")
    stack, pid, _ = stack_with_projects(tmp_path, {"AUTO_ANN_TIMEOUT": "0.5"})
    try:
        _task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        stack.cvat.patch_job(job, {"state": "in progress"})
        stack.settle()
        assert stack.cvat.job_shapes(job) == []
    finally:
        stack.__exit__(None, None, None)
    assert "no answer within AUTO_ANN_TIMEOUT (0.5 s)" in log_of(stack)


def test_an_undeployed_model_is_reported_and_nothing_written(tmp_path, photo):
    stack, pid, _ = stack_with_projects(tmp_path, deployed=["pth-yolo-gridpose"])
    try:
        _task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        stack.cvat.patch_job(job, {"state": "in progress"})
        stack.settle()
        assert stack.cvat.job_shapes(job) == []
    finally:
        stack.__exit__(None, None, None)
    assert "function pth-yolo-gridcorners is not deployed" in log_of(stack)


def test_labels_the_project_lacks_and_fraction_confidences_are_dropped(
    tmp_path, photo, monkeypatch
):
    """As CVAT does with a detector's answer: an unknown label is dropped, a confidence "0.97"
    (not an integer string) is left out."""
    stack, pid, _ = stack_with_projects(tmp_path)
    try:
        c = stack.cvat
        monkeypatch.setenv("CRIOBE_TWIN_FAULT", "confidence-fraction")
        _task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        c.patch_job(job, {"state": "in progress"})
        stack.settle()
        (shape,) = c.job_shapes(job)
        assert shape["attributes"] == []  # what the bridge wrote: the fraction left out
        (read,) = c._read_shapes([job])["shapes"]  # what CVAT then reads back: the default
        spec = c.project_labels(pid["corners"])["quadrat_corner"]["attributes"][0]
        assert read["attributes"] == [{"spec_id": spec["id"], "value": "100"}]
        monkeypatch.setenv("CRIOBE_TWIN_FAULT", "unknown-label")
        _task2, job2 = c.add_task(pid["corners"], "other", [(f"{NAME}.jpg", photo)])
        c.patch_job(job2, {"state": "in progress"})
        stack.settle()
        assert c.job_shapes(job2) == []
    finally:
        stack.__exit__(None, None, None)
    assert "dropped 1 (label 'corner' not in the project)" in log_of(stack)


def test_missing_skeleton_elements_are_written_as_outside(tmp_path, photo, monkeypatch):
    monkeypatch.setenv("CRIOBE_TWIN_FAULT", "three-corners")
    stack, pid, _ = stack_with_projects(tmp_path)
    try:
        task, job = stack.cvat.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        stack.cvat.patch_job(job, {"state": "in progress"})
        stack.settle()
        (shape,) = stack.cvat.job_shapes(job)
        names = {
            stack.cvat.labels[e["label_id"]]["name"]: (e["outside"], e["points"])
            for e in shape["elements"]
        }
        # ... and completing the task then fails as the docs say.
        stack.cvat.complete_task(task)
        stack.settle()
        assert stack.cvat.tasks_in(pid["grid"]) == []
    finally:
        stack.__exit__(None, None, None)
    assert {n: outside for n, (outside, _) in names.items()} == {
        "1": False,
        "2": False,
        "3": False,
        "4": True,
    }
    # CVAT puts a left-out element at the mean of the given ones (recorded).
    mean = np.mean([names[k][1] for k in "123"], axis=0)
    assert np.allclose(names["4"][1], mean)
    assert "Insufficient annotations (need 4 corner points minimum)" in log_of(stack)


def test_detector_answers_are_kept_as_cvat_keeps_them():
    """The recorded lambda-manager rules (cvat-2.29.0-lambda): only ``attributes`` count (a
    top-level confidence alone is not written), a JSON number or a fraction is no integer
    string, a skeleton with every element outside is dropped, a type must fit the label."""
    from criobe_bridge.functions import project_labels as bridge_labels
    from criobe_bridge.functions import to_shapes

    conf = [{"id": 9, "name": "confidence", "input_type": "number"}]
    labels = bridge_labels([
        {"id": 3, "name": "Porites", "type": "polygon", "attributes": conf},
        {"id": 4, "name": "quadrat_corner", "type": "skeleton", "attributes": conf,
         "sublabels": [{"id": 5, "name": "1", "attributes": []}, {"id": 6, "name": "2", "attributes": []}]},
    ])  # fmt: skip
    poly = {"label": "Porites", "type": "polygon", "points": [0, 0, 4, 0, 4, 4]}
    answers = [
        {**poly, "confidence": "91"},
        {**poly, "attributes": [{"name": "confidence", "value": 87}]},
        {**poly, "attributes": [{"name": "confidence", "value": "87.0"}]},
        {**poly, "attributes": [{"name": "confidence", "value": "250"}, {"name": "x", "value": "1"}]},
        {"label": "Porites", "type": "skeleton", "elements": []},
        {"label": "quadrat_corner", "type": "skeleton", "elements": [
            {"label": "1", "type": "points", "points": [1, 2], "outside": 1},
            {"label": "2", "type": "points", "points": [3, 4], "outside": 1}]},
    ]  # fmt: skip
    shapes, dropped = to_shapes(answers, 0, labels, False, "auto")
    assert [s["attributes"] for s in shapes] == [[], [], [], [{"spec_id": 9, "value": "250"}]]
    assert {s["group"] for s in shapes} == {None} and {s["source"] for s in shapes} == {"auto"}
    assert dropped == {
        "skeleton does not fit label 'Porites' (polygon)": 1,
        "skeleton with every element outside": 1,
    }


def test_masks_become_polygons_only_when_asked():
    from criobe_bridge.functions import project_labels as bridge_labels
    from criobe_bridge.functions import to_shapes

    labels = bridge_labels([{"id": 3, "name": "Porites", "type": "polygon", "attributes": []}])
    mask = {"label": "Porites", "type": "mask", "points": [1, 1, 3, 1, 3, 3],
            "mask": [0, 1, 1, 1, 1, 0, 10, 20, 12, 21]}  # fmt: skip
    (poly,), _ = to_shapes([mask], 0, labels, True, "auto")
    (raw,), _ = to_shapes([mask], 0, labels, False, "auto")
    assert poly["type"] == "polygon" and poly["points"] == [1, 1, 3, 1, 3, 3]
    assert raw["type"] == "mask" and raw["points"] == [1, 4, 1, 10, 20, 12, 21]


# --- settings, secrets --------------------------------------------------------------------


def test_both_documented_variable_sets_log_in(tmp_path):
    from criobe_bridge.settings import Settings

    a = Settings.from_env({"CVAT_USER": "u", "CVAT_PWD": "p"})
    b = Settings.from_env({"CVAT_USERNAME": "u", "CVAT_PASSWORD": "p", "NUCLIO_PORT": "9070"})
    assert (a.cvat_user, a.cvat_password) == (b.cvat_user, b.cvat_password) == ("u", "p")
    assert b.nuclio_port == 9070 and a.cvat_url == "http://cvat-server:8080"
    env = {"CVAT_USER": "", "CVAT_PWD": "", "CVAT_USERNAME": ADMIN[0], "CVAT_PASSWORD": ADMIN[1]}
    with BridgeStack(tmp_path, env) as stack:
        grid = stack.cvat.add_project("grid", project_labels("grid"))
        code, body, _ = stack.post(
            f"/test-webhook?target_proj_id={grid}", {"event": "update:job", "job": {"id": 1}}
        )
    assert (code, body["status"]) == (200, "received")


@pytest.mark.parametrize(
    "knob, value",
    [("BRIDGE_TWIN_DETECT_VIA", "nuclio"), ("BRIDGE_TWIN_REFUSE_UNSIGNED", "maybe"),
     ("BRIDGE_TWIN_WARPED_TASK_NAME", "warped"), ("BRIDGE_TWIN_WARP_SIZE", "big"),
     ("BRIDGE_TWIN_SHAPE_SOURCE", "semi-auto"), ("AUTO_ANN_TIMEOUT", "soon"),
     ("BRIDGE_TWIN_FUNCTION_URL", "http://nuclio:8080"), ("LOG_LEVEL", "LOUD")],
)  # fmt: skip
def test_a_bad_setting_stops_the_bridge_at_start(knob, value):
    from criobe_bridge.settings import Settings

    with pytest.raises(ValueError, match=knob):
        Settings.from_env({knob: value})


def test_no_secret_reaches_the_log(tmp_path, photo, truth):
    """The CVAT password, the webhook secret and CVAT's token never appear in the log: not at
    start, not on a refused delivery, not in a whole chain, not when the login fails."""
    secret = "hook-secret-7f3b9c"
    env = {"WEBHOOK_SECRET": secret, "LOG_LEVEL": "DEBUG"}
    stack, pid, hooks = stack_with_projects(tmp_path, env)
    try:
        asyncio_run_startup(stack)
        c = stack.cvat
        for kind in hooks.values():
            for hook in kind.values():
                c.webhooks[hook]["secret"] = secret
        task, job = c.add_task(pid["corners"], NAME, [(f"{NAME}.jpg", photo)])
        c.patch_job(job, {"state": "in progress"})
        stack.settle()
        c.complete_task(task)
        stack.settle()
        stack.post(DETECT_CORNERS, {"event": "ping"}, secret="wrong")
        stack.post(DETECT_CORNERS, {"event": "ping", "secret": secret})  # unsigned, refused
        token = c.token
        assert c.tasks_in(pid["grid"]), log_of(stack)
    finally:
        stack.__exit__(None, None, None)
    wrong = {"CVAT_PWD": "Wrong-" + ADMIN[1], "WEBHOOK_SECRET": secret}
    with BridgeStack(tmp_path, wrong) as failing:
        failing.cvat.add_project("corners", project_labels("corners"))
        code, body, _ = failing.post(CROP.format(1), {"event": "update:task", "task": {"id": 1}},
                                     secret=secret)  # fmt: skip
        assert code == 502 and "login" in body["detail"]
        assert "Wrong-" not in json.dumps(body)
    log = log_of(stack) + log_of(failing)
    assert "bridge settings:" in log and "login" in log
    for value in (ADMIN[1], secret, token, "Wrong-" + ADMIN[1]):
        assert value not in log


def asyncio_run_startup(stack) -> None:
    """What uvicorn does before serving: the app's startup handlers (the settings line)."""
    import asyncio

    asyncio.run(stack.app.router.startup())


def test_the_bridge_imports_nothing_from_the_suite():
    sources = "\n".join(p.read_text() for p in BRIDGE_DIR.rglob("*.py"))
    for name in ("criobe_verify", "fixtures", "selftests", "tests."):
        assert f"import {name}" not in sources and f"from {name}" not in sources


def test_the_bridge_modules_doctests():
    failures = 0
    for name in ("settings", "events", "worker", "warp", "functions", "logs", "pipeline"):
        module = importlib.import_module(f"criobe_bridge.{name}")
        failures += doctest.testmod(module).failed
    assert failures == 0


def test_the_worker_runs_work_in_order_on_one_thread():
    from criobe_bridge.worker import Worker

    worker, seen, gate = Worker(), [], threading.Event()
    assert worker.submit(1, "one", lambda: (gate.wait(5), seen.append((1, threading.get_ident()))))
    assert not worker.submit(1, "one again", lambda: seen.append("dup"))
    assert worker.submit(2, "two", lambda: seen.append((2, threading.get_ident())))
    gate.set()
    assert worker.wait_idle(5)
    assert [s[0] for s in seen] == [1, 2] and seen[0][1] == seen[1][1] != threading.get_ident()
