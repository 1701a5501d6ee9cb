"""E2E layer: the guide's webhook-to-annotation run on the sample quadrat, as a lab runs it,
each stage timed and bounded, and everything exactly once, as observed in CVAT.

    pytest -m e2e                                        # the profile's workflows
    pytest -m e2e --sample-image q.jpg --ground-truth corners.json ...

Two-stage (the tutorial): a corners project and a corals project with the exported CRIOBE
labels, the documented webhooks (detect gridcorners on job, crop to the corals project on
task + job; detect coralsegv4 with conv_mask_to_poly on the corals project), a task from the
sample, its job set "in progress" → corners detected → the job completed as CVAT completes it
→ the warped task appears in the corals project → its job goes "in progress" → coral polygons
appear. Three-stage adds the grid project between them: gridpose, then grid removal through
pth-lama into the corals project. Afterwards: one quadrat_corner skeleton of 4 elements, none
outside, in bounds, clockwise, with the confidences the function returned; one derived task
per completed task; every delivery answered 200; nothing happening again while watched.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from criobe_verify.fixtures.pipeline import Run, image_bytes

from criobe_verify.charts import timeline_chart
from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.labels import project_labels
from criobe_verify.overlay import draw_shapes, row
from criobe_verify.shapes import corner_problems

pytestmark = [pytest.mark.e2e, pytest.mark.guide("post-install")]

CORNERS, GRID, CORALS = "pth-yolo-gridcorners", "pth-yolo-gridpose", "pth-yolo-coralsegv4"


def _label_ids(labels: list[dict], names: set[str]) -> set[int]:
    return {
        label["id"] for label in labels if label["name"] in names and not label.get("parent_id")
    }


def _detect(model: str, polygons: bool = False) -> str:
    return f"/detect-model-webhook?model_name={model}" + (
        "&conv_mask_to_poly=true" if polygons else ""
    )


def _shapes_as_answer(shapes: list[dict], labels: list[dict]) -> list[dict]:
    """CVAT's stored skeleton as the function's answer format, to judge it the same way."""
    names = {label["id"]: label["name"] for label in labels}
    for label in labels:
        for sub in label.get("sublabels") or []:
            if "id" in sub:
                names[sub["id"]] = sub["name"]
    return [
        {
            "label": names.get(s["label_id"], str(s["label_id"])),
            "type": s["type"],
            "elements": [
                {
                    "label": names.get(e["label_id"], str(e["label_id"])),
                    "type": "points",
                    "points": e["points"],
                    "outside": int(e.get("outside", False)),
                }
                for e in s.get("elements") or []
            ],
        }
        for s in shapes
    ]


def _confidences(shape: dict, attrs: dict[int, str]) -> dict[str, str]:
    return {
        attrs.get(a["spec_id"], str(a["spec_id"])): a["value"]
        for a in shape.get("attributes") or []
    }


def _check_corners(pipeline, run: Run, job_id: int, sample, functions, profile) -> list[str]:
    labels = pipeline.scratch.project_labels(run.projects["corners"]["id"])
    corner_label = next(label for label in labels if label["name"] == "quadrat_corner")
    shapes = [
        s for s in pipeline.annotations(job_id)["shapes"] if s["label_id"] == corner_label["id"]
    ]
    problems = corner_problems(_shapes_as_answer(shapes, labels), sample.truth.photo_size)
    sources = {s.get("source") for s in shapes}
    if sources != {profile.e2e.shape_source}:
        problems.append(f"shapes' source is {sorted(map(str, sources))}, the profile expects "
                        f"{profile.e2e.shape_source!r} (e2e.shape_source)")  # fmt: skip
    raw = functions.answer(CORNERS, sample.request("corners")).data
    wanted = {a["name"]: a["value"] for a in (raw[0].get("attributes") or [])} if raw else {}
    attrs = {a["id"]: a["name"] for a in corner_label.get("attributes") or []}
    stored = _confidences(shapes[0], attrs) if shapes else {}
    if shapes and wanted.get("confidence") != stored.get("confidence"):
        problems.append(f"stored confidence {stored.get('confidence')!r}, the function returned "
                        f"{wanted.get('confidence')!r}")  # fmt: skip
    return problems


def _watch_for_repeats(pipeline, run: Run, counts: dict[str, int]) -> list[str]:
    """After the last stage: nothing new may appear (a bridge reacting to every update:job
    detects again on each save of annotations)."""
    import time

    time.sleep(pipeline.profile.e2e.settle_s)
    problems = []
    for key, count in counts.items():
        kind, ident = key.split(":", 1)
        if kind == "job":
            now = len(pipeline.annotations(int(ident))["shapes"])
        else:
            now = len(pipeline.tasks_in(int(ident)))
        if now != count:
            problems.append(f"{kind} {ident}: {count} → {now} {'shapes' if kind == 'job' else 'tasks'} "
                            f"while nothing changed in CVAT")  # fmt: skip
    return problems


def _deliveries_all_200(pipeline, run: Run) -> list[str]:
    bad = []
    for webhook in run.webhooks:
        for d in pipeline.scratch.deliveries(webhook["id"]):
            if d["status_code"] != 200:
                bad.append(f"{webhook['target_url']} {d['event']} → {d['status_code']} "
                           f"{str(d.get('response') or '')[:100]!r}")  # fmt: skip
    return bad


# Which project's labels name a task's shapes: the source task lives in the corners project.
TASK_PROJECT = {"source": "corners", "grid": "grid", "corals": "corals"}


def _stage_pictures(pipeline, run: Run) -> list:
    """Each task of the run's frame 0 as CVAT serves it, with what CVAT stored on it drawn."""
    from PIL import Image

    pictures = []
    for key, project in TASK_PROJECT.items():
        if key not in run.tasks or key not in run.jobs:
            continue
        data = pipeline.frame(run.tasks[key]["id"])
        if data is None:
            continue
        labels = pipeline.scratch.project_labels(run.projects[project]["id"])
        shapes = pipeline.annotations(run.jobs[key]["id"])["shapes"]
        drawn = [{**answer, "points": shape.get("points") or []}
                 for answer, shape in zip(_shapes_as_answer(shapes, labels), shapes, strict=True)]  # fmt: skip
        pictures.append(draw_shapes(Image.open(image_bytes(data)), drawn))
    return pictures


