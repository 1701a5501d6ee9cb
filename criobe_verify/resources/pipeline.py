"""The CRIOBE pipeline as a lab runs it through CVAT: projects with the exported labels, the
documented webhooks to the bridge, a task from the sample quadrat, and each stage waited for
(bounded by the profile's stage timeout), timed, and explained on failure with the bridge's
log tail and the last deliveries; then watched for anything happening twice.

    run = pipeline.start("two-stage")    # projects, webhooks, the sample's task, job in progress
    run.corners_detected()               # -> what breaks the corner contract ([] when nothing)
    run.task_derived("corals")           # the job completed as CVAT completes it -> the warped task
    run.shapes_detected("corals")        # its job goes 'in progress' -> coral shapes
    run.report()                         # each task's picture, the timeline, summary.json
    run.not_exactly_once()               # -> what happened twice, or was refused

Two-stage (the tutorial): corners → corals. Three-stage puts the grid project between them:
gridpose, then grid removal through pth-lama. Everything is created under the run prefix
(Scratch) and deleted at the end, the bridge's derived tasks with their projects.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.labels import project_labels
from criobe_verify.profile import Profile
from criobe_verify.resources.bridge import Bridge
from criobe_verify.resources.cvat import CvatSession
from criobe_verify.resources.cvat_facts import Job, Label, Project, Shape, Task
from criobe_verify.resources.cvat_facts import label_names as names_of
from criobe_verify.resources.scratch import Scratch
from criobe_verify.resources.webhook import Webhook
from criobe_verify.shapes import corner_problems
from criobe_verify.waiting import Appears, Stopwatch, Unready

log = logging.getLogger("criobe_verify")

BRIDGE = "http://bridge.gateway:8000"
CORNERS, GRID, CORALS = "pth-yolo-gridcorners", "pth-yolo-gridpose", "pth-yolo-coralsegv4"
WORKFLOWS = {"two-stage": ("corners", "corals"), "three-stage": ("corners", "grid", "corals")}
# Each project's detect webhook, and the webhook that derives the next project's task.
DETECTS = {"corners": CORNERS, "grid": GRID, "corals": CORALS}
DERIVES = {
    "corners": "/crop-quadrat-and-create-new-task-webhook",
    "grid": "/remove-grid-and-create-new-task-webhook",
}
STAGE_OF = {"grid": "grid detected", "corals": "corals detected"}
SHAPE_LABELS = {"grid": {"grid"}, "corals": {label["name"] for label in project_labels("corals")}}
# How a corner problem says the detection ran more than once (a repeat, not a contract break).
REPEATED = "the corner detection ran"
POLL_S = 0.5  # a stage takes seconds: a look every half second times it well enough
# Which project's labels name a task's shapes: the source task lives in the corners project.
TASK_PROJECT = {"source": "corners", "grid": "grid", "corals": "corals"}


@dataclass(frozen=True)
class Stage:
    name: str
    start_s: float  # after the run started
    duration_s: float
    function: str | None = None
    function_s: float | None = None  # the function's own first call in this run


def _detect(model: str) -> str:
    return f"/detect-model-webhook?model_name={model}" + (
        "&conv_mask_to_poly=true" if model == CORALS else ""
    )


class Pipeline:
    """Starts runs; hands them what they need (CVAT, the bridge, the sample, the report)."""

    def __init__(
        self,
        session: CvatSession,
        scratch: Scratch,
        profile: Profile,
        bridge: Bridge,
        *,
        sample: Any,
        functions: Any,
        report: Any,
    ) -> None:
        self.session, self.scratch, self.profile, self.bridge = session, scratch, profile, bridge
        self.sample, self.functions, self.report = sample, functions, report
        self.timeout = profile.e2e.stage_timeout_s

    def start(self, workflow: str) -> Run:
        """The workflow's projects and webhooks, a task from the sample in the corners project,
        its job set 'in progress'. Skips when the profile does not run this workflow, or when
        real models would be given the synthetic sample."""
        e2e = self.profile.e2e
        if workflow not in e2e.workflows:
            not_asked(f"profile {self.profile.name} runs {list(e2e.workflows)} (e2e.workflows)")
        if self.sample.synthetic and not self.profile.inference.synthetic_sample:
            pytest.skip(
                "no --sample-image given: real models may find nothing on the synthetic "
                "quadrat; pass --sample-image and --ground-truth (a real quadrat photo; the "
                "CRIOBE test-sample export works)"
            )
        run = Run(self, workflow)
        kinds = WORKFLOWS[workflow]
        for kind in kinds:
            run.projects[kind] = self.scratch.project(project_labels(kind))
        for kind, after in zip(kinds, (*kinds[1:], None), strict=True):
            run.hook(kind, _detect(DETECTS[kind]), ["update:job"])
            if after:
                target = run.projects[after].id
                run.hook(
                    kind, f"{DERIVES[kind]}?target_proj_id={target}", ["update:task", "update:job"]
                )
        task, job = self.scratch.task_with_one_job(
            run.projects["corners"].id, image=self.sample.photo_bytes, name="quadrat.jpg"
        )
        run.tasks["source"], run.jobs["source"] = task, job
        self.session.update_job(job.id, state="in progress")
        return run


class Run:
    """One run of a workflow: its projects, webhooks, tasks, jobs and stages so far."""

    def __init__(self, pipeline: Pipeline, workflow: str) -> None:
        self.pipeline, self.workflow = pipeline, workflow
        self.session, self.bridge = pipeline.session, pipeline.bridge
        self.clock = Stopwatch()
        self.kinds = WORKFLOWS[workflow]
        self.stages: list[Stage] = []
        self.projects: dict[str, Project] = {}
        self.webhooks: list[Webhook] = []
        self.tasks: dict[str, Task] = {}  # "source" (in the corners project), "grid", "corals"
        self.jobs: dict[str, Job] = {}
        self.counts: dict[str, int] = {}  # what the last stage left, for the watch
        self._labels: dict[str, tuple[Label, ...]] = {}

    @property
    def wall_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    def hook(self, kind: str, path: str, events: list[str]) -> None:
        secret = self.bridge.webhook_secret
        project = self.projects[kind].id
        self.webhooks.append(
            self.pipeline.scratch.webhook(project, f"{BRIDGE}{path}", events, secret)
        )

    def labels(self, kind: str) -> tuple[Label, ...]:
        if kind not in self._labels:
            self._labels[kind] = self.session.labels(self.projects[kind].id)
        return self._labels[kind]

    # --- the stages ------------------------------------------------------------------------

    def corners_detected(self) -> list[str]:
        """The corners project's detect webhook runs gridcorners on the source job; what the
        stored skeleton breaks of the corner contract ([] when nothing)."""
        corner = next(label for label in self.labels("corners") if label.name == "quadrat_corner")
        job = self.jobs["source"].id

        def look() -> tuple[tuple[Shape, ...] | None, str]:
            shapes = self.session.shapes(job)
            mine = [s for s in shapes if s.label_id == corner.id]
            return (shapes if mine else None), f"{len(shapes)} shape(s), none of the label yet"

        shapes = self._stage(
            "corners detected",
            look,
            "the job went 'in progress': the corners project's "
            f"detect webhook should run {CORNERS} on it",
            CORNERS,
        )
        return self._corner_problems(corner, [s for s in shapes if s.label_id == corner.id])

    def task_derived(self, kind: str) -> Task:
        """The previous task's job completed as CVAT completes it (stage acceptance, state
        completed); the bridge's task webhook creates the derived task in `kind`'s project."""
        before = self.kinds[self.kinds.index(kind) - 1]
        source = self._previous(kind)
        self.session.update_job(self.jobs[source].id, stage="acceptance", state="completed")
        name = self._derived_name(kind)
        project = self.projects[kind]

        def look() -> tuple[Task | None, str]:
            tasks = self.session.tasks_in(project.id)
            found = [t for t in tasks if t.name == name]
            return (found[0] if found else None), (
                f"tasks in project {project.id}: {[t.name for t in tasks] or 'none'}"
            )

        what = "grid-free" if before == "grid" else "warped"
        task = self._stage(
            f"{what} task created",
            look,
            f"the task was completed: the {before} project's task webhook should create "
            f"'{name}' in project {project.name}",
        )
        self.tasks[kind] = task
        return task

    def shapes_detected(self, kind: str) -> tuple[Shape, ...]:
        """The derived task's job goes 'in progress' (the bridge sets it) and the project's
        detect webhook runs its function: the shapes of the project's labels."""
        task = self.tasks[kind].id
        wanted = {
            label.id
            for label in self.labels(kind)
            if label.name in SHAPE_LABELS[kind] and not label.parent_id
        }

        def look() -> tuple[tuple[Shape, ...] | None, str]:
            job = self.session.job_of(task)
            if job is None:
                return None, "its job is not there yet"
            shapes = tuple(s for s in self.session.shapes(job.id) if s.label_id in wanted)
            return (shapes or None), f"job {job.id} is {job.state!r}, 0 shapes"

        fn = DETECTS[kind]
        shapes = self._stage(
            STAGE_OF[kind],
            look,
            f"the derived task's job should go 'in progress' and {fn} run on it",
            fn,
        )
        self.jobs[kind] = self.session.job_of(task)
        if kind == self.kinds[-1]:
            self.counts = self._count()
        return shapes

    def _previous(self, kind: str) -> str:
        """The task (key of `tasks`, `jobs`) `kind`'s task is derived from."""
        before = self.kinds[self.kinds.index(kind) - 1]
        return "source" if before == "corners" else before

    def _derived_name(self, kind: str) -> str:
        e2e = self.pipeline.profile.e2e
        warped = e2e.warped_name.format(name=self.tasks["source"].name)
        return warped if self._previous(kind) == "source" else e2e.clean_name.format(name=warped)

    def _stage(
        self,
        name: str,
        look: Callable[[], tuple[Any, str]],
        what_next: str,
        function: str | None = None,
    ) -> Any:
        """Wait for a stage: bounded by the profile's stage timeout; hopeless at once when
        the bridge is not running or refused a delivery of this run (CVAT sends a delivery
        once: a refused one never becomes the stage)."""
        timer = Stopwatch()

        def explain(how: Unready) -> Diagnosis:
            return self.why_stalled(name, what_next, how)

        wait = Appears(f"e2e {self.workflow}: {name}", look, explain, hopeless=self._hopeless)
        found = wait.wait(self.pipeline.timeout, interval=POLL_S)
        self.stages.append(Stage(name, timer.since(self.clock), timer.elapsed(), function))
        log.info("e2e %s: %s after %.1f s", self.workflow, name, timer.elapsed())
        return found

    def _hopeless(self) -> str:
        stopped = self.bridge.why_stopped()
        if stopped:
            return stopped
        for webhook in self.webhooks:
            for d in webhook.deliveries():
                if d.status_code != 200:
                    path = webhook.target_url.removeprefix(BRIDGE)
                    return f"the bridge answered {path} {d.event} with {d.status_code}"
        return ""

    def _corner_problems(self, corner: Label, shapes: list[Shape]) -> list[str]:
        names = names_of(self.labels("corners"))
        pipeline = self.pipeline
        raw = pipeline.functions.answer(
            CORNERS, pipeline.sample.request("corners"), pipeline.sample.key
        ).data
        answered = sum(
            1 for s in raw or () if isinstance(s, dict) and s.get("label") == corner.name
        )
        if answered and len(shapes) > answered:
            # More skeletons than the function answers: the detection ran again (a bridge that
            # reacts to its own save) before the exactly-once watch began. Named as what it
            # is, whichever moment the repeat is first seen (CI saw both orders).
            return [f"{REPEATED} {len(shapes) // answered} times ({len(shapes)} {corner.name} "
                    f"skeletons stored, {CORNERS} answers {answered})"]  # fmt: skip
        problems = corner_problems(
            [s.as_answer(names) for s in shapes], pipeline.sample.truth.photo_size
        )
        source = pipeline.profile.e2e.shape_source
        sources = {s.source for s in shapes}
        if sources != {source}:
            problems.append(
                f"shapes' source is {sorted(map(str, sources))}, the profile expects "
                f"{source!r} (e2e.shape_source)"
            )
        wanted = {a["name"]: a["value"] for a in (raw[0].get("attributes") or [])} if raw else {}
        specs = {a.id: a.name for a in corner.attributes}
        stored = {specs.get(i, str(i)): v for i, v in shapes[0].attributes} if shapes else {}
        if shapes and wanted.get("confidence") != stored.get("confidence"):
            problems.append(
                f"stored confidence {stored.get('confidence')!r}, the function "
                f"returned {wanted.get('confidence')!r}"
            )
        return problems

    # --- exactly once ----------------------------------------------------------------------

    def _count(self) -> dict[str, int]:
        """What the run made: shapes per job; one derived task per completed task."""
        counts = {f"job:{job.id}": len(self.session.shapes(job.id)) for job in self.jobs.values()}
        counts.update({f"task:{self.projects[k].id}": 1 for k in self.kinds[1:]})
        return counts

    def not_exactly_once(self) -> list[str]:
        """After the last stage, watched for the profile's settle_s: nothing new may appear (a
        bridge reacting to every update:job detects again on each save of annotations), and
        every delivery of the run was answered 200."""
        time.sleep(self.pipeline.profile.e2e.settle_s)
        problems = []
        for key, count in self.counts.items():
            kind, ident = key.split(":", 1)
            now = (
                len(self.session.shapes(int(ident)))
                if kind == "job"
                else len(self.session.tasks_in(int(ident)))
            )
            if now != count:
                problems.append(
                    f"{kind} {ident}: {count} → {now} "
                    f"{'shapes' if kind == 'job' else 'tasks'} while nothing changed in CVAT"
                )
        for webhook in self.webhooks:
            problems += [
                f"{webhook.target_url} {d.event} → {d.status_code} {d.response[:100]!r}"
                for d in webhook.deliveries()
                if d.status_code != 200
            ]
        return problems

    # --- the report ------------------------------------------------------------------------

    def report(self) -> None:
        """Each task's frame with what CVAT stored on it, the timeline of the stages with each
        function's own latency, a note, and the run's entry in summary.json."""
        from criobe_verify.charts import timeline_chart
        from criobe_verify.overlay import row

        out = self.pipeline.report
        pictures = self._pictures()
        if pictures:
            shown = ", ".join(k for k in TASK_PROJECT if k in self.tasks)
            out.image(
                row(pictures),
                f"{self.workflow} run: each task's image with what CVAT stored on it ({shown})",
            )
        first = self.pipeline.functions.first_call_s
        self.stages = [
            dataclasses.replace(s, function_s=first.get(s.function)) if s.function else s
            for s in self.stages
        ]
        out.image(timeline_chart(self), f"{self.workflow} run: stages and function latency")
        # For summary.json (bench/run.py reads the wall time and the stages from there).
        out.property(
            "e2e",
            json.dumps(
                {
                    "workflow": self.workflow,
                    "wall_s": round(self.wall_s, 3),
                    "stages": [dataclasses.asdict(s) for s in self.stages],
                }
            ),
        )
        out.note(
            f"{self.workflow} run: "
            + "; ".join(f"{s.name} {s.duration_s:.1f} s" for s in self.stages)
            + f"; wall {self.wall_s:.1f} s"
        )

    def _pictures(self) -> list:
        from PIL import Image

        from criobe_verify.overlay import draw_shapes

        pictures = []
        for key, kind in TASK_PROJECT.items():
            if key not in self.tasks or key not in self.jobs:
                continue
            data = self.session.frame(self.tasks[key].id)
            if data is None:
                continue
            names = names_of(self.labels(kind))
            drawn = [s.as_answer(names) for s in self.session.shapes(self.jobs[key].id)]
            pictures.append(draw_shapes(Image.open(io.BytesIO(data)), drawn))
        return pictures

    # --- diagnoses -------------------------------------------------------------------------

    def why_stalled(self, stage: str, what_next: str, how: Unready) -> Diagnosis:
        done = ", ".join(f"{s.name} ({s.duration_s:.1f} s)" for s in self.stages) or "none"
        timeout = self.pipeline.timeout
        return Diagnosis(
            "bridge",
            f"the {self.workflow} run stalled at stage '{stage}': {how.ended}",
            observed=how.last,
            why=f"stages done: {done}; {what_next}",
            expected=f"'{stage}' within the profile's e2e stage_timeout_s ({timeout:.0f} s)",
            consequence="the lab's quadrats stop at this stage and wait for a person",
            fix="docker start bridge (restart: unless-stopped keeps it up)"
            if how.gave_up.startswith("the bridge container")
            else "the bridge's log below and the deliveries say which call failed",
            logs=self.bridge.log_tail(25) + "\n  last deliveries:\n" + self._last_deliveries(),
        )

    def _last_deliveries(self, n: int = 6) -> str:
        lines = [
            f"    | {webhook.target_url.removeprefix(BRIDGE)} {d.event} → {d.status_code} "
            f"{d.response[:120]!r}"
            for webhook in self.webhooks
            for d in webhook.deliveries()[:2]
        ]
        return "\n".join(lines[:n]) or "    | (no delivery)"

    def why_corners_break_contract(self, problems: list[str]) -> Diagnosis:
        if problems[0].startswith(REPEATED):
            return self.why_not_exactly_once(problems)
        return Diagnosis(
            "bridge",
            "the corners it stored break the contract",
            observed="; ".join(problems),
            expected="one quadrat_corner skeleton, 4 elements clockwise from the top-left, the "
            "confidences the function returned",
            consequence="the warp is wrong or missing",
            fix="the bridge's detection step",
        )

    def why_corals_not_polygons(self, shapes: tuple[Shape, ...]) -> Diagnosis:
        bad = [s for s in shapes if s.type != "polygon"]
        return Diagnosis(
            "bridge",
            f"{len(bad)} coral shape(s) stored as {bad[0].type!r}",
            expected="polygons (conv_mask_to_poly=true on the detect webhook)",
            consequence="the lab's cover measures need polygons",
            fix="the bridge's conversion of masks",
        )

    def why_not_exactly_once(self, problems: list[str]) -> Diagnosis:
        return Diagnosis(
            "bridge",
            f"the {self.workflow} run did not happen exactly once",
            observed="; ".join(problems[:6]),
            expected="one detection per state change, one derived task per completed task, "
            "every delivery 200",
            consequence="annotations are duplicated or lost; the lab's counts are wrong",
            fix="the bridge must act on real state changes only (before_update, task.status), "
            "and answer CVAT within 10 s",
        )
