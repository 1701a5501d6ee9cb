"""The probe program: what runs inside a stack container, one probe per call, printing one
JSON line. criobe_verify.probes reads this file as text and sends it as
`python3 -c <text> <probe> <args...>`; the suite never imports it to run a probe.

    python3 -c "$(cat probe_program.py)" resolve cvat-server
    {"ok": true, "addresses": ["172.23.0.5"]}

It needs nothing but a python3 and its standard library (no coreutils, no pip package), and
keeps to what any python3 the stack images may carry understands: no `from __future__`
(3.6 lacks `annotations`), annotations only of builtin types.
`batch` runs several probes in one interpreter start: the prefetch sends one per container.
The answers' fields are read once, into typed answers, by criobe_verify/probe_answers.py.
"""

import json
import os
import socket
import sys


def resolve(name: str) -> dict:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
        return {"ok": True, "addresses": sorted({i[4][0] for i in infos})}
    except socket.gaierror as exc:
        return {"ok": False, "error": str(exc)}


def listening(hostport: str) -> dict:
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": str(exc)}


def _read(path: str, mode: str = "r"):
    with open(path, mode) as f:
        return f.read()


def _procs():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            argv = _read(f"/proc/{pid}/cmdline", "rb").split(b"\0")
            state = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words:
            yield {"pid": int(pid), "argv": words, "state": state}


def process(name: str) -> dict:
    # the program itself, or a script run by an interpreter (argv[1])
    found = [p for p in _procs() if any(os.path.basename(w) == name for w in p["argv"][:2])]
    return {"ok": bool(found), "processes": found}


def processes_with(word: str) -> dict:
    found = [p for p in _procs() if word in p["argv"]]
    return {"ok": bool(found), "processes": found}


def proxy_get(proxy: str, url: str) -> dict:
    import http.client

    host, port = proxy.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read(4096).decode(errors="replace")
        return {
            "ok": True,
            "status": r.status,
            "reason": r.reason,
            "error_header": r.getheader("X-Smokescreen-Error"),
            "body": body,
        }
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def http_request(method: str, url: str, host_header: str = "", body: str = "") -> dict:
    import urllib.error
    import urllib.request

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


def http_get(url: str, host_header: str = "") -> dict:
    return http_request("GET", url, host_header)


def python_module_version(module: str, attr: str = "__version__") -> dict:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return {"ok": False, "error": f"ImportError: {exc}"}
    return {
        "ok": True,
        "version": str(getattr(mod, attr, "")),
        "file": getattr(mod, "__file__", ""),
    }


def cvat_sdk_window() -> dict:
    found = python_module_version("cvat_sdk")
    if not found["ok"]:
        return found
    from cvat_sdk.core.client import Client

    found["supported"] = [str(v) for v in Client.SUPPORTED_SERVER_VERSIONS]
    return found


def supervisor(socket_path: str) -> dict:
    # supervisorctl's own XML-RPC on supervisord's control socket, without its start-up cost
    import http.client
    import xmlrpc.client

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(10)
            self.sock.connect(socket_path)

    class Transport(xmlrpc.client.Transport):
        def make_connection(self, host):
            return Conn("localhost")

    rpc = xmlrpc.client.ServerProxy("http://localhost", transport=Transport())
    try:
        infos = rpc.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    keys = ("name", "group", "statename", "pid", "start", "now", "description")
    return {"ok": True, "processes": [{k: i.get(k) for k in keys} for i in infos]}


def _run(argv: list, timeout: float = 20) -> dict:
    import subprocess

    try:
        # stdout/stderr=PIPE and universal_newlines: python 3.6 has no capture_output, text
        pipe = subprocess.PIPE
        done = subprocess.run(
            argv,
            stdout=pipe,
            stderr=pipe,
            universal_newlines=True,  # noqa: UP021
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"code": -1, "out": "", "err": f"{type(exc).__name__}: {exc}"}
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr[-500:]}


def gpu_use() -> dict:
    # What this container shows of NVIDIA GPUs, raw: nvidia-smi (absent from most images
    # unless the NVIDIA runtime or CDI mounts it), the device nodes and the driver's /proc
    # entry, and torch's own view where torch is importable. The suite reads it.
    import glob
    import importlib.util
    import shutil

    found = {"ok": True, "pids": [p["pid"] for p in _procs()] + [os.getpid()]}
    found["devices"] = sorted(glob.glob("/dev/nvidia*"))
    gpus = "/proc/driver/nvidia/gpus"
    found["driver_gpus"] = sorted(os.listdir(gpus)) if os.path.isdir(gpus) else []
    smi = shutil.which("nvidia-smi")
    found["smi"] = smi or ""
    if smi:
        fmt = "--format=csv,noheader,nounits"
        found["apps"] = _run([smi, "--query-compute-apps=pid,used_memory", fmt])
        found["gpus"] = _run([smi, "--query-gpu=index,name,driver_version,memory.total", fmt])
    if importlib.util.find_spec("torch") is not None:
        code = "import torch; print(torch.cuda.is_available())"
        found["torch"] = _run([sys.executable, "-c", code], timeout=60)
    return found


def model_weights(path: str, sample_mib: str = "8") -> dict:
    # A weights file as this container has it: its size and a sampled sha256 (the size, the
    # first and the last `sample_mib` MiB; the whole file when it is no larger). From a
    # helper container (no python3 in the function's image) the file is read through the
    # function's root, /proc/1/root (the helper shares its PID namespace, not its mounts).
    import hashlib

    root = ""
    try:
        if os.readlink("/proc/self/ns/mnt") != os.readlink("/proc/1/ns/mnt"):
            root = "/proc/1/root"
    except OSError:
        pass
    full = root + path
    try:
        st = os.stat(full)
    except OSError as exc:
        return {"ok": True, "exists": False, "why": f"{type(exc).__name__}: {exc.strerror}"}
    if os.path.isdir(full):
        return {"ok": True, "exists": True, "dir": True, "size": 0, "root": root}
    chunk = int(sample_mib) * 1024 * 1024
    digest = hashlib.sha256(str(st.st_size).encode() + b"\n")
    try:
        with open(full, "rb") as f:
            if st.st_size <= 2 * chunk:
                digest.update(f.read())
            else:
                digest.update(f.read(chunk))
                f.seek(st.st_size - chunk)
                digest.update(f.read(chunk))
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror} reading {path}"}
    return {
        "ok": True,
        "exists": True,
        "size": st.st_size,
        "sha256": digest.hexdigest(),
        "sampled_mib": int(sample_mib),
        "root": root,
    }


def batch(calls: str) -> dict:
    """Several probes in one interpreter start, at once: they wait on the network (a request
    through Smokescreen, a lookup), so the batch takes its slowest probe's time, not the sum.
    Answers come back in the order of the calls."""
    from concurrent.futures import ThreadPoolExecutor

    todo = json.loads(calls)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(todo)))) as pool:
        results = list(pool.map(lambda c: globals()[c[0]](*c[1:]), todo))
    return {"ok": True, "results": results}


if __name__ == "__main__":  # `python3 -c <this text> <probe> <args...>`
    print(json.dumps(globals()[sys.argv[1]](*sys.argv[2:])))
