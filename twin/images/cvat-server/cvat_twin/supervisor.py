"""A small supervisord stand-in: runs one configuration's programs, restarts a child that
dies, forwards SIGTERM/SIGINT to the children and exits when they are gone.

    python3 -m cvat_twin.supervisor <conf>      conf: server | worker.<queue> | utils

Configurations mirror CVAT v2.29.0's supervisord/<conf>.conf; extend CONFIGS (or
PROGRAM_FACTORIES) to add programs, e.g. a Smokescreen stand-in.
"""

import contextlib
import os
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


def _configs():
    configs = {
        "server": [cvat_api_server],
        "utils": [lambda: rq_worker("rqworker", ["notifications", "cleaning"])],
    }
    for queue in WORKER_QUEUES:
        configs[f"worker.{queue}"] = [lambda q=queue: rq_worker(f"rqworker-{q}", [q])]
    return configs


CONFIGS = _configs()


def log(level, msg):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {level} {msg}", file=sys.stderr, flush=True)


class Child:
    def __init__(self, program, index):
        self.program = program
        self.name = program.name if program.numprocs == 1 else f"{program.name}_{index}"
        self.proc = None
        self.started_at = 0.0
        self.backoff = 1.0
        self.restart_at = 0.0

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
                if child.proc is None and now >= child.restart_at and not self.stopping:
                    child.spawn()
                    by_pid[child.proc.pid] = child
            time.sleep(0.2)
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
            lived = time.monotonic() - child.started_at
            child.backoff = 1.0 if lived > 10 else min(child.backoff * 2, 10.0)
            child.restart_at = time.monotonic() + child.backoff
            log(
                "WARN",
                f"exited: {child.name} (exit status {code}; not expected), "
                f"restarting in {child.backoff:.0f} s",
            )

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
    programs = [factory() for factory in factories]
    log("INFO", f"supervisord twin started with conf {conf!r}")
    return Supervisor(programs).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
