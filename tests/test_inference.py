"""Inference layer: each function on the sample quadrat, judged on its raw answer (CVAT pads
skeletons, replaces bad confidences and drops unknown labels, which would hide defects).

    pytest -m inference                                   # the committed synthetic sample
    pytest -m inference --sample-image q.jpg --ground-truth corners.json --ground-truth grid.json

Per function: it answers the image of its pipeline stage; its answer follows the output
contract (one quadrat_corner skeleton, elements 1-4 clockwise from the top-left; one grid
skeleton of 117; LaMa's image the size of its input; coral shapes over the 16 genera in the
profile's form; integer-percent confidences); it is accurate against the ground truth (policy:
the profile's thresholds; errors per element id, Hungarian pairing of coral colonies only); it
matches its golden answer (policy; `--update-golden` records it); and CVAT's own online call
keeps what the function returned.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from criobe_verify.accuracy import (
    grid_lines,
    line_mask,
    match_corals,
    mean_abs_error,
    point_errors,
    skeleton_points,
)
from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, expect, fail
from criobe_verify.overlay import draw_shapes, draw_truth, side_by_side
from criobe_verify.quadrat import GENERA, lattice_of_elements
from criobe_verify.resources.cvat_facts import online_call_keeps
from criobe_verify.shapes import (
    CORNER_LABEL,
    GRID_LABEL,
    coral_problems,
    corner_problems,
    decode_image,
    grid_problems,
    inpaint_problems,
    interactor_problems,
)

pytestmark = [pytest.mark.inference, pytest.mark.guide("step-6")]

ROLE_WHAT = {
    "corners": "the quadrat's 4 corners",
    "grid": "the 117 grid points",
    "inpaint": "the grid-free image",
    "corals": "the coral colonies",
    "interactor": "SAM's image embedding",
}


def answered(expected_function, functions, sample):
    fn = expected_function
    present = functions.dashboard.function(fn.name)
    if present is None and fn.optional:
        pytest.skip(f"{fn.name}: optional in the profile and not deployed")
    return functions.answer(fn.name, sample.request(fn.role))


@check("inference/answers-sample")
def test_function_answers_the_sample(expected_function, functions, sample, depends_on):
    fn = expected_function
    depends_on("functions/deployed-and-ready")
    call = answered(fn, functions, sample)
    if call.status == 200 and call.data is not None:
        return
    fail(
        Diagnosis(
            f"nuclio-nuclio-{fn.name}",
            f"answered {call.status} to {sample.name} ({ROLE_WHAT[fn.role]} expected)",
            observed=call.text[:500],
            expected="200 with a JSON answer",
            consequence=f"the pipeline stage of {fn.name} fails on a real image",
            fix=f"docker logs nuclio-nuclio-{fn.name} (Nuclio logs the handler's exception)",
        )
    )


def _meaningful(sample, profile) -> bool:
    return not sample.synthetic or profile.inference.synthetic_sample


def contract_problems(fn, data, sample, profile) -> list[str]:
    size = sample.stage_size(fn.role)
    if fn.role == "corners":
        problems = corner_problems(data, size)
    elif fn.role == "grid":
        problems = grid_problems(data, size)
    elif fn.role == "corals":
        problems = coral_problems(data, size, GENERA, profile.inference.coral_output)
    elif fn.role == "inpaint":
        problems, _ = inpaint_problems(data, size, profile.inference.lama_response)
    else:
        problems = interactor_problems(data)
    if not _meaningful(sample, profile) and fn.role in ("corners", "grid"):
        # A real model may find nothing on the synthetic quadrat: only the form is judged.
        label = CORNER_LABEL if fn.role == "corners" else GRID_LABEL
        problems = [p for p in problems if not p.startswith(f"0 {label} skeletons")]
    return problems


def _overlay(fn, data, sample) -> str | None:
    stage = {"corners": "photo", "grid": "rectified", "inpaint": "rectified"}.get(
        fn.role, "grid_free"
    )
    if fn.role == "interactor":
        return None
    image = sample.image(stage)
    if fn.role == "inpaint":
        _, out = inpaint_problems(data, image.size, "image-b64-png")
        predicted = out.convert("RGB") if out is not None else image
    else:
        predicted = draw_shapes(image, data if isinstance(data, list) else [])
    t = sample.truth
    truth = {
        "corners": lambda: draw_truth(sample.image("photo"), points=t.corners),
        "grid": lambda: draw_truth(image, points=t.grid),
        "inpaint": lambda: sample.image("grid_free"),
        "corals": lambda: draw_truth(image, polygons=[(c.genus, c.polygon) for c in t.corals]),
    }[fn.role]()
    return side_by_side(predicted, truth)


@check("inference/output-follows-contract")
def test_function_output_follows_the_contract(
    expected_function, functions, sample, profile, depends_on, report_image
):
    fn = expected_function
    depends_on("inference/answers-sample")
    data = answered(fn, functions, sample).data
    picture = _overlay(fn, data, sample)
    if picture:
        report_image(picture, f"{fn.name}: its answer (left) and the ground truth (right)")
    problems = contract_problems(fn, data, sample, profile)
    if not problems:
        return
    more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
    fail(
        Diagnosis(
            f"nuclio-nuclio-{fn.name}",
            f"its answer on {sample.name} breaks the output contract",
            observed="; ".join(problems[:6]) + more,
            consequence="CVAT stores something else than the function meant (it pads "
            "skeletons, drops labels and confidences it cannot use), and the bridge's next "
            "stage works on it",
            fix=f"the handler of {fn.name} (serverless/.../main.py)",
        )
    )


def accuracy_problems(fn, data, sample, profile) -> tuple[list[str], str]:
    """(problems, what was measured) against the ground truth."""
    t, limits = sample.truth, profile.inference
    if fn.role == "corners":
        errors = point_errors(skeleton_points(data, CORNER_LABEL), t.corners)
        worst = max(errors.values())
        measured = "corner errors " + ", ".join(f"{k}: {v:.1f} px" for k, v in errors.items())
        if worst > limits.corner_error_px_max:
            return [
                f"{measured}; worst {worst:.1f} px > {limits.corner_error_px_max:g} px"
            ], measured
        return [], measured
    if fn.role == "grid":
        errors = point_errors(skeleton_points(data, GRID_LABEL), t.grid)
        mean = sum(errors.values()) / len(errors)
        far = sorted(errors, key=errors.get, reverse=True)[:3]
        measured = (
            f"grid mean error {mean:.1f} px (worst elements "
            + ", ".join(f"{k}: {errors[k]:.1f}" for k in far)
            + ")"
        )
        if mean > limits.grid_mean_error_px_max:
            return [f"{measured} > {limits.grid_mean_error_px_max:g} px, per element id"], measured
        return [], measured
    if fn.role == "corals":
        matches, extra = match_corals(data, [(c.genus, c.polygon) for c in t.corals])
        measured = (
            "coral IoU "
            + ", ".join(
                f"{m.genus} {m.iou:.2f}"
                + ("" if m.found_genus in (m.genus, None) else f" (as {m.found_genus})")
                for m in matches
            )
            + (f"; {extra} shape(s) matching no colony" if extra else "")
        )
        bad = [m for m in matches if m.iou < limits.coral_iou_min or m.found_genus != m.genus]
        if bad:
            return [
                f"{measured}: {len(bad)} of {len(matches)} colonies below IoU "
                f"{limits.coral_iou_min:g} or of another genus"
            ], measured
        return [], measured
    if fn.role == "inpaint":
        _, out = inpaint_problems(data, t.rectified_size, profile.inference.lama_response)
        lines = grid_lines(t.grid, lattice_of_elements())
        mask = line_mask(t.rectified_size, lines, width=8)
        truth = sample.image("grid_free")
        before = mean_abs_error(sample.image("rectified"), truth, mask)
        after = mean_abs_error(out, truth, mask)
        measured = (
            f"string pixels' error to the grid-free image: {before:.1f} before, {after:.1f} after"
        )
        if after > before * 0.5:
            return [f"{measured}: the strings were not removed (expected at most half)"], measured
        return [], measured
    return [], "no ground truth for this role"


@check("inference/accurate-on-sample", policy=True)
def test_function_is_accurate_on_the_sample(
    measured_function, functions, sample, profile, depends_on, report_note
):
    """For the functions whose answer the sample's ground truth can judge (not SAM's
    embedding)."""
    fn = measured_function
    depends_on("inference/output-follows-contract")
    if not _meaningful(sample, profile):
        pytest.skip(
            "the synthetic sample says nothing about real models' accuracy: pass "
            "--sample-image and --ground-truth (the CRIOBE test-sample export works)"
        )
    data = answered(fn, functions, sample).data
    problems, measured = accuracy_problems(fn, data, sample, profile)
    report_note(f"{fn.name} on {sample.name}: {measured}")
    if problems:
        fail(
            Diagnosis(
                f"nuclio-nuclio-{fn.name}",
                f"is off on {sample.name}",
                observed=problems[0],
                expected="within the profile's [inference] thresholds",
                consequence="the warp, the grid and the coral cover the lab reads are wrong",
                fix=f"the model or handler of {fn.name}; or the thresholds in the profile",
            )
        )


def golden_path(profile, fn) -> Path:
    return profile.golden_dir / f"{fn.name}.json"


def golden_digest(fn, data, profile) -> dict:
    """What is kept of an answer as its golden: shapes as they are; LaMa's image downscaled;
    SAM's embedding as per-channel means (its floats move a little between GPUs)."""
    if fn.role == "inpaint":
        small = decode_image(data["image"]).convert("L").resize((64, 64))
        return {"thumbnail": list(small.tobytes())}
    if fn.role == "interactor":
        import numpy as np

        blob = np.frombuffer(base64.b64decode(data["blob"]), dtype=np.float32).reshape(256, -1)
        return {"channel_means": [round(float(v), 5) for v in blob.mean(axis=1)]}
    if fn.role == "corals":
        # The outline is what CVAT keeps (conv_mask_to_poly); the mask would weigh megabytes.
        return {"answer": [{k: v for k, v in s.items() if k != "mask"} for s in data]}
    return {"answer": data}


