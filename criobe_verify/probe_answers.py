"""What a probe answered, as typed, frozen facts: the probe program's JSON line is read once,
here, and callers read attributes, never its keys.

    >>> answer = parse_answer("proxy_get", {"ok": True, "status": 407, "reason": "Proxy "
    ...     "Authentication Required", "error_header": "Deny: Private Range", "body": ""}, "exec")
    >>> answer.status, answer.error_header, answer.ok, answer.via
    (407, 'Deny: Private Range', True, 'exec')
    >>> parse_answer("resolve", {"ok": False, "error": "[Errno -2] Name does not resolve"}, "exec")
    Resolution(error='[Errno -2] Name does not resolve', via='exec', addresses=())

Every answer has `error` (None when the probe ran and answered; the probe's own error, or why
it could not run: a timeout, an exec that failed) and `via` ("exec", or "helper <image>" for a
container without python3, probed from a helper sharing its namespaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from criobe_verify.nvidia_smi import ComputeApp, Gpu, parse_compute_apps, parse_gpus


@dataclass(frozen=True)
class Answer:
    error: str | None = None
    via: str = ""

    @property
    def ok(self) -> bool:
        """The probe ran and answered (what it answered is the subclass's to say)."""
        return self.error is None

    @property
    def keep(self) -> bool:
        """Whether the run's prefetch keeps it for the check that reads it (else that check
        asks again)."""
        return True

    @classmethod
    def failed(cls, error: str, via: str = "") -> Self:
        """The probe gave no answer: why, in the shape its callers read."""
        return cls(error=error, via=via)

    @classmethod
    def from_json(cls, raw: dict[str, Any], via: str) -> Self:
        if not raw.get("ok") and "error" in raw:
            return cls.failed(str(raw["error"]), via)
        return cls(via=via, **cls._fields(raw))

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Resolution(Answer):
    """`resolve NAME`: the IPv4 addresses the container's resolver gives the name."""

    addresses: tuple[str, ...] = ()

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {"addresses": tuple(raw.get("addresses") or ())}


@dataclass(frozen=True)
class Listening(Answer):
    """`listening HOST:PORT`: whether a TCP connection was accepted (error says why not)."""

    @property
    def accepting(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    state: str  # /proc/<pid>/stat's state letter: R, S, T (stopped), Z, ...

    @property
    def command(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class ProcessList(Answer):
    """`process NAME` / `processes_with WORD`: the matching processes (none is an answer)."""

    processes: tuple[Process, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.processes)

    @property
    def keep(self) -> bool:
        # A process not found at the run's start is looked for again when a check reads it
        # (as the prefetch always did): it may have been starting.
        return self.found or self.error is not None

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "processes": tuple(
                Process(int(p["pid"]), tuple(p["argv"]), str(p["state"]))
                for p in raw.get("processes") or ()
            )
        }


@dataclass(frozen=True)
class ProxyAnswer(Answer):
    """`proxy_get PROXY URL`: what an HTTP proxy (Smokescreen) answered a GET through it;
    error_header is Smokescreen's X-Smokescreen-Error."""

    status: int | None = None
    reason: str = ""
    error_header: str | None = None
    body: str = ""

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": raw.get("status"),
            "reason": raw.get("reason") or "",
            "error_header": raw.get("error_header"),
            "body": raw.get("body") or "",
        }


@dataclass(frozen=True)
class HttpAnswer(Answer):
    """`http_get URL` / `http_request METHOD URL ...`: the status and the body's first 4 KiB
    (an HTTP error status is an answer too)."""

    status: int | None = None
    body: str = ""

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {"status": raw.get("status"), "body": raw.get("body") or ""}


@dataclass(frozen=True)
class ModuleVersion(Answer):
    """`python_module_version MODULE` / `cvat_sdk_window`: an importable module's version and
    file; for cvat-sdk, the server versions its client supports."""

    version: str = ""
    file: str = ""
    supported: tuple[str, ...] = ()

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": raw.get("version") or "",
            "file": raw.get("file") or "",
            "supported": tuple(raw.get("supported") or ()),
        }


@dataclass(frozen=True)
class ProgramInfo:
    """One program as supervisord's getAllProcessInfo gives it."""

    name: str
    statename: str
    group: str = ""
    pid: int | None = None
    start: int | None = None
    now: int | None = None
    description: str = ""


@dataclass(frozen=True)
class SupervisorState(Answer):
    """`supervisor SOCKET`: every program supervisord runs, over its control socket."""

    programs: tuple[ProgramInfo, ...] = ()

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "programs": tuple(
                ProgramInfo(
                    name=p["name"],
                    statename=p["statename"],
                    group=p.get("group") or "",
                    pid=p.get("pid") or None,
                    start=p.get("start"),
                    now=p.get("now"),
                    description=p.get("description") or "",
                )
                for p in raw.get("processes") or ()
            )
        }


def _ran(raw: Any) -> tuple[str | None, str]:
    """(stdout, None) of a command the probe ran, or (None, why it gave nothing)."""
    if not isinstance(raw, dict):
        return None, "not run"
    if raw.get("code") != 0:
        why = (raw.get("err") or raw.get("out") or "").strip()[-200:]
        return None, f"exited {raw.get('code')}: {why}" if why else f"exited {raw.get('code')}"
    return raw.get("out") or "", ""


