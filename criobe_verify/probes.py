"""Probes run inside a stack container with its own python3, each printing one JSON line; for
a container without python3 (the real traefik, cvat_ui, postgres, redis and Nuclio dashboard
images are Alpine-based and OPA's is distroless), from a short-lived helper container that
joins its network and PID namespaces (`--network container:<name>` shares its /etc/hosts and
resolver too), from a stack image that has python3 (CVAT's server image).

    prober = Prober(client, helper_image="cvat/server:v2.29.0")
    result = prober.run(container, "proxy_get", "127.0.0.1:4750", url)
    result["status"], result["error_header"], result["via"]
    # (407, "Egress proxying is denied to host 'bridge.gateway:8000': ...", "exec")

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
from typing import Any

import docker
import requests

PROBES = r"""
import json, os, socket, sys

def resolve(name):
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
        return {"ok": True, "addresses": sorted({i[4][0] for i in infos})}
    except socket.gaierror as exc:
        return {"ok": False, "error": str(exc)}

def listening(hostport):
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": str(exc)}

def _procs():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words:
            yield {"pid": int(pid), "argv": words, "state": state}

def process(name):
    # the program itself, or a script run by an interpreter (argv[1])
    found = [p for p in _procs() if any(os.path.basename(w) == name for w in p["argv"][:2])]
    return {"ok": bool(found), "processes": found}

def processes_with(word):
    found = [p for p in _procs() if word in p["argv"]]
    return {"ok": bool(found), "processes": found}

def proxy_get(proxy, url):
    import http.client
    host, port = proxy.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read(4096).decode(errors="replace")
        return {"ok": True, "status": r.status, "reason": r.reason,
                "error_header": r.getheader("X-Smokescreen-Error"), "body": body}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