def golden_drift(fn, now: dict, golden: dict, tolerance_px: float, iou_min: float) -> list[str]:
    if fn.role in ("corners", "grid"):
        label = CORNER_LABEL if fn.role == "corners" else GRID_LABEL
        was = skeleton_points(golden["answer"], label)
        errors = point_errors(
            skeleton_points(now["answer"], label), [was[k] for k in sorted(was, key=int)]
        )
        moved = {k: v for k, v in errors.items() if v > tolerance_px}
        return (
            [
                f"{len(moved)} element(s) moved more than {tolerance_px:g} px, e.g. "
                + ", ".join(f"{k}: {v:.1f} px" for k, v in list(moved.items())[:4])
            ]
            if moved
            else []
        )
    if fn.role == "corals":
        from shapely.geometry import Polygon

        polys = [
            (
                s.get("label"),
                [(s["points"][i], s["points"][i + 1]) for i in range(0, len(s["points"]) - 1, 2)],
            )
            for s in golden["answer"]
        ]
        matches, extra = match_corals(
            now["answer"], [(g, p) for g, p in polys if len(p) >= 3 and Polygon(p).area > 0]
        )
        bad = [m for m in matches if m.iou < 0.9 or m.found_genus != m.genus]
        if bad or extra:
            return [
                f"{len(bad)} of {len(matches)} golden shapes not found again (IoU < 0.9 or "
                f"another label){f', {extra} new shape(s)' if extra else ''}"
            ]
        return []
    if fn.role == "inpaint":
        diff = sum(abs(a - b) for a, b in zip(now["thumbnail"], golden["thumbnail"], strict=True))
        mean = diff / len(golden["thumbnail"])
        return [f"the image differs by {mean:.1f} grey levels on average"] if mean > 4 else []
    diff = max(
        abs(a - b) for a, b in zip(now["channel_means"], golden["channel_means"], strict=True)
    )
    return [f"embedding channel means moved by up to {diff:.4f}"] if diff > 0.01 else []


