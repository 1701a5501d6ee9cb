"""LambdaQueue and LambdaJob.to_dict (cvat/apps/lambda_manager/views.py) on the real RQ queue
`annotation`, whose worker is cvat_worker_annotation.

    job = enqueue(function, threshold=None, task=9, mapping=None, cleanup=True,
                  conv_mask_to_poly=True, max_distance=None, job=None, meta={...})
    call_dict(job)   # {"id": "autoannotate:task-9", "function": {...}, "status": "queued", ...}

One RQ job id per task, so a new request replaces the last finished or failed one. RQ keeps a
job's results in a stream of their own, which deleting the job leaves in place: until the new
job has a result, its exc_info is the traceback of the request before it (recorded).
"""

import datetime

import rq
from redis import Redis
from rq.job import JobStatus

from .. import settings
from .function import LambdaError

QUEUE = "annotation"
RESULT_TTL = 30 * 60
FAILED_TTL = 3 * 60 * 60
JOB_TIMEOUT = 24 * 60 * 60
WORKER_FUNC = "cvat_twin.lambda_manager.worker.call"


def get_queue():
    return rq.Queue(QUEUE, connection=Redis.from_url(settings.redis_inmem_url()))


def rq_id_for(task):
    return f"autoannotate:task-{task}"


def get_jobs(queue=None):
    """Queued, started, finished, scheduled and deferred lambda jobs: failed ones are left out."""
    queue = queue or get_queue()
    ids = set(
        queue.get_job_ids()
        + queue.started_job_registry.get_job_ids()
        + queue.finished_job_registry.get_job_ids()
        + queue.scheduled_job_registry.get_job_ids()
        + queue.deferred_job_registry.get_job_ids()
    )
    jobs = queue.job_class.fetch_many(list(ids), queue.connection)
    return [j for j in jobs if j and j.meta.get("lambda")]


def enqueue(function, *, threshold, task, mapping, cleanup, conv_mask_to_poly, max_distance,
            job=None, meta=None):  # fmt: skip
    queue = get_queue()
    rq_id = rq_id_for(task)
    # A light-weight guard, not a lock (CVAT's words): two racing requests can both pass.
    rq_job = queue.fetch_job(rq_id)
    conflict = rq_job is not None and rq_job.get_status(refresh=False) not in (
        JobStatus.FAILED,
        JobStatus.FINISHED,
    )
    legacy = any(
        j.kwargs.get("task") == task
        and j.get_status() not in (JobStatus.FINISHED, JobStatus.FAILED)
        for j in get_jobs(queue)
    )
    if conflict or legacy:
        raise LambdaError(f"Only one running request is allowed for the same task #{task}", 409)
    if rq_job is not None:
        rq_job.delete()
    # meta may be a callable: CVAT looks the task (or job) up only here, after the 409 check
    meta = meta() if callable(meta) else meta
    rq_job = queue.create_job(
        WORKER_FUNC,
        job_id=rq_id,
        meta={**(meta or {}), "function_id": function.id, "lambda": True},
        kwargs={
            "function": function,
            "threshold": threshold,
            "task": task,
            "job": job,
            "cleanup": cleanup,
            "conv_mask_to_poly": conv_mask_to_poly,
            "mapping": mapping,
            "max_distance": max_distance,
        },
        timeout=JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILED_TTL,
    )
    queue.enqueue_job(rq_job)
    return rq_job


def fetch(pk):
    rq_job = get_queue().fetch_job(pk)
    if rq_job is None or not rq_job.meta.get("lambda"):
        raise LambdaError(f"{pk} lambda job is not found", 404)
    return rq_job


def _drf_datetime(value):
    # DRF's DateTimeField: RQ's naive UTC made aware, "+00:00" written "Z".
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    text = value.astimezone(datetime.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def call_dict(rq_job):
    """FunctionCallSerializer(LambdaJob(rq_job).to_dict()).data"""
    function = rq_job.kwargs.get("function")
    params = {"id": function.id if function else None, "task": rq_job.kwargs.get("task")}
    if rq_job.kwargs.get("job"):
        params["job"] = rq_job.kwargs["job"]
    threshold = rq_job.kwargs.get("threshold")
    params["threshold"] = None if threshold is None else float(threshold)
    status = rq_job.get_status()
    if status == JobStatus.DEFERRED:
        status = JobStatus.QUEUED
    return {
        "id": rq_job.id,
        "function": params,
        "status": None if status is None else str(getattr(status, "value", status)),
        "progress": rq_job.meta.get("progress", 0),
        "enqueued": _drf_datetime(rq_job.enqueued_at),
        "started": _drf_datetime(rq_job.started_at),
        "ended": _drf_datetime(rq_job.ended_at),
        "exc_info": rq_job.exc_info,
    }