def http_request(method, url, host_header="", body=""):
    import urllib.request, urllib.error
    headers = {"Host": host_header} if host_header else {}
    data = None
    if method != "GET":
        data = body.encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return {"ok": True, "status": r.status, "body": r.read(4096).decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        return {"ok": True, "status": exc.code, "body": exc.read(4096).decode(errors="replace")}
    except (OSError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

def http_get(url, host_header=""):
    return http_request("GET", url, host_header)

def python_module_version(module, attr="__version__"):
    import importlib
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return {"ok": False, "error": f"ImportError: {exc}"}
    return {"ok": True, "version": str(getattr(mod, attr, "")), "file": getattr(mod, "__file__", "")}

def cvat_sdk_window():
    found = python_module_version("cvat_sdk")
    if not found["ok"]:
        return found
    from cvat_sdk.core.client import Client
    found["supported"] = [str(v) for v in Client.SUPPORTED_SERVER_VERSIONS]
    return found

def supervisor(socket_path):
    # supervisorctl's own XML-RPC on supervisord's control socket, without its start-up cost
    import http.client, xmlrpc.client
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(10)
            self.sock.connect(socket_path)
    class Transport(xmlrpc.client.Transport):
        def make_connection(self, host):
            return Conn("localhost")
    try:
        infos = xmlrpc.client.ServerProxy("http://localhost", transport=Transport()).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    keys = ("name", "group", "statename", "pid", "start", "now", "description")
    return {"ok": True, "processes": [{k: i.get(k) for k in keys} for i in infos]}

def batch(calls):
    return {"ok": True, "results": [globals()[c[0]](*c[1:]) for c in json.loads(calls)]}

print(json.dumps(globals()[sys.argv[1]](*sys.argv[2:])))
"""

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


def _parse(code: int, out: str) -> dict:
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return json.loads(line)
    except ValueError:
        return {"ok": False, "error": f"probe exited {code}: {out.strip()[-300:]!r}"}


class Prober:
    """Probes for the stack's containers; caches which containers lack python3."""

    def __init__(self, client: docker.DockerClient, helper_image: str | None) -> None:
        self.client = client
        self.helper_image = helper_image
        self.without_tool: dict[str, str] = {}  # container name -> why exec could not run
        self._prefetched: dict[tuple[str, tuple[str, ...]], dict] = {}
        self._lock = threading.Lock()
        # container id -> the prefetch batches still running for it
        self._pending: dict[str, list[Future]] = {}

    def prefetch_in_background(
        self,
        plan: dict[Any, list[tuple[str, ...]]],
        later: Iterable[tuple[Any, Callable[[], list[tuple[str, ...]]]]] = (),
    ) -> None:
        """Each container's planned probes as one batch, every container at once, on
        threads: the run's first checks (host, containers) go on meanwhile, and a probe asked
        before its container's batch is done waits for that batch alone. `later` holds
        (container, calls()) whose calls need a slow fact first (the gateway address): the
        fact is fetched on the batch's thread, not before the run goes on. A container the
        batch cannot reach is left to the checks, which explain it."""
        pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="criobe-probe")
        jobs = [(c, (lambda calls=calls: calls)) for c, calls in plan.items()]
        for container, make in [*jobs, *later]:
            future = pool.submit(self._prefetch_one, container, make)
            self._pending.setdefault(container.id, []).append(future)
        pool.shutdown(wait=False)

    def _prefetch_one(self, container: Any, make: Callable[[], list[tuple[str, ...]]]) -> None:
        try:
            calls = make()
            start = time.monotonic()
            results = self._run_many(container, calls, 60)
            log.debug(
                "probe batch in %s: %d call(s) in %.2f s (%s)",
                container.name,
                len(calls),
                time.monotonic() - start,
                results[0].get("via") if results else "-",
            )
        except Exception as exc:  # ProbeUnavailable, or the slow fact failing: checks explain
            log.info("probe prefetch for %s skipped: %s", container.name, exc)
            return
        with self._lock:
            for call, result in zip(calls, results, strict=True):
                if result.get("ok") or "error" in result:
                    self._prefetched[(container.id, tuple(call))] = result

    def _wait_for_prefetch(self, container: Any) -> None:
        for future in self._pending.pop(container.id, []):
            future.result()

    def run(self, container: Any, probe: str, *args: str, timeout_s: float = 30) -> dict:
        self._wait_for_prefetch(container)
        with self._lock:
            cached = self._prefetched.pop((container.id, (probe, *args)), None)
        if cached is not None:
            return cached
        return self._run(container, probe, *args, timeout_s=timeout_s)

    def run_many(
        self, container: Any, calls: list[tuple[str, ...]], timeout_s: float = 60
    ) -> list[dict]:
        """Several probes in one exec (one interpreter start instead of one each)."""
        self._wait_for_prefetch(container)
        keys = [(container.id, tuple(c)) for c in calls]
        with self._lock:
            if keys and all(k in self._prefetched for k in keys):
                return [self._prefetched.pop(k) for k in keys]
        return self._run_many(container, calls, timeout_s)

    # The prefetch's own threads use these: they must not wait for the prefetch.

    def _run(self, container: Any, probe: str, *args: str, timeout_s: float = 30) -> dict:
        argv = ["python3", "-c", PROBES, probe, *args]
        if container.name not in self.without_tool:
            code, out = exec_in(container, argv, timeout_s)
            if not missing_tool(code, out):
                return {**_parse(code, out), "via": "exec"}
            self.without_tool[container.name] = out.strip()[-200:]
        return {
            **self._via_helper(container, argv, timeout_s),
            "via": f"helper {self.helper_image}",
        }

    def _run_many(
        self, container: Any, calls: list[tuple[str, ...]], timeout_s: float
    ) -> list[dict]:
        result = self._run(
            container, "batch", json.dumps([list(c) for c in calls]), timeout_s=timeout_s
        )
        if not result.get("ok") or len(result.get("results") or []) != len(calls):
            return [{"ok": False, "error": result.get("error", "batch failed")} for _ in calls]
        via = result.get("via")
        return [{**r, "via": via} for r in result["results"]]

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