def _report(pipeline, run: Run, report_image, report_note, functions, request) -> None:
    pictures = _stage_pictures(pipeline, run)
    if pictures:
        report_image(row(pictures), f"{run.workflow} run: each task's image with what CVAT "
                     f"stored on it ({', '.join(k for k in TASK_PROJECT if k in run.tasks)})")  # fmt: skip
    for stage in run.stages:
        if stage.function:
            stage.function_s = functions.first_call_s.get(stage.function)
    report_image(timeline_chart(run), f"{run.workflow} run: stages and function latency")
    # For summary.json (bench/run.py reads the wall time and the stages from there).
    timeline = {"workflow": run.workflow, "wall_s": round(run.wall_s, 3),
                "stages": [dataclasses.asdict(s) for s in run.stages]}  # fmt: skip
    request.node.user_properties.append(("e2e", json.dumps(timeline)))
    report_note(
        f"{run.workflow} run: "
        + "; ".join(f"{s.name} {s.duration_s:.1f} s" for s in run.stages)
        + f"; wall {run.wall_s:.1f} s"
    )


def _needs_a_real_sample(sample, profile) -> None:
    if sample.synthetic and not profile.inference.synthetic_sample:
        pytest.skip(
            "real models may find nothing on the synthetic quadrat: pass --sample-image and "
            "--ground-truth (a real quadrat photo; the CRIOBE test-sample export works)"
        )


def _secret(bridge_env) -> str:
    return bridge_env.get("WEBHOOK_SECRET") or ""


