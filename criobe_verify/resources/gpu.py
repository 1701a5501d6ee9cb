"""GPUs, where the lab needs one: how Docker gives a function's container a GPU, whether the
function uses it, and what the stack's host has, as facts with the diagnosis of each way they
can be wrong (cvat-ai/cvat#2489, #1997: functions that answer, silently on the CPU).

    access = GpuAccess.of(container.attrs)      # --gpus, CDI devices, or the NVIDIA runtime
    gpu = FunctionGpu(find, prober, fn, asked, host, strict=True)
    expect(gpu.access.has_gpu, gpu.why_no_gpu)
    use = gpu.use()                              # after a warm call
    expect(use.on_gpu, lambda: gpu.why_not_using(use))

Docker gives a container GPUs three ways: a device request (`docker run --gpus`, compose's
`deploy.resources.reservations.devices`, Nuclio's local platform for a function.yaml with
`resources.limits: nvidia.com/gpu`: HostConfig.DeviceRequests, driver "nvidia" or "" with the
"gpu" capability), a CDI device (`--device nvidia.com/gpu=all`, Docker ≥ 25: a device request
with driver "cdi"), or the NVIDIA runtime (HostConfig.Runtime "nvidia", which gives the GPUs
NVIDIA_VISIBLE_DEVICES names; CUDA images set it to "all").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.nvidia_smi import ComputeApp, Gpu
from criobe_verify.probe_answers import GpuView
from criobe_verify.profile import Function, Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts

GPU_LIMIT = "nvidia.com/gpu"
# NVIDIA_VISIBLE_DEVICES values under which the NVIDIA runtime gives no GPU.
NO_DEVICES = ("", "void", "none")


def _env(attrs: Mapping[str, Any]) -> dict[str, str]:
    pairs = (e.partition("=") for e in (attrs.get("Config") or {}).get("Env") or ())
    return {k: v for k, _, v in pairs}


@dataclass(frozen=True)
class GpuAccess:
    """The GPUs Docker gives a container, each way named as `docker run` would say it.

    >>> GpuAccess.of({"HostConfig": {"DeviceRequests": [
    ...     {"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}}).ways
    ('device request --gpus all',)
    >>> GpuAccess.of({"HostConfig": {"DeviceRequests": [{"Driver": "cdi",
    ...     "DeviceIDs": ["nvidia.com/gpu=all"]}]}}).ways
    ('CDI device nvidia.com/gpu=all',)
    >>> GpuAccess.of({"HostConfig": {"Runtime": "nvidia"},
    ...     "Config": {"Env": ["NVIDIA_VISIBLE_DEVICES=0"]}}).ways
    ('runtime nvidia with NVIDIA_VISIBLE_DEVICES=0',)
    >>> none = GpuAccess.of({"HostConfig": {"Runtime": "runc", "DeviceRequests": None}})
    >>> none.has_gpu, none.describe()
    (False, 'no device request (--gpus), no CDI device, runtime runc')
    """

    ways: tuple[str, ...]
    runtime: str
    # Why a way that looks like a GPU gives none (NVIDIA_VISIBLE_DEVICES=void, --gpus 0).
    empty: tuple[str, ...] = ()

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> GpuAccess:
        host = attrs.get("HostConfig") or {}
        ways: list[str] = []
        empty: list[str] = []
        for request in host.get("DeviceRequests") or ():
            driver = request.get("Driver") or ""
            ids = list(request.get("DeviceIDs") or ())
            caps = {c for group in request.get("Capabilities") or () for c in group}
            if driver == "cdi":
                ways += [f"CDI device {i}" for i in ids if i.startswith("nvidia.com/gpu")]
            elif driver == "nvidia" or "gpu" in caps:
                count = request.get("Count") or 0
                if ids:
                    ways.append(f"device request --gpus device={','.join(ids)}")
                elif count:
                    ways.append(f"device request --gpus {'all' if count < 0 else count}")
                else:
                    empty.append("a GPU device request for 0 GPUs")
        runtime = host.get("Runtime") or "runc"
        if runtime == "nvidia":
            visible = _env(attrs).get("NVIDIA_VISIBLE_DEVICES", "")
            if visible.strip().lower() in NO_DEVICES:
                empty.append(f"runtime nvidia with NVIDIA_VISIBLE_DEVICES={visible!r}")
            else:
                ways.append(f"runtime nvidia with NVIDIA_VISIBLE_DEVICES={visible}")
        return cls(tuple(ways), runtime, tuple(empty))

    @property
    def has_gpu(self) -> bool:
        return bool(self.ways)

    def describe(self) -> str:
        if self.ways:
            return ", ".join(self.ways)
        found = [*self.empty, "no device request (--gpus)", "no CDI device"]
        if not any(e.startswith("runtime") for e in self.empty):
            found.append(f"runtime {self.runtime}")
        return ", ".join(found)


def asked_gpus(entry: Mapping[str, Any] | None) -> str | None:
    """The GPU limit a function's function.yaml asks for, as the dashboard has its spec
    (spec.resources.limits["nvidia.com/gpu"]); None where it asks for none."""
    spec = (entry or {}).get("spec") or {}
    value = ((spec.get("resources") or {}).get("limits") or {}).get(GPU_LIMIT)
    return None if value in (None, "", 0, "0") else str(value)


def host_pids(container: Any) -> set[int]:
    """The container's processes as the host numbers them (`docker top`), which is how
    nvidia-smi on the host lists them; empty where Docker cannot say."""
    try:
        top = container.top()
    except Exception:  # a stopped container, an engine refusing: no pids to match
        return set()
    titles = top.get("Titles") or []
    if "PID" not in titles:
        return set()
    at = titles.index("PID")
    return {int(row[at]) for row in top.get("Processes") or () if str(row[at]).isdigit()}


@dataclass(frozen=True)
class HostGpus:
    """The stack host's NVIDIA GPUs (nvidia-smi there), and whether Docker has the NVIDIA
    runtime (`docker info`'s Runtimes).

    >>> from criobe_verify.nvidia_smi import parse_compute_apps, parse_gpus
    >>> host = HostGpus(parse_gpus("0, NVIDIA A10, 550.54.14, 23028"),
    ...     parse_compute_apps("4242, 9000\\n977, 6000"), ("nvidia", "runc"))
    >>> host.report()
    'GPU 0: NVIDIA A10, 23028 MiB; driver 550.54.14; Docker runtimes: nvidia, runc'
    >>> host.held_by({"pth-lama": {4242}, "pth-yolo-gridpose": {1}})
    {'pth-lama': 9000, 'pth-yolo-gridpose': 0}
    """

    gpus: tuple[Gpu, ...]
    # Processes holding GPU memory; None where nvidia-smi could not list them.
    apps: tuple[ComputeApp, ...] | None
    runtimes: tuple[str, ...] = ()
    # Why nvidia-smi gave nothing: "not found" (no NVIDIA driver here), or its error.
    smi_error: str = ""
    smi_missing: bool = False

    @property
    def present(self) -> bool:
        return bool(self.gpus)

    @property
    def driver(self) -> str:
        return ", ".join(sorted({g.driver for g in self.gpus})) or "?"

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes

    @property
    def total_mib(self) -> int:
        return sum(g.memory_mib for g in self.gpus)

    def report(self) -> str:
        gpus = "; ".join(f"GPU {g.index}: {g.name}, {g.memory_mib} MiB" for g in self.gpus)
        return (
            f"{gpus or 'no NVIDIA GPU'}; driver {self.driver}; Docker runtimes: "
            f"{', '.join(self.runtimes) or '?'}"
        )

    def held_by(self, pids: Mapping[str, set[int]]) -> dict[str, int]:
        """MiB each container holds (by its host pids); nothing where apps are unknown."""
        apps = self.apps or ()
        return {name: sum(a.used_mib for a in apps if a.pid in own) for name, own in pids.items()}

    def why_driver_broken(self) -> Diagnosis:
        return Diagnosis(
            "host",
            "nvidia-smi lists no GPU",
            observed=self.smi_error or "an empty list",
            expected="nvidia-smi listing the host's GPUs",
            consequence="no function can be given a GPU: they run on the CPU",
            fix="install (or reload) the NVIDIA driver matching its libraries; reboot after "
            "a driver update",
        )

    def why_too_much_held(self, held: Mapping[str, int], share_max: float) -> Diagnosis:
        total, used = self.total_mib, sum(held.values())
        each = ", ".join(f"{name} {mib} MiB" for name, mib in held.items() if mib)
        return Diagnosis(
            "host",
            f"the functions hold {used} MiB of the GPUs' {total} MiB ({used / total:.0%})",
            observed=each,
            expected=f"at most {share_max:.0%} ([host] gpu_memory_share_max)",
            consequence="the next model to load, or a larger image, runs the GPU out of "
            "memory (CUDA out of memory: the guide warns of it with several models)",
            fix="deploy fewer models on this GPU (SAM ViT-H alone takes several GB), or "
            "waive host/gpu-memory-held-by-functions for a GPU known to be large enough",
        )


@dataclass(frozen=True)
class GpuUse:
    """Whether a function uses its GPU: True, False, or None where nothing could tell, and
    which proof said so."""

    on_gpu: bool | None
    proof: str
    held_mib: int = 0


class FunctionGpu(Resource):
    """A function's GPU: what Docker gives its container, and what its process does with it."""

    parameter = "gpu_function"

    def __init__(
        self,
        find: Any,
        prober: Any,
        fn: Function,
        asked: str | None,
        host: HostGpus | None,
        *,
        strict: bool,
    ) -> None:
        super().__init__(fn.container, find, prober, strict=strict)
        self.fn, self.asked, self.host = fn, asked, host

    @classmethod
    def probes(cls, param: Function, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        if facts.function_port(param.name) is not None:
            yield Declared(param.container, ("gpu_use",))

    @cached_property
    def access(self) -> GpuAccess:
        return GpuAccess.of(self.container.attrs)

    def view(self) -> GpuView:
        """What the container shows of its GPU, read now (after the check's warm call)."""
        return self._probe("gpu_use")

    def use(self) -> GpuUse:
        return judge_use(self.view(), host_pids(self.container), self.host)

    def why_no_gpu(self) -> Diagnosis:
        path = self.fn.path or "serverless/<...>/nuclio"
        asked = self.asked is not None
        return Diagnosis(
            self.fn.container,
            f"{self.fn.name} runs on the CPU: Docker gives its container no GPU",
            observed=self.access.describe(),
            why=f"its function.yaml asks for {GPU_LIMIT}: {self.asked}, yet Docker gave none"
            if asked
            else f"its function.yaml asks for no GPU (no spec.resources.limits {GPU_LIMIT})",
            expected='a GPU (the profile says gpu = "required")',
            consequence="it answers, many times slower: its GPU latency budget fails and the "
            "bridge's stages wait on it (cvat-ai/cvat#2489)",
            fix=f"redeploy it after installing the NVIDIA Container Toolkit (docker info "
            f"lists the nvidia runtime): nuctl deploy --project-name cvat --path {path} "
            "--platform local"
            if asked
            else f"deploy it with function-gpu.yaml: nuctl deploy --project-name cvat --path "
            f"{path} --file {path}/function-gpu.yaml --platform local",
        )

    def why_not_using(self, use: GpuUse) -> Diagnosis:
        return Diagnosis(
            self.fn.container,
            f"{self.fn.name} runs on the CPU: its container has a GPU "
            f"({self.access.describe()}) that it does not use",
            observed=use.proof,
            expected="its process holding GPU memory after a warm call",
            consequence="it answers, many times slower (cvat-ai/cvat#1997)",
            fix="an image with CUDA-enabled torch (not the CPU wheel), the model moved to "
            f"'cuda' in main.py's init_context; docker logs {self.fn.container}",
        )


def _memory_unreadable(view: GpuView) -> str:
    if not view.smi:
        return "the image has no nvidia-smi"
    if view.apps is None:
        return f"nvidia-smi failed ({view.smi_error})"
    return "nvidia-smi inside lists no process (it cannot see its PID namespace's)"


def judge_use(view: GpuView, pids: set[int], host: HostGpus | None) -> GpuUse:
    """Whether the function's process uses the GPU. Best proof first: its process holding
    GPU memory (nvidia-smi in its container, or on the host where the host's view is the
    engine's); where no process list can be read, CUDA visible inside (torch, else the
    device nodes and the driver's /proc entry).

    >>> from criobe_verify.probe_answers import parse_answer
    >>> smi = {"ok": True, "pids": [1], "devices": ["/dev/nvidia0"], "smi": "nvidia-smi",
    ...        "apps": {"code": 0, "out": "4242, 2311", "err": ""}}
    >>> judge_use(parse_answer("gpu_use", smi, "exec"), {4242}, None)
    GpuUse(on_gpu=True, proof='its process holds 2311 MiB (nvidia-smi --query-compute-apps in its container)', held_mib=2311)
    >>> judge_use(parse_answer("gpu_use", smi, "exec"), {77}, None).on_gpu
    False
    """
    if view.error is not None:
        return GpuUse(None, f"the probe in its container failed: {view.error}")
    if view.via != "exec":
        return GpuUse(None, f"probed {view.via}, which does not have the function's devices")
    inside = [a for a in view.apps or () if a.pid in pids or a.pid in view.pids]
    if inside:
        held = sum(a.used_mib for a in inside)
        return GpuUse(
            True, f"its process holds {held} MiB (nvidia-smi --query-compute-apps in its "
            "container)", held
        )  # fmt: skip
    on_host = [a for a in (host.apps if host else None) or () if a.pid in pids]
    if on_host:
        held = sum(a.used_mib for a in on_host)
        return GpuUse(
            True, f"its process holds {held} MiB (nvidia-smi --query-compute-apps on the "
            "host)", held
        )  # fmt: skip
    if view.apps:  # nvidia-smi inside sees processes, and its own are not among them
        listed = ", ".join(f"pid {a.pid} {a.used_mib} MiB" for a in view.apps)
        return GpuUse(False, f"nvidia-smi in its container lists {listed}, none of its own")
    if host is not None and host.apps is not None:
        return GpuUse(False, "nvidia-smi on the host lists no process of its container")
    why = _memory_unreadable(view)
    if view.torch_cuda is not None:
        said = f"torch.cuda.is_available() is {view.torch_cuda} inside"
        return GpuUse(view.torch_cuda, f"CUDA visible: {said}; its GPU memory unread: {why}")
    if view.cuda_devices and view.driver_gpus:
        return GpuUse(
            True, f"CUDA visible: {', '.join(view.cuda_devices)} and the driver's "
            f"/proc/driver/nvidia/gpus inside (no torch to ask); its GPU memory unread: {why}"
        )  # fmt: skip
    seen = ", ".join(view.devices) or "no /dev/nvidia*"
    return GpuUse(False, f"no NVIDIA GPU visible inside ({seen}); {why}")