@dataclass(frozen=True)
class GpuView(Answer):
    """`gpu_use`: what a container shows of NVIDIA GPUs. `apps` is None where nvidia-smi is
    absent or failed (`smi_error` says which); `torch_cuda` None where torch is not there.

    >>> view = parse_answer("gpu_use", {"ok": True, "pids": [1, 7], "devices":
    ...     ["/dev/nvidia0", "/dev/nvidiactl"], "driver_gpus": ["0000:01:00.0"], "smi":
    ...     "/usr/bin/nvidia-smi", "apps": {"code": 0, "out": "4242, 2311\\n", "err": ""}}, "exec")
    >>> view.apps, view.cuda_devices, view.torch_cuda
    ((ComputeApp(pid=4242, used_mib=2311),), ('/dev/nvidia0',), None)
    """

    pids: tuple[int, ...] = ()  # its processes, as its own PID namespace numbers them
    devices: tuple[str, ...] = ()  # /dev/nvidia*
    driver_gpus: tuple[str, ...] = ()  # /proc/driver/nvidia/gpus/<pci address>
    smi: str = ""  # where nvidia-smi is inside; "" where the image has none
    apps: tuple[ComputeApp, ...] | None = None
    smi_error: str = ""
    gpus: tuple[Gpu, ...] = ()
    torch_cuda: bool | None = None
    torch_error: str = ""

    @property
    def keep(self) -> bool:
        # GPU memory is read after the check's warm call: an answer from the run's start
        # that has nvidia-smi is asked again (the devices and torch's view do not change).
        return not self.smi

    @property
    def cuda_devices(self) -> tuple[str, ...]:
        """The GPU device nodes (/dev/nvidia0...), not the control nodes (nvidiactl, -uvm)."""
        return tuple(d for d in self.devices if d.removeprefix("/dev/nvidia").isdigit())

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "pids": tuple(int(p) for p in raw.get("pids") or ()),
            "devices": tuple(raw.get("devices") or ()),
            "driver_gpus": tuple(raw.get("driver_gpus") or ()),
            "smi": raw.get("smi") or "",
        }
        if fields["smi"]:
            apps, why = _ran(raw.get("apps"))
            fields["apps"] = None if apps is None else parse_compute_apps(apps)
            fields["smi_error"] = why
            gpus, _ = _ran(raw.get("gpus"))
            fields["gpus"] = parse_gpus(gpus or "")
        if "torch" in raw:
            out, why = _ran(raw["torch"])
            last = (out or "").strip().splitlines()[-1:] or [""]
            fields["torch_cuda"] = None if out is None else last[0] == "True"
            fields["torch_error"] = why
        return fields


@dataclass(frozen=True)
class WeightsFile(Answer):
    """`model_weights PATH`: a weights file in the container, its size and its digest: sha256
    over the size, the first and the last 8 MiB ("sampled": the whole file where it is no
    larger than 16 MiB), so a multi-GB checkpoint costs two reads, not a full hash.

    >>> w = parse_answer("model_weights", {"ok": True, "exists": True, "size": 3145728,
    ...     "sha256": "ab" * 32, "sampled_mib": 8, "root": ""}, "exec")
    >>> w.exists, w.size_mb, w.digest[:13]
    (True, 3.145728, 'sha256:ababab')
    >>> gone = parse_answer("model_weights", {"ok": True, "exists": False,
    ...     "why": "FileNotFoundError: No such file or directory"}, "exec")
    >>> gone.ok, gone.exists, gone.why
    (True, False, 'FileNotFoundError: No such file or directory')
    """

    exists: bool = False
    is_dir: bool = False
    size_bytes: int = 0
    sha256: str = ""  # hex; sampled as the docstring says
    why: str = ""  # why there is no file

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1_000_000

    @property
    def digest(self) -> str:
        """As the baseline keeps it: sha256:<hex>, the hex of the sampled digest."""
        return f"sha256:{self.sha256}" if self.sha256 else ""

    @classmethod
    def _fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "exists": bool(raw.get("exists")),
            "is_dir": bool(raw.get("dir")),
            "size_bytes": int(raw.get("size") or 0),
            "sha256": str(raw.get("sha256") or ""),
            "why": str(raw.get("why") or ""),
        }


ANSWERS: dict[str, type[Answer]] = {
    "resolve": Resolution,
    "listening": Listening,
    "process": ProcessList,
    "processes_with": ProcessList,
    "proxy_get": ProxyAnswer,
    "http_request": HttpAnswer,
    "http_get": HttpAnswer,
    "python_module_version": ModuleVersion,
    "cvat_sdk_window": ModuleVersion,
    "supervisor": SupervisorState,
    "gpu_use": GpuView,
    "model_weights": WeightsFile,
}


def answer_type(probe: str) -> type[Answer]:
    """The answer a probe of the program gives; a probe this table lacks is a suite bug."""
    try:
        return ANSWERS[probe]
    except KeyError:
        raise ValueError(f"no answer type for probe {probe!r}: add it to ANSWERS") from None


def parse_answer(probe: str, raw: dict[str, Any], via: str) -> Answer:
    return answer_type(probe).from_json(raw, via)