def _start(pipeline, run: Run, sample) -> tuple[dict, dict]:
    task, job = pipeline.scratch.task_with_one_job(
        run.projects["corners"]["id"], image=sample.photo_bytes, name="quadrat.jpg"
    )
    run.tasks["source"], run.jobs["source"] = task, job
    pipeline.patch_job(job["id"], {"state": "in progress"})
    return task, job


def _corners_stage(pipeline, run, sample, functions, profile) -> None:
    labels = pipeline.scratch.project_labels(run.projects["corners"]["id"])
    corner_id = next(label["id"] for label in labels if label["name"] == "quadrat_corner")
    pipeline.stage(
        run,
        "corners detected",
        pipeline.skeleton_in(run.jobs["source"]["id"], corner_id),
        "the job went 'in progress': the corners project's detect webhook should run "
        f"{CORNERS} on it",
        function=CORNERS,
    )
    problems = _check_corners(pipeline, run, run.jobs["source"]["id"], sample, functions, profile)
    if problems:
        fail(Diagnosis("bridge", "the corners it stored break the contract", observed="; ".join(problems),
                       expected="one quadrat_corner skeleton, 4 elements clockwise from the top-left, "
                       "the confidences the function returned",
                       consequence="the warp is wrong or missing", fix="the bridge's detection step"))  # fmt: skip


def _complete_and_derive(pipeline, run, source: str, project: str, name: str, what: str) -> dict:
    pipeline.patch_job(run.jobs[source]["id"], {"stage": "acceptance", "state": "completed"})
    task = pipeline.stage(
        run,
        f"{what} task created",
        pipeline.task_named(run.projects[project]["id"], name),
        f"the task was completed: the {source} project's task webhook should create "
        f"'{name}' in project {run.projects[project]['name']}",
    )
    run.tasks[project] = task
    return task


def _shapes_stage(pipeline, run, project: str, names: set[str], stage: str, fn: str) -> list:
    labels = pipeline.scratch.project_labels(run.projects[project]["id"])
    shapes = pipeline.stage(
        run,
        stage,
        pipeline.shapes_in_task(run.tasks[project]["id"], _label_ids(labels, names)),
        f"the derived task's job should go 'in progress' and {fn} run on it",
        function=fn,
    )
    job = pipeline.job_of(run.tasks[project]["id"])
    run.jobs[project] = job
    return shapes


def _finish(
    pipeline, run: Run, counts: dict[str, int], report_image, report_note, functions, request
) -> None:
    _report(pipeline, run, report_image, report_note, functions, request)
    problems = _watch_for_repeats(pipeline, run, counts) + _deliveries_all_200(pipeline, run)
    if problems:
        fail(Diagnosis("bridge", f"the {run.workflow} run did not happen exactly once",
                       observed="; ".join(problems[:6]),
                       expected="one detection per state change, one derived task per completed "
                       "task, every delivery 200",
                       consequence="annotations are duplicated or lost; the lab's counts are wrong",
                       fix="the bridge must act on real state changes only (before_update, "
                       "task.status), and answer CVAT within 10 s"))  # fmt: skip


def _corals(shapes: list[dict]) -> None:
    bad = [s for s in shapes if s["type"] != "polygon"]
    if bad:
        fail(Diagnosis("bridge", f"{len(bad)} coral shape(s) stored as {bad[0]['type']!r}",
                       expected="polygons (conv_mask_to_poly=true on the detect webhook)",
                       consequence="the lab's cover measures need polygons",
                       fix="the bridge's conversion of masks"))  # fmt: skip


