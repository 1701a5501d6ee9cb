"""Probes run inside a stack container with its own python3, each printing one JSON line; for
a container without python3 (the real traefik, cvat_ui, postgres, redis and Nuclio dashboard
images are Alpine-based and OPA's is distroless), from a short-lived helper container that
joins its network and PID namespaces (`--network container:<name>` shares its /etc/hosts and
resolver too), from a stack image that has python3 (CVAT's server image).

    prober = Prober(client, helper_image="cvat/server:v2.29.0")
    answer = prober.run(container, "proxy_get", "127.0.0.1:4750", url)   # a ProxyAnswer
    answer.status, answer.error_header, answer.via
    # (407, "Egress proxying is denied to host 'bridge.gateway:8000': ...", "exec")

Each answer is parsed once into its typed, frozen fact (criobe_verify/probe_answers.py).

No tool is assumed in the container beyond python3, not even coreutils' `timeout`: the exec
is bounded by the API call. A missing python3 with no helper image raises ProbeUnavailable
naming the container and the tool, which checks turn into a skip saying so, never into a DNS
or network failure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.resources import files
from typing import Any

import docker
import requests

from criobe_verify.probe_answers import Answer, answer_type, parse_answer

# The program the container runs, sent as text (`python3 -c`): see probe_program.py.
PROGRAM = (files("criobe_verify") / "probe_program.py").read_text(encoding="utf-8")

TOOL = "python3"
log = logging.getLogger("criobe_verify")


class ProbeUnavailable(RuntimeError):
    """The probe cannot run for this container: say which container and which tool."""

    def __init__(self, container: str, reason: str) -> None:
        self.container = container
        super().__init__(f"{container}: {reason}")


def missing_tool(code: int, output: str) -> bool:
    return code in (126, 127) and (
        "executable file not found" in output or "no such file or directory" in output.lower()
    )


_API_CLIENTS: dict[float, docker.APIClient] = {}


def _api(timeout_s: float) -> docker.APIClient:
    """A low-level client whose read timeout bounds the exec (DOCKER_HOST honoured)."""
    if timeout_s not in _API_CLIENTS:
        _API_CLIENTS[timeout_s] = docker.APIClient(
            timeout=timeout_s, **docker.utils.kwargs_from_env()
        )
    return _API_CLIENTS[timeout_s]


def exec_in(container: Any, cmd: list[str], timeout_s: float = 30) -> tuple[int, str]:
    """Run `cmd` in the container; (124, ...) when it outlasts timeout_s (no `timeout` binary
    needed inside). The command may keep running in the container after a timeout."""
    api = _api(timeout_s)
    try:
        exec_id = api.exec_create(container.id, cmd)["Id"]
        output = api.exec_start(exec_id)
        code = api.exec_inspect(exec_id).get("ExitCode")
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return 124, f"timed out after {timeout_s:.0f} s"
    except docker.errors.APIError as exc:
        return 126, str(exc)
    return (code if code is not None else 1), (output or b"").decode("utf-8", "replace")


def _runs(container: Any) -> bool:
    """As the run's Docker snapshot saw it."""
    return getattr(container, "status", "running") == "running"


def _parse(code: int, out: str) -> dict:
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return json.loads(line)
    except ValueError:
        return {"ok": False, "error": f"probe exited {code}: {out.strip()[-300:]!r}"}


Call = tuple[str, ...]  # (probe, *args), as the program's `batch` takes it