@check("inference/matches-golden", policy=True)
def test_function_output_matches_its_golden(
    expected_function, functions, sample, profile, depends_on, pytestconfig
):
    fn = expected_function
    depends_on("inference/output-follows-contract")
    # An inaccurate answer is the accuracy check's finding, not also a drift; where accuracy
    # cannot be judged (a real model on the synthetic sample) the golden still runs.
    if fn.role != "interactor":
        depends_on("inference/accurate-on-sample", unless_skipped=True)
    if not sample.synthetic:
        pytest.skip("golden answers are recorded on the committed sample only")
    now = golden_digest(fn, answered(fn, functions, sample).data, profile)
    path = golden_path(profile, fn)
    if pytestconfig.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(now, sort_keys=True) + "\n")
        return
    if not path.is_file():
        pytest.skip(f"no golden answer recorded for {fn.name} ({path}): run with --update-golden")
    limits = profile.inference
    golden = json.loads(path.read_text())
    drift = golden_drift(fn, now, golden, limits.golden_tolerance_px, limits.golden_iou_min)
    if drift:
        fail(
            Diagnosis(
                f"nuclio-nuclio-{fn.name}",
                f"its answer on {sample.name} drifted from the recorded golden answer",
                observed=drift[0],
                expected=f"the answer recorded in {path}",
                consequence="the model or its pre/post-processing changed: annotations made "
                "before and after this change differ",
                fix="find what changed (image, weights, thresholds); if intended, record a new "
                "golden with --update-golden",
            )
        )


@check("inference/cvat-keeps-answer")
def test_cvat_keeps_what_the_function_returned(
    detector_function, functions, sample, cvat_scratch, depends_on
):
    """One online call through CVAT's lambda API (POST /api/lambda/functions/<id>) on a task
    holding the same image: CVAT passes the function's answer on, filtered as documented."""
    fn, cvat = detector_function, cvat_scratch.session
    depends_on("inference/output-follows-contract", "functions/cvat-lists-detector")
    raw = answered(fn, functions, sample).data
    project = cvat_scratch.criobe_project(fn.role)
    task, _ = cvat_scratch.task_with_one_job(
        project.id, image=sample.stage_bytes(fn.role), name=f"{fn.role}.jpg"
    )
    call = cvat.call_online(fn.name, task.id)
    expect(call.status == 200, lambda: cvat.why_online_call_failed(call))
    kept = online_call_keeps(raw, cvat.labels(project.id))
    expect(call.data == kept, lambda: cvat.why_online_call_changed(call, kept))