@check("e2e/two-stage-exactly-once")
def test_two_stage_run_annotates_the_quadrat_exactly_once(
    pipeline, sample, profile, bridge_env, functions, report_image, report_note, request
):
    if "two-stage" not in profile.e2e.workflows:
        pytest.skip(f"profile {profile.name} runs {list(profile.e2e.workflows)} (e2e.workflows)")
    _needs_a_real_sample(sample, profile)
    run = Run("two-stage")
    secret = _secret(bridge_env)
    corners = run.projects["corners"] = pipeline.scratch.project(project_labels("corners"))
    corals = run.projects["corals"] = pipeline.scratch.project(project_labels("corals"))
    pipeline.hook(run, corners, _detect(CORNERS), ["update:job"], secret)
    pipeline.hook(run, corners, f"/crop-quadrat-and-create-new-task-webhook?target_proj_id={corals['id']}",
                  ["update:task", "update:job"], secret)  # fmt: skip
    pipeline.hook(run, corals, _detect(CORALS, polygons=True), ["update:job"], secret)
    task, _ = _start(pipeline, run, sample)
    _corners_stage(pipeline, run, sample, functions, profile)
    warped = profile.e2e.warped_name.format(name=task["name"])
    _complete_and_derive(pipeline, run, "source", "corals", warped, "warped")
    shapes = _shapes_stage(
        pipeline, run, "corals", set(project_labels_names("corals")), "corals detected", CORALS
    )
    _corals(shapes)
    counts = {f"job:{run.jobs['source']['id']}": len(pipeline.annotations(run.jobs["source"]["id"])["shapes"]),
              f"job:{run.jobs['corals']['id']}": len(pipeline.annotations(run.jobs["corals"]["id"])["shapes"]),
              f"task:{corals['id']}": len(pipeline.tasks_in(corals["id"]))}  # fmt: skip
    _finish(pipeline, run, counts, report_image, report_note, functions, request)


@check("e2e/three-stage-exactly-once")
def test_three_stage_run_annotates_the_quadrat_exactly_once(
    pipeline, sample, profile, bridge_env, functions, report_image, report_note, request
):
    if "three-stage" not in profile.e2e.workflows:
        pytest.skip(f"profile {profile.name} runs {list(profile.e2e.workflows)} (e2e.workflows)")
    _needs_a_real_sample(sample, profile)
    run = Run("three-stage")
    secret = _secret(bridge_env)
    corners = run.projects["corners"] = pipeline.scratch.project(project_labels("corners"))
    grid = run.projects["grid"] = pipeline.scratch.project(project_labels("grid"))
    corals = run.projects["corals"] = pipeline.scratch.project(project_labels("corals"))
    pipeline.hook(run, corners, _detect(CORNERS), ["update:job"], secret)
    pipeline.hook(run, corners, f"/crop-quadrat-and-create-new-task-webhook?target_proj_id={grid['id']}",
                  ["update:task", "update:job"], secret)  # fmt: skip
    pipeline.hook(run, grid, _detect(GRID), ["update:job"], secret)
    pipeline.hook(run, grid, f"/remove-grid-and-create-new-task-webhook?target_proj_id={corals['id']}",
                  ["update:task", "update:job"], secret)  # fmt: skip
    pipeline.hook(run, corals, _detect(CORALS, polygons=True), ["update:job"], secret)
    task, _ = _start(pipeline, run, sample)
    _corners_stage(pipeline, run, sample, functions, profile)
    warped = profile.e2e.warped_name.format(name=task["name"])
    _complete_and_derive(pipeline, run, "source", "grid", warped, "warped")
    _shapes_stage(pipeline, run, "grid", {"grid"}, "grid detected", GRID)
    clean = profile.e2e.clean_name.format(name=warped)
    _complete_and_derive(pipeline, run, "grid", "corals", clean, "grid-free")
    shapes = _shapes_stage(
        pipeline, run, "corals", set(project_labels_names("corals")), "corals detected", CORALS
    )
    _corals(shapes)
    counts = {f"job:{run.jobs[k]['id']}": len(pipeline.annotations(run.jobs[k]["id"])["shapes"])
              for k in ("source", "grid", "corals")}  # fmt: skip
    counts.update({f"task:{grid['id']}": 1, f"task:{corals['id']}": 1})
    _finish(pipeline, run, counts, report_image, report_note, functions, request)


def project_labels_names(kind: str) -> list[str]:
    return [label["name"] for label in project_labels(kind)]