class Prober:
    """Probes for the stack's containers; caches which containers lack python3, and which
    calls the run's prefetch was asked for (`declared`: the strict-probes rule reads it)."""

    def __init__(self, client: docker.DockerClient, helper_image: str | None) -> None:
        self.client = client
        self.helper_image = helper_image
        self.without_tool: dict[str, str] = {}  # container name -> why exec could not run
        self._prefetched: dict[tuple[str, Call], Answer] = {}
        self._declared: set[tuple[str, Call]] = set()
        # container id -> why a call needing a slow fact could not even be named
        self._undeclarable: dict[str, str] = {}
        # Resource classes whose declarations failed on a fact (criobe_verify.resources).
        self.undeclarable_classes: set[type] = set()
        self._lock = threading.Lock()
        # container id -> the prefetch batches still running for it
        self._pending: dict[str, list[Future]] = {}

    def prefetch_in_background(
        self,
        plan: dict[Any, list[Call]],
        later: Iterable[tuple[Any, Callable[[], list[Call]]]] = (),
    ) -> None:
        """Each container's planned probes as one batch, every container at once, on
        threads: the run's first checks (host, containers) go on meanwhile, and a probe asked
        before its container's batch is done waits for that batch alone. `later` holds
        (container, calls()) whose calls need a slow fact first (the gateway address): the
        fact is fetched on the batch's thread, not before the run goes on. Every call is
        declared; a container that does not run, or that the batch cannot reach, is left to
        the checks, which explain it."""
        for container, calls in plan.items():
            self.declare(container, calls)
        pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="criobe-probe")
        jobs = [(c, False, (lambda calls=calls: calls)) for c, calls in plan.items() if _runs(c)]
        for container, deferred, make in [*jobs, *((c, True, m) for c, m in later)]:
            future = pool.submit(self._prefetch_one, container, make, deferred)
            self._pending.setdefault(container.id, []).append(future)
        pool.shutdown(wait=False)

    def _prefetch_one(self, container: Any, make: Callable[[], list[Call]], deferred: bool) -> None:
        try:
            calls = [tuple(c) for c in make()]
        except Exception as exc:  # the slow fact failed: the checks explain it
            log.info("probe prefetch for %s skipped: %s", container.name, exc)
            with self._lock:
                self._undeclarable[container.id] = str(exc)
            return
        if deferred:
            self.declare(container, calls)
            if not _runs(container):
                return
        try:
            start = time.monotonic()
            answers = self._run_many(container, calls, 60)
            log.debug(
                "probe batch in %s: %d call(s) in %.2f s (%s)",
                container.name,
                len(calls),
                time.monotonic() - start,
                answers[0].via if answers else "-",
            )
        except Exception as exc:  # ProbeUnavailable: the checks explain it
            log.info("probe prefetch for %s skipped: %s", container.name, exc)
            return
        with self._lock:
            for call, answer in zip(calls, answers, strict=True):
                if answer.keep:
                    self._prefetched[(container.id, call)] = answer

    def _wait_for_prefetch(self, container: Any) -> None:
        for future in self._pending.pop(container.id, []):
            future.result()

    def declare(self, container: Any, calls: Iterable[Call]) -> None:
        """Calls the run's prefetch was asked for in this container (it makes them where the
        container runs; one that does not run is left to the checks, which explain it)."""
        with self._lock:
            self._declared.update((container.id, tuple(c)) for c in calls)

    def declared(self, container: Any, probe: str, *args: str) -> bool:
        """Whether the run's prefetch was asked for this call in this container (after its
        batches are done: a call that needed a slow fact is named on the batch's thread).
        Where that slow fact failed, nothing could be named: any call counts as declared."""
        self._wait_for_prefetch(container)
        with self._lock:
            return (
                container.id,
                (probe, *args),
            ) in self._declared or container.id in self._undeclarable

    def run(self, container: Any, probe: str, *args: str, timeout_s: float = 30) -> Answer:
        """The prefetched answer when there is one (taken: a second run asks again), else
        the probe run now."""
        self._wait_for_prefetch(container)
        with self._lock:
            cached = self._prefetched.pop((container.id, (probe, *args)), None)
        if cached is not None:
            return cached
        return self._run(container, probe, *args, timeout_s=timeout_s)

    def run_many(self, container: Any, calls: list[Call], timeout_s: float = 60) -> list[Answer]:
        """Several probes in one exec (one interpreter start instead of one each)."""
        self._wait_for_prefetch(container)
        keys = [(container.id, tuple(c)) for c in calls]
        with self._lock:
            if keys and all(k in self._prefetched for k in keys):
                return [self._prefetched.pop(k) for k in keys]
        return self._run_many(container, calls, timeout_s)

    # The prefetch's own threads use these: they must not wait for the prefetch.

    def _run(self, container: Any, probe: str, *args: str, timeout_s: float = 30) -> Answer:
        raw, via = self._exec(container, [probe, *args], timeout_s)
        return parse_answer(probe, raw, via)

    def _run_many(self, container: Any, calls: list[Call], timeout_s: float) -> list[Answer]:
        raw, via = self._exec(container, ["batch", json.dumps([list(c) for c in calls])], timeout_s)
        results = raw.get("results") or []
        if not raw.get("ok") or len(results) != len(calls):
            error = raw.get("error", "batch failed")
            return [answer_type(c[0]).failed(error, via) for c in calls]
        return [parse_answer(c[0], r, via) for c, r in zip(calls, results, strict=True)]

    def _exec(self, container: Any, words: list[str], timeout_s: float) -> tuple[dict, str]:
        """(the program's JSON answer, how it ran: "exec" or "helper <image>")."""
        argv = ["python3", "-c", PROGRAM, *words]
        if container.name not in self.without_tool:
            code, out = exec_in(container, argv, timeout_s)
            if not missing_tool(code, out):
                return _parse(code, out), "exec"
            self.without_tool[container.name] = out.strip()[-200:]
        return self._via_helper(container, argv, timeout_s), f"helper {self.helper_image}"

    def _via_helper(self, container: Any, argv: list[str], timeout_s: float) -> dict:
        missing = self.without_tool[container.name]
        if not self.helper_image:
            raise ProbeUnavailable(
                container.name,
                f"has no {TOOL} ({missing}) and no stack image with {TOOL} is available to "
                "probe from its network namespace",
            )
        try:
            helper = self.client.containers.run(
                self.helper_image,
                entrypoint=argv,
                command=[],
                network_mode=f"container:{container.id}",
                pid_mode=f"container:{container.id}",
                labels={"criobe-verify.role": "probe"},
                detach=True,
            )
        except docker.errors.DockerException as exc:
            raise ProbeUnavailable(
                container.name,
                f"has no {TOOL} ({missing}); a helper container from {self.helper_image} "
                f"could not join its namespaces: {exc}",
            ) from None
        try:
            try:
                code = helper.wait(timeout=timeout_s).get("StatusCode", 1)
            except requests.exceptions.RequestException:
                return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
            out = helper.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            return _parse(code, out)
        finally:
            helper.remove(force=True)
