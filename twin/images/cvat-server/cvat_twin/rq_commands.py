"""`manage.py rqworker` (django-rq's command) and `manage.py workerprobe` (CVAT's
cvat/apps/health/management/commands/workerprobe.py), against the twin's Redis settings.

    python3 ~/manage.py rqworker -v 3 webhooks --worker-class cvat.rqworker.DefaultWorker
    python3 ~/manage.py workerprobe webhooks

The worker runs in this process (no wrapper, no subprocess), so the process supervisord
watches has exactly the command line CVAT's has.
"""

import argparse
import datetime
import importlib
import logging
import os
import platform
import sys

from redis import Redis
from rq import Queue, Worker

from . import settings

# cvat/settings/base.py, CVAT_QUEUES (v2.29.0): the queues RQ_QUEUES defines.
CVAT_QUEUES = (
    "import",
    "export",
    "annotation",
    "webhooks",
    "notifications",
    "quality_reports",
    "analytics_reports",
    "cleaning",
    "chunks",
)

# Django's BaseCommand verbosity -> the level django-rq's rqworker hands to Worker.work().
_LEVELS = {0: "WARNING", 1: "INFO", 2: "INFO", 3: "DEBUG"}
# CVAT's console formatter, as its worker logs show it ("[...] DEBUG rq.worker: ...").
_LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


class CommandError(Exception):
    pass


def _connection():
    return Redis.from_url(settings.redis_inmem_url())


def _import_string(dotted):
    module_name, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CommandError(f"Could not import {dotted!r}: {exc}") from None


def _base_parser(prog):
    # Django's BaseCommand options that CVAT's confs and docs use.
    parser = argparse.ArgumentParser(prog=f"manage.py {prog}")
    parser.add_argument("-v", "--verbosity", type=int, default=1, choices=[0, 1, 2, 3])
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("--traceback", action="store_true")
    parser.add_argument("--no-color", action="store_true")
    return parser


def rqworker(argv):
    parser = _base_parser("rqworker")
    parser.add_argument("args", nargs="*", metavar="queues")
    parser.add_argument("--worker-class")
    parser.add_argument("--queue-class")
    parser.add_argument("--job-class")
    parser.add_argument("--name")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--with-scheduler", action="store_true")
    parser.add_argument("--worker-ttl", type=int, default=420)
    parser.add_argument("--max-jobs", type=int)
    args = parser.parse_args(argv)
    queue_names = args.args or ["default"]
    for name in queue_names:
        if name not in CVAT_QUEUES:
            # django_rq.queues.get_queue: RQ_QUEUES[name]
            raise CommandError(f"Queue {name!r} is not defined in RQ_QUEUES")
    worker_class = _import_string(args.worker_class) if args.worker_class else Worker
    level = _LEVELS[args.verbosity]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    # A handler of our own on rq.worker: rq's setup_loghandlers then adds none of its own.
    for name in ("rq.worker", "rq.scheduler"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
    connection = _connection()
    queues = [Queue(name, connection=connection) for name in queue_names]
    worker = worker_class(
        queues, connection=connection, name=args.name, default_worker_ttl=args.worker_ttl
    )
    worker.work(
        burst=args.burst,
        with_scheduler=args.with_scheduler,
        logging_level=level,
        max_jobs=args.max_jobs,
    )
    return 0


def workerprobe(argv):
    """CVAT's liveness probe: the queue's workers registered in Redis from this host must be
    exactly NUMPROCS, each with a heartbeat younger than its TTL. It enqueues nothing, so a
    worker that was SIGKILLed still counts until its registration expires (TTL + 60 s)."""
    parser = _base_parser("workerprobe")
    parser.add_argument("queue_names", nargs="+", type=str)
    args = parser.parse_args(argv)
    hostname = platform.node()
    connection = _connection()
    for queue_name in args.queue_names:
        if queue_name not in CVAT_QUEUES:
            raise CommandError(f"Queue {queue_name} is not defined")
        workers = [
            w
            for w in Worker.all(connection=connection)
            if queue_name in w.queue_names() and w.hostname == hostname
        ]
        # CVAT compares naive local time with RQ's naive UTC heartbeat and reads .seconds
        # (days ignored); containers run in UTC, so this is what it computes there.
        now = datetime.datetime.now()
        if len(workers) != int(os.getenv("NUMPROCS", 1)) or not all(
            w.last_heartbeat is not None and (now - w.last_heartbeat).seconds < w.worker_ttl
            for w in workers
        ):
            raise CommandError(f"Unhealthy workers in the {queue_name} queue")
    return 0


def run(command, argv):
    """Run a command like Django's BaseCommand.run_from_argv: CommandError -> stderr, exit 1."""
    try:
        return {"rqworker": rqworker, "workerprobe": workerprobe}[command](argv)
    except CommandError as exc:
        sys.stderr.write(f"CommandError: {exc}\n")
        return 1
