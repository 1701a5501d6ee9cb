"""A small supervisord stand-in: runs one configuration's programs with supervisord's
defaults, forwards SIGTERM/SIGINT to the children and exits when they are gone.

    python3 -m cvat_twin.supervisor <conf>      conf: server | worker.<queue> | utils

Configurations mirror CVAT v2.29.0's supervisord/<conf>.conf, which set no autorestart,
startsecs or startretries, so supervisord's defaults apply to every program and the twin keeps
them: a program that exits within startsecs (1 s) is retried after 1, 2, 3 s and enters FATAL
after startretries (3) failures (Smokescreen refusing a bad option: 4750 stays closed while
the container runs); a program that ran longer is restarted only when its exit was unexpected
(autorestart=unexpected, exitcodes=0), so a Smokescreen stopped with SIGTERM (it exits 0)
stays down, and one killed with SIGKILL comes back.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

from . import settings

HOME = os.environ.get("HOME", "/home/django")

# RQ queues with a worker container of their own (docker-compose.yml: cvat_worker_<queue>).
WORKER_QUEUES = (
    "webhooks",
    "annotation",
    "import",
    "export",
    "chunks",
    "quality_reports",
    "analytics_reports",
)


class Program:
    def __init__(self, name, argv, numprocs=1, env=None):
        self.name = name
        self.argv = list(argv)
        self.numprocs = max(1, int(numprocs))
        self.env = dict(env or {})


def _numprocs():
    try:
        return int(os.environ.get("NUMPROCS", "1") or 1)
    except ValueError:
        return 1


def rq_worker(name, queues):
    # The Redis URL goes through the environment (RQ_REDIS_URL), never the command line.
    argv = ["rq", "worker", "--path", HOME, *queues]
    return Program(
        name, argv, numprocs=_numprocs(), env={"RQ_REDIS_URL": settings.redis_inmem_url()}
    )


def cvat_api_server():
    return Program("server", [sys.executable, "-m", "cvat_twin.runserver"])


class ConfigError(Exception):
    pass


def smokescreen():
    # [program:smokescreen] command=smokescreen --listen-ip=127.0.0.1 %(ENV_SMOKESCREEN_OPTS)s
    if "SMOKESCREEN_OPTS" not in os.environ:
        raise ConfigError(
            "Error: Format string 'smokescreen --listen-ip=127.0.0.1 %(ENV_SMOKESCREEN_OPTS)s' "
            "for 'program:smokescreen.command' contains names ('ENV_SMOKESCREEN_OPTS') which "
            "cannot be expanded."
        )
    argv = shlex.split(f"smokescreen --listen-ip=127.0.0.1 {os.environ['SMOKESCREEN_OPTS']}")
    return Program("smokescreen", argv)


# Configurations whose supervisord file has a [program:smokescreen] section.
WITH_SMOKESCREEN = {"server", "worker.webhooks", "worker.annotation", "worker.import",
                    "worker.export", "worker.chunks"}  # fmt: skip


def _configs():
    configs = {
        "server": [cvat_api_server],
        "utils": [lambda: rq_worker("rqworker", ["notifications", "cleaning"])],
    }
    for queue in WORKER_QUEUES:
        configs[f"worker.{queue}"] = [lambda q=queue: rq_worker(f"rqworker-{q}", [q])]
    for conf in WITH_SMOKESCREEN:
        configs[conf].append(smokescreen)
    return configs


CONFIGS = _configs()


def log(level, msg):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {level} {msg}", file=sys.stderr, flush=True)


# supervisord's defaults for [program:x] sections that set none of these.
STARTSECS = 1.0
STARTRETRIES = 3
EXITCODES = (0,)


class Child:
    def __init__(self, program, index):
        self.program = program
        self.name = program.name if program.numprocs == 1 else f"{program.name}_{index}"
        self.proc = None
        self.started_at = 0.0
        self.restart_at = 0.0
        self.failed_starts = 0
        self.running = False  # stayed up for startsecs
        self.done = False  # EXITED (expected) or FATAL: never started again

    def spawn(self):
        env = dict(os.environ)
        env.update(self.program.env)
        self.proc = subprocess.Popen(self.program.argv, env=env, cwd=HOME)
        self.started_at = time.monotonic()
        log("INFO", f"spawned: '{self.name}' with pid {self.proc.pid}")


class Supervisor:
    def __init__(self, programs):
        self.children = [Child(p, i) for p in programs for i in range(p.numprocs)]
        self.stopping = False

    def _on_signal(self, signum, _frame):
        if not self.stopping:
            log("WARN", f"received {signal.Signals(signum).name} indicating exit request")
        self.stopping = True

    def run(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for child in self.children:
            child.spawn()
        by_pid = {c.proc.pid: c for c in self.children}
        while not self.stopping:
            self._reap(by_pid)
            now = time.monotonic()
            for child in self.children:
                if child.proc is None and not child.done and now >= child.restart_at:
                    child.spawn()
                    child.running = False
                    by_pid[child.proc.pid] = child
                elif (
                    child.proc is not None
                    and not child.running
                    and now - child.started_at >= STARTSECS
                ):
                    child.running = True
                    child.failed_starts = 0
                    log(
                        "INFO",
                        f"success: {child.name} entered RUNNING state, process has stayed "
                        f"up for > than {STARTSECS:.0f} seconds (startsecs)",
                    )
            time.sleep(0.1)
        return self._shutdown(by_pid)

    def _reap(self, by_pid):
        # As PID 1 we also reap orphans that are not our children.
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = by_pid.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            child.proc.returncode = code
            child.proc = None
            if self.stopping:
                log("INFO", f"stopped: {child.name} (exit status {code})")
                continue
            if not child.running:
                # BACKOFF: died before startsecs; retried after 1, 2, 3 s, then FATAL.
                child.failed_starts += 1
                log("INFO", f"exited: {child.name} (exit status {code}; not expected)")
                if child.failed_starts > STARTRETRIES:
                    child.done = True
                    log(
                        "INFO",
                        f"gave up: {child.name} entered FATAL state, too many start retries "
                        "too quickly",
                    )
                else:
                    child.restart_at = time.monotonic() + child.failed_starts
                continue
            expected = code in EXITCODES
            log(
                "INFO",
                f"exited: {child.name} (exit status {code}; {'expected' if expected else 'not expected'})",
            )
            # autorestart=unexpected
            child.done = expected
            child.restart_at = time.monotonic()

    def _shutdown(self, by_pid):
        for child in self.children:
            if child.proc is not None:
                log("INFO", f"waiting for {child.name} to die")
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8
        while by_pid and time.monotonic() < deadline:
            self._reap(by_pid)
            time.sleep(0.1)
        for child in list(by_pid.values()):
            log("WARN", f"killing {child.name} (pid {child.proc.pid}) with SIGKILL")
            child.proc.kill()
        self._reap(by_pid)
        return 0


def main(argv):
    if len(argv) != 1:
        print("usage: python3 -m cvat_twin.supervisor <conf>", file=sys.stderr)
        return 2
    conf = argv[0]
    factories = CONFIGS.get(conf)
    if factories is None:
        print(f"Error: could not find config file supervisord/{conf}.conf", file=sys.stderr)
        return 2
    try:
        programs = [factory() for factory in factories]
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    log("INFO", f"supervisord twin started with conf {conf!r}")
    return Supervisor(programs).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
