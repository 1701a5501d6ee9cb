"""The bridge's HTTP side: the documented endpoints, answering CVAT at once and queueing the
work on the background worker.

    uvicorn main:app --host 0.0.0.0 --port 8000          # main.py: app = create_app()

| endpoint | query | acts on |
|---|---|---|
| GET (POST) /health | | `{"status": "healthy"}` |
| POST /detect-model-webhook | model_name (required), conv_mask_to_poly | update:job, state -> in progress |
| POST /crop-quadrat-and-create-new-task-webhook | target_proj_id (required) | update:task, status -> completed |
| POST /remove-grid-and-create-new-task-webhook | target_proj_id (required) | update:task, status -> completed |
| POST /test-webhook | target_proj_id, debug | nothing: logs and echoes what it got |

Every delivery is answered 200 with a small JSON body (``{"status": "accepted" | "ignored" |
"ok" | "received", ...}``) unless it is refused: 403 for a bad signature (or a missing one
with BRIDGE_TWIN_REFUSE_UNSIGNED), 400 for a body that is not a JSON object or a model_name
that is not a Nuclio function name, 404 for an unknown target project, 502 when CVAT cannot
be asked about it. Each decision is logged at INFO with the delivery's ids and the reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from typing import Any, Optional, TextIO

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .cvat import Cvat, CvatError
from .events import check_signature, completion_decision, detect_decision, summary
from .functions import Functions
from .logs import setup_logging
from .pipeline import Pipeline
from .settings import Settings
from .worker import Worker

# Nuclio function names are DNS labels; the name also goes into the function's URL.
FUNCTION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# CVAT gives a delivery 10 s; the target-project check must leave room for the answer.
CHECK_TIMEOUT_S = 7.0


class Bridge:
    """What the routes share: settings, log, worker, the pipeline and a CVAT session of
    their own for request-time checks (the worker's session is the pipeline's)."""

    def __init__(self, settings: Settings, log_stream: TextIO | None = None):
        self.settings = settings
        # The password fault is a bridge without the redaction, so the suite's scan can see it.
        leaky = "log-settings-with-password" in settings.faults
        self.log = setup_logging(
            settings.log_level, [] if leaky else settings.secrets(), stream=log_stream
        )
        self.worker = Worker()
        self.checker = Cvat(settings, read_timeout=CHECK_TIMEOUT_S)
        self.pipeline = Pipeline(settings, Cvat(settings), Functions(settings))


def _answer(code: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def create_app(settings: Settings | None = None, *, log_stream: TextIO | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    bridge = Bridge(settings, log_stream)
    log = bridge.log
    app = FastAPI(
        title="CRIOBE bridge",
        description="CVAT webhooks -> Nuclio functions -> new CVAT tasks (criobe-verify twin)",
    )
    app.state.bridge = bridge

    @app.on_event("startup")
    def _startup() -> None:
        os.makedirs(settings.cache_dir, exist_ok=True)
        log.info("bridge settings: %s", settings.describe())
        if "log-settings-with-password" in settings.faults:
            # The selftests' fault: a careless bridge printing its credentials at start.
            log.info("bridge login: %s / %s", settings.cvat_user, settings.cvat_password)

    # An ordinary route with only these methods, so anything else gets FastAPI's own 405.
    @app.api_route("/health", methods=list(settings.health_methods))
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    async def receive(request: Request, endpoint: str) -> dict[str, Any] | JSONResponse:
        """The delivery's JSON payload, or the refusal to answer with."""
        body = await request.body()
        if settings.webhook_secret:
            problem = check_signature(
                settings.webhook_secret, body, request.headers.get("X-Signature-256")
            )
            if problem == "missing" and not settings.refuse_unsigned:
                log.warning("%s: unsigned delivery accepted (WEBHOOK_SECRET is set)", endpoint)
            elif problem:
                log.warning("%s: delivery refused (403): X-Signature-256 %s", endpoint, problem)
                return _answer(403, detail=f"X-Signature-256 {problem}")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            log.warning("%s: delivery refused (400): the body is not a JSON object", endpoint)
            return _answer(400, detail="the body is not a JSON object")
        return payload

    async def check_target(endpoint: str, payload: dict, target: int) -> JSONResponse | None:
        """None when the target project exists, else the 404 (or 502) to answer."""
        try:
            project = await asyncio.wait_for(
                run_in_threadpool(bridge.checker.project, target), CHECK_TIMEOUT_S
            )
        except TimeoutError:
            project, problem = None, f"CVAT did not answer within {CHECK_TIMEOUT_S:g} s"
        except CvatError as exc:
            project, problem = None, str(exc)
        else:
            problem = None
        if problem:
            log.error("%s %s: cannot check target project %s: %s", endpoint, summary(payload),
                      target, problem)  # fmt: skip
            return _answer(502, detail=f"cannot check target project {target}: {problem}",
                           target_proj_id=target)  # fmt: skip
        if project is None:
            log.warning("%s %s: refused (404): target project %s not found",
                        endpoint, summary(payload), target)  # fmt: skip
            return _answer(404, detail=f"target project {target} not found", target_proj_id=target)
        return None

    def ping(endpoint: str, payload: dict) -> JSONResponse:
        log.info("%s %s: pong", endpoint, summary(payload))
        return _answer(200, status="ok", event="ping")

    def queue(
        endpoint: str,
        payload: dict,
        key: tuple,
        what: str,
        work: Callable[[], None],
        why: str,
        **ids: Any,
    ) -> JSONResponse:
        event = payload.get("event")
        if not bridge.worker.submit(key, what, work):
            reason = f"{what} is already queued or running"
            log.info("%s %s: ignored: %s", endpoint, summary(payload), reason)
            return _answer(200, status="ignored", event=event, reason=reason, **ids)
        log.info("%s %s: accepted (%s): %s queued", endpoint, summary(payload), why, what)
        return _answer(200, status="accepted", event=event, action=what, reason=why, **ids)

    def ignored(endpoint: str, payload: dict, reason: str) -> JSONResponse:
        log.info("%s %s: ignored: %s", endpoint, summary(payload), reason)
        return _answer(200, status="ignored", event=payload.get("event"), reason=reason)

    async def completion(
        request: Request, endpoint: str, target: int, stage: str, run: Callable[[int, int], None]
    ) -> JSONResponse:
        payload = await receive(request, endpoint)
        if isinstance(payload, JSONResponse):
            return payload
        is_ping = payload.get("event") == "ping"
        if not is_ping or settings.ping_checks_target:
            refusal = await check_target(endpoint, payload, target)
            if refusal is not None:
                return refusal
        if is_ping:
            return ping(endpoint, payload)
        decision = completion_decision(payload)
        if not decision.act:
            return ignored(endpoint, payload, decision.reason)
        task_id = int(payload["task"]["id"])
        what = f"{stage} of task {task_id} into project {target}"
        return queue(
            endpoint,
            payload,
            (stage, task_id, target),
            what,
            lambda: run(task_id, target),
            decision.reason,
            task_id=task_id,
            target_proj_id=target,
        )

    @app.post("/crop-quadrat-and-create-new-task-webhook")
    async def crop_quadrat_and_create_new_task(
        request: Request,
        target_proj_id: int = Query(..., description="project that receives the warped task"),
    ) -> JSONResponse:
        """On a completed corners task: warp each photo's quadrat from its 4 quadrat_corner
        points to a square, create `<name>_warped` in the target project, set its job in
        progress."""
        return await completion(
            request,
            "/crop-quadrat-and-create-new-task-webhook",
            target_proj_id,
            "crop quadrat",
            bridge.pipeline.crop_quadrat,
        )

    @app.post("/remove-grid-and-create-new-task-webhook")
    async def remove_grid_and_create_new_task(
        request: Request,
        target_proj_id: int = Query(..., description="project that receives the clean task"),
    ) -> JSONResponse:
        """On a completed grid task: paint the 117 grid points' strings out with pth-lama,
        create `<name>_clean` in the target project, set its job in progress."""
        return await completion(
            request,
            "/remove-grid-and-create-new-task-webhook",
            target_proj_id,
            "remove grid",
            bridge.pipeline.remove_grid,
        )

    @app.post("/detect-model-webhook")
    async def detect_model(
        request: Request,
        model_name: str = Query(
            ..., description="Nuclio function to run, e.g. pth-yolo-gridcorners"
        ),
        conv_mask_to_poly: bool = Query(False, description="write masks as polygons"),
    ) -> JSONResponse:
        """When a job's state becomes "in progress": run the model on the job's frames and
        write its shapes into the job."""
        endpoint = "/detect-model-webhook"
        if not FUNCTION_NAME.match(model_name):
            log.warning("%s: refused (400): model_name %r is not a function name", endpoint,
                        model_name)  # fmt: skip
            return _answer(400, detail=f"model_name {model_name!r} is not a Nuclio function name")
        payload = await receive(request, endpoint)
        if isinstance(payload, JSONResponse):
            return payload
        if payload.get("event") == "ping":
            return ping(endpoint, payload)
        every_update = "redetect-on-every-update" in settings.faults
        decision = detect_decision(payload, every_update=every_update)
        if not decision.act:
            return ignored(endpoint, payload, decision.reason)
        job_id = int(payload["job"]["id"])
        what = f"detect {model_name} on job {job_id}"
        return queue(
            endpoint,
            payload,
            ("detect", job_id, model_name),
            what,
            lambda: bridge.pipeline.detect(job_id, model_name, conv_mask_to_poly),
            decision.reason,
            job_id=job_id,
        )

    @app.post("/test-webhook")
    async def test_webhook(
        request: Request,
        target_proj_id: Optional[int] = Query(None, description="project to check exists"),  # noqa: UP045 (FastAPI 0.92, pydantic 1)
        debug: bool = Query(False, description="echo the delivery's structure"),
    ) -> JSONResponse:
        """Checks a webhook end to end without doing anything: signature, JSON body and,
        with target_proj_id, that the project exists; answers what it received."""
        endpoint = "/test-webhook"
        payload = await receive(request, endpoint)
        if isinstance(payload, JSONResponse):
            return payload
        is_ping = payload.get("event") == "ping"
        if target_proj_id is not None and (not is_ping or settings.ping_checks_target):
            refusal = await check_target(endpoint, payload, target_proj_id)
            if refusal is not None:
                return refusal
        body: dict[str, Any] = {
            "status": "received",
            "event": payload.get("event"),
            "summary": summary(payload),
        }
        if target_proj_id is not None:
            body["target_proj_id"] = target_proj_id
        if debug:
            before = payload.get("before_update")
            body["debug"] = {
                "keys": sorted(payload),
                "before_update": sorted(before) if isinstance(before, dict) else None,
                "signed": "X-Signature-256" in request.headers,
                "user_agent": request.headers.get("User-Agent"),
            }
        log.info("%s %s: received%s", endpoint, summary(payload),
                 f" (debug: {body['debug']})" if debug else "")  # fmt: skip
        return _answer(200, **body)

    return app
