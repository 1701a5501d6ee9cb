"""The three stages the bridge runs in the background, as the CRIOBE guide chains them:

- ``detect``: run a detector on a job's frames and write its shapes into the job, either by
  calling the function directly (``BRIDGE_TWIN_DETECT_VIA=direct``) or through CVAT's lambda
  requests (``lambda``, bounded by AUTO_ANN_TIMEOUT);
- ``crop_quadrat``: on a completed corners task, warp each photo's quadrat (the 4
  ``quadrat_corner`` elements 1-4 = TL, TR, BR, BL) to a square, create ``<name>_warped`` in
  the target project and set its job in progress (CVAT then sends update:job, which starts
  the target project's detection);
- ``remove_grid``: on a completed grid task, send the image and the 117 ``grid`` points to
  pth-lama, create ``<name>_clean`` from its answer and set its job in progress.

    pipeline = Pipeline(settings, Cvat(settings), Functions(settings))
    pipeline.detect(13, "pth-yolo-gridcorners", conv_mask_to_poly=False)
    pipeline.crop_quadrat(7, target_proj_id=3)

Failures are logged at ERROR with the reason (the CRIOBE docs' "Insufficient annotations
(need 4 corner points minimum)" among them) and leave nothing half-created in CVAT.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from . import warp
from .cvat import Cvat, CvatError
from .functions import FunctionError, Functions, lambda_mapping, project_labels, to_shapes
from .settings import Settings

log = logging.getLogger("bridge")

CORNER_LABEL = "quadrat_corner"
CORNER_COUNT = 4
GRID_LABEL = "grid"
GRID_COUNT = 117
LAMA_FUNCTION = "pth-lama"
# States of CVAT's lambda requests (rq job statuses) after which polling stops.
LAMBDA_DONE = {"finished", "failed", "canceled", "stopped"}


class PipelineError(Exception):
    """An expected failure; its message is what the log shows."""


def skeleton_points(
    annotations: dict[str, Any],
    labels: dict[str, dict[str, Any]],
    label_name: str,
    count: int,
    frame: int,
) -> list[tuple[float, float] | None]:
    """The points of elements "1".."count" of the frame's ``label_name`` skeleton (None for
    an element that is missing or outside). Elements are matched by their sublabel, never
    by position: CVAT returns them in any order. With several skeletons on a frame, the one
    with the most visible points wins, the newest on a tie.

    >>> labels = {"quadrat_corner": {"id": 1, "sublabels": {"1": {"id": 2}, "2": {"id": 3}}}}
    >>> shape = {"id": 9, "frame": 0, "label_id": 1, "type": "skeleton", "elements": [
    ...     {"label_id": 3, "points": [5.0, 6.0], "outside": False},
    ...     {"label_id": 2, "points": [1.0, 2.0], "outside": False}]}
    >>> skeleton_points({"shapes": [shape]}, labels, "quadrat_corner", 2, 0)
    [(1.0, 2.0), (5.0, 6.0)]
    """
    label = labels.get(label_name)
    if label is None:
        raise PipelineError(f"the task's project has no {label_name!r} label")
    names = {sub["id"]: name for name, sub in label["sublabels"].items()}
    best: tuple[int, int, dict[str, tuple[float, float]]] | None = None
    for shape in annotations.get("shapes") or []:
        if shape.get("label_id") != label["id"] or shape.get("frame") != frame:
            continue
        if shape.get("type") != "skeleton":
            continue
        seen = {}
        for element in shape.get("elements") or []:
            name = names.get(element.get("label_id"))
            pts = element.get("points") or []
            if name is None or element.get("outside") or len(pts) < 2:
                continue
            seen[name] = (float(pts[0]), float(pts[1]))
        rank = (len(seen), int(shape.get("id") or 0), seen)
        if best is None or rank[:2] > best[:2]:
            best = rank
    found = best[2] if best else {}
    return [found.get(str(k)) for k in range(1, count + 1)]


def _insufficient(what: str, task_id: int, frame: int, points: list, label: str) -> str:
    visible = sum(p is not None for p in points)
    missing = [str(i + 1) for i, p in enumerate(points) if p is None]
    detail = (
        f"no {label} skeleton"
        if visible == 0
        else f"missing or outside: element(s) {', '.join(missing[:10])}"
        + ("…" if len(missing) > 10 else "")
    )
    return f"{what}: task {task_id} frame {frame} has {visible} ({detail})"


class Pipeline:
    def __init__(self, settings: Settings, cvat: Cvat, functions: Functions):
        self.settings = settings
        self.cvat = cvat
        self.functions = functions

    # --- helpers ----------------------------------------------------------------------------

    def _labels(self, project_id: int | None, task_id: int) -> dict[str, dict[str, Any]]:
        if project_id is not None:
            return project_labels(self.cvat.labels(project_id=project_id))
        return project_labels(self.cvat.labels(task_id=task_id))

    def _workdir(self, what: str) -> Path:
        path = Path(self.settings.cache_dir) / f"{what}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _run(self, what: str, step, *args) -> None:
        start = time.monotonic()
        try:
            step(what, *args)
        except (PipelineError, CvatError, FunctionError) as exc:
            log.error("%s: failed after %.1f s: %s", what, time.monotonic() - start, exc)
        else:
            log.info("%s: done in %.1f s", what, time.monotonic() - start)

    def _new_task(self, name: str, project_id: int, files: list[Path]) -> dict[str, Any]:
        """Create the task, then set each of its jobs in progress; a task whose jobs cannot
        be started is deleted again."""
        if self.cvat.project(project_id) is None:
            raise PipelineError(f"target project {project_id} not found")
        task = self.cvat.create_task(name, project_id, files)
        try:
            jobs = self.cvat.jobs(task["id"])
            if not jobs:
                raise PipelineError(f"CVAT made no job for task {task['id']}")
            for job in jobs:
                self.cvat.set_job_state(job["id"], "in progress")
        except (PipelineError, CvatError):
            try:
                self.cvat.delete_task(task["id"])
            except CvatError as exc:
                log.error("could not delete the unfinished task %s: %s", task["id"], exc)
            raise
        log.info(
            "created task %s %r in project %s (%d frame(s)); job(s) %s set to in progress",
            task["id"],
            name,
            project_id,
            len(files),
            ", ".join(str(j["id"]) for j in jobs),
        )
        return task

    @staticmethod
    def _file_name(meta: dict[str, Any], used: set[str], suffix: str) -> str:
        stem = Path(str(meta.get("name") or "frame")).stem or "frame"
        name, n = f"{stem}{suffix}", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}{suffix}"
        used.add(name)
        return name

    # --- detect -----------------------------------------------------------------------------

    def detect(self, job_id: int, model: str, conv_mask_to_poly: bool) -> None:
        self._run(f"detect {model} on job {job_id}", self._detect, job_id, model, conv_mask_to_poly)

    def _check_function(self, what: str, model: str) -> None:
        try:
            record = self.functions.dashboard_function(model)
        except FunctionError as exc:
            log.warning("%s: %s; trying anyway", what, exc)
            return
        if record is None:
            s = self.settings
            raise PipelineError(
                f"function {model} is not deployed (the Nuclio dashboard at "
                f"{s.nuclio_host}:{s.nuclio_port} does not know it)"
            )
        state = (record.get("status") or {}).get("state")
        if state != "ready":
            log.warning("%s: the dashboard reports %s as %r; trying anyway", what, model, state)

    def _detect(self, what: str, job_id: int, model: str, conv_mask_to_poly: bool) -> None:
        job = self.cvat.job(job_id)
        task_id = job["task_id"]
        labels = self._labels(job.get("project_id"), task_id)
        self._check_function(what, model)
        if self.settings.detect_via == "lambda":
            self._detect_lambda(what, job, model, conv_mask_to_poly, labels)
            return
        shapes: list[dict[str, Any]] = []
        dropped: dict[str, int] = {}
        frames = range(job["start_frame"], job["stop_frame"] + 1)
        for frame in frames:
            image = base64.b64encode(self.cvat.frame(task_id, frame)).decode("ascii")
            results = self.functions.invoke(model, {"image": image})
            got, lost = to_shapes(
                results, frame, labels, conv_mask_to_poly, self.settings.shape_source
            )
            shapes += got
            for why, n in lost.items():
                dropped[why] = dropped.get(why, 0) + n
        if self.settings.detect_cleanup:
            self.cvat.clear_job_annotations(job_id)
        if shapes:
            self.cvat.add_job_shapes(job_id, shapes)
        log.info(
            "%s: wrote %d shape(s) on %d frame(s) of task %s%s",
            what,
            len(shapes),
            len(frames),
            task_id,
            "; dropped " + ", ".join(f"{n} ({why})" for why, n in dropped.items())
            if dropped
            else "",
        )

    def _detect_lambda(self, what, job, model, conv_mask_to_poly, labels) -> None:
        body = {
            "function": model,
            "task": job["task_id"],
            "job": job["id"],
            "cleanup": self.settings.detect_cleanup,
            "conv_mask_to_poly": conv_mask_to_poly,
            "mapping": lambda_mapping(labels),
        }
        request = self.cvat.lambda_request(body)
        request_id = str(request["id"])
        log.info("%s: CVAT lambda request %s queued", what, request_id)
        deadline = time.monotonic() + self.settings.auto_ann_timeout
        status = str(request.get("status") or "queued")
        while status not in LAMBDA_DONE:
            if time.monotonic() > deadline:
                try:
                    self.cvat.lambda_cancel(request_id)
                except CvatError as exc:
                    log.warning("%s: could not cancel request %s: %s", what, request_id, exc)
                raise PipelineError(
                    f"CVAT lambda request {request_id} not finished within AUTO_ANN_TIMEOUT "
                    f"({self.settings.auto_ann_timeout:g} s; last status {status})"
                )
            time.sleep(self.settings.poll_interval)
            request = self.cvat.lambda_status(request_id)
            status = str(request.get("status") or "")
        if status != "finished":
            lines = str(request.get("exc_info") or "").strip().splitlines()
            raise PipelineError(
                f"CVAT lambda request {request_id} {status}: {lines[-1] if lines else 'no reason'}"
            )
        log.info("%s: CVAT lambda request %s finished", what, request_id)

    # --- crop / warp ------------------------------------------------------------------------

    def crop_quadrat(self, task_id: int, target_proj_id: int) -> None:
        self._run(
            f"crop quadrat of task {task_id} into project {target_proj_id}",
            self._crop,
            task_id,
            target_proj_id,
        )

    def _crop(self, what: str, task_id: int, target_proj_id: int) -> None:
        task = self.cvat.task(task_id)
        labels = self._labels(task.get("project_id"), task_id)
        annotations = self.cvat.task_annotations(task_id)
        frames = self.cvat.frames(task_id)
        if not frames:
            raise PipelineError(f"task {task_id} has no images")
        corners = []
        for frame in range(len(frames)):
            points = skeleton_points(annotations, labels, CORNER_LABEL, CORNER_COUNT, frame)
            if any(p is None for p in points):
                raise PipelineError(
                    _insufficient(
                        "Insufficient annotations (need 4 corner points minimum)",
                        task_id,
                        frame,
                        points,
                        CORNER_LABEL,
                    )
                )
            corners.append(points)
        workdir = self._workdir(f"crop-{task_id}")
        try:
            files, used = [], set()
            for frame, meta in enumerate(frames):
                photo = Image.open(io.BytesIO(self.cvat.frame(task_id, frame)))
                try:
                    square = warp.rectify(photo, corners[frame], self.settings.warp_size)
                except ValueError as exc:
                    raise PipelineError(f"task {task_id} frame {frame}: {exc}") from None
                path = workdir / self._file_name(meta, used, ".jpg")
                square.save(path, "JPEG", quality=95)
                files.append(path)
                log.info(
                    "%s: frame %d warped from %dx%d to %dx%d",
                    what,
                    frame,
                    *photo.size,
                    *square.size,
                )
            self._new_task(self.settings.warped_name(task["name"]), target_proj_id, files)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # --- grid removal -----------------------------------------------------------------------

    def remove_grid(self, task_id: int, target_proj_id: int) -> None:
        self._run(
            f"remove grid of task {task_id} into project {target_proj_id}",
            self._remove_grid,
            task_id,
            target_proj_id,
        )

    def _remove_grid(self, what: str, task_id: int, target_proj_id: int) -> None:
        task = self.cvat.task(task_id)
        labels = self._labels(task.get("project_id"), task_id)
        annotations = self.cvat.task_annotations(task_id)
        frames = self.cvat.frames(task_id)
        if not frames:
            raise PipelineError(f"task {task_id} has no images")
        grids = []
        for frame in range(len(frames)):
            points = skeleton_points(annotations, labels, GRID_LABEL, GRID_COUNT, frame)
            if any(p is None for p in points):
                raise PipelineError(
                    _insufficient(
                        "Insufficient annotations (need 117 grid points)",
                        task_id,
                        frame,
                        points,
                        GRID_LABEL,
                    )
                )
            grids.append(points)
        workdir = self._workdir(f"grid-{task_id}")
        try:
            files, used = [], set()
            for frame, meta in enumerate(frames):
                raw = self.cvat.frame(task_id, frame)
                answer = self.functions.invoke(
                    LAMA_FUNCTION,
                    {
                        "image": base64.b64encode(raw).decode("ascii"),
                        "keypoints": [[x, y] for x, y in grids[frame]],
                    },
                )
                if not isinstance(answer, dict) or not isinstance(answer.get("image"), str):
                    raise PipelineError(f"{LAMA_FUNCTION} did not answer {{'image': <base64>}}")
                try:
                    clean = base64.b64decode(answer["image"], validate=True)
                    image = Image.open(io.BytesIO(clean))
                    image.load()
                except Exception:
                    raise PipelineError(
                        f"{LAMA_FUNCTION}'s 'image' is not a base64 image"
                    ) from None
                size = Image.open(io.BytesIO(raw)).size
                if image.size != size:
                    log.warning(
                        "%s: %s answered %dx%d for a %dx%d image",
                        what,
                        LAMA_FUNCTION,
                        *image.size,
                        *size,
                    )
                suffix = ".jpg" if image.format == "JPEG" else ".png"
                path = workdir / self._file_name(meta, used, suffix)
                if image.format in ("PNG", "JPEG"):
                    path.write_bytes(clean)
                else:
                    image.convert("RGB").save(path, "PNG")
                files.append(path)
            self._new_task(self.settings.clean_name(task["name"]), target_proj_id, files)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
