"""GPUs without a GPU: the three ways Docker gives one and its absence, read from recorded and
synthetic `docker inspect` attrs; nvidia-smi's answers; the `gpu_use` probe run the way a
container runs it, with a fake nvidia-smi and a fake torch on its path; which proof judges a
function's use; and which checks a profile collects (none on the CPU-only twin).

The real thing (a function on an NVIDIA GPU) is not proven here: see selftests marked `gpu`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from criobe_verify.nvidia_smi import parse_compute_apps, parse_gpus
from criobe_verify.probe_answers import GpuView, parse_answer
from criobe_verify.probes import PROGRAM
from criobe_verify.resources.gpu import GpuAccess, HostGpus, asked_gpus, judge_use

# HostConfig as Docker 27 records each way (nuclio's local platform: --gpus all).
GPUS_ALL = {
    "HostConfig": {
        "Runtime": "runc",
        "DeviceRequests": [
            {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}
        ],
    }
}
GPUS_DEVICE = {
    "HostConfig": {
        "DeviceRequests": [
            {
                "Driver": "nvidia",
                "Count": 0,
                "DeviceIDs": ["0", "GPU-5d1c"],
                "Capabilities": [["gpu"]],
            }
        ]
    }
}
CDI = {
    "HostConfig": {
        "Runtime": "runc",
        "DeviceRequests": [
            {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": None}
        ],
    }
}
RUNTIME = {
    "HostConfig": {"Runtime": "nvidia", "DeviceRequests": None},
    "Config": {"Env": ["PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"]},
}
RUNTIME_VOID = {
    "HostConfig": {"Runtime": "nvidia"},
    "Config": {"Env": ["NVIDIA_VISIBLE_DEVICES=void"]},
}
# The twin's function containers, as `docker inspect` shows them (CPU only).
TWIN = {"HostConfig": {"Runtime": "runc", "DeviceRequests": None, "Devices": []},
        "Config": {"Env": ["PATH=/usr/local/bin"]}}  # fmt: skip


@pytest.mark.parametrize(
    ("attrs", "ways"),
    [
        (GPUS_ALL, ("device request --gpus all",)),
        (GPUS_DEVICE, ("device request --gpus device=0,GPU-5d1c",)),
        (CDI, ("CDI device nvidia.com/gpu=all",)),
        (RUNTIME, ("runtime nvidia with NVIDIA_VISIBLE_DEVICES=all",)),
        (RUNTIME_VOID, ()),
        (TWIN, ()),
    ],
    ids=["gpus-all", "gpus-device", "cdi", "runtime", "runtime-void", "twin"],
)
def test_each_way_docker_gives_a_gpu_is_read(attrs, ways):
    access = GpuAccess.of(attrs)
    assert access.ways == ways
    assert access.has_gpu == bool(ways)


def test_no_gpu_is_described_as_docker_would_be_asked():
    assert GpuAccess.of(TWIN).describe() == (
        "no device request (--gpus), no CDI device, runtime runc"
    )
    assert "NVIDIA_VISIBLE_DEVICES='void'" in GpuAccess.of(RUNTIME_VOID).describe()


def test_the_dashboards_spec_says_whether_the_function_asked_for_a_gpu():
    asked = {"spec": {"resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "2"}}}}
    assert asked_gpus(asked) == "1"
    assert asked_gpus({"spec": {"resources": {}}}) is None
    assert asked_gpus(None) is None


def test_nvidia_smi_answers_parse():
    assert [(a.pid, a.used_mib) for a in parse_compute_apps("12, 300\n13, [N/A]\n\n")] == [
        (12, 300),
        (13, 0),
    ]
    assert parse_compute_apps("No running processes found\n") == ()
    gpus = parse_gpus("0, NVIDIA RTX A6000, 550.54.14, 49140\n1, Tesla T4, 550.54.14, 15360\n")
    assert [(g.index, g.name, g.memory_mib) for g in gpus] == [
        (0, "NVIDIA RTX A6000", 49140),
        (1, "Tesla T4", 15360),
    ]
    assert parse_gpus("0, NVIDIA A100-SXM4-80GB, MIG, 550.54.14, 81920")[0].name == (
        "NVIDIA A100-SXM4-80GB, MIG"
    )


FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-compute-apps=*) printf '%s\\n' "$FAKE_APPS" ;;
  --query-gpu=*) echo "0, NVIDIA A10, 550.54.14, 23028" ;;
esac
exit "${FAKE_RC:-0}"
"""


def gpu_probe(tmp_path: Path, *, smi: bool, torch: str | None = None, **env: str) -> GpuView:
    """The probe as a container's exec runs it, with a fake nvidia-smi and torch on its paths."""
    bin_dir, lib_dir = tmp_path / "bin", tmp_path / "lib"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if smi:
        (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
        (bin_dir / "nvidia-smi").chmod(0o755)
    if torch is not None:
        (lib_dir / "torch").mkdir(parents=True, exist_ok=True)
        (lib_dir / "torch" / "__init__.py").write_text(
            f"class cuda:\n    is_available = staticmethod(lambda: {torch})\n"
        )
    run_env = {**os.environ, **env, "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(lib_dir)}
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, "gpu_use"],
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env,
    ).stdout
    answer = parse_answer("gpu_use", json.loads(out.strip().splitlines()[-1]), "exec")
    assert isinstance(answer, GpuView)
    return answer


def test_the_probe_reads_nvidia_smis_process_list(tmp_path):
    view = gpu_probe(tmp_path, smi=True, FAKE_APPS="4242, 2311")
    assert [(a.pid, a.used_mib) for a in view.apps] == [(4242, 2311)]
    assert [g.name for g in view.gpus] == ["NVIDIA A10"]
    assert view.torch_cuda is None
    assert not view.keep  # read again after the check's warm call
    assert view.pids  # the container's own processes, as its PID namespace numbers them


def test_a_failing_nvidia_smi_is_said_not_taken_for_an_empty_list(tmp_path):
    view = gpu_probe(tmp_path, smi=True, FAKE_APPS="NVML: Driver mismatch", FAKE_RC="9")
    assert view.apps is None
    assert view.smi_error.startswith("exited 9")


def test_an_image_without_nvidia_smi_falls_back_on_torch(tmp_path):
    view = gpu_probe(tmp_path, smi=False, torch="True")
    assert (view.smi, view.apps, view.torch_cuda) == ("", None, True)
    assert view.keep
    assert gpu_probe(tmp_path / "cpu", smi=False, torch="False").torch_cuda is False


def view(**fields) -> GpuView:
    return GpuView(via="exec", **fields)


def test_its_process_holding_memory_is_the_best_proof():
    smi = view(smi="/usr/bin/nvidia-smi", apps=parse_compute_apps("4242, 2311\n99, 5000"))
    use = judge_use(smi, {4242}, None)
    assert (use.on_gpu, use.held_mib) == (True, 2311)
    assert "in its container" in use.proof
    # nvidia-smi inside lists others' processes, not its own: on the CPU
    assert judge_use(smi, {7}, None).on_gpu is False


def test_the_hosts_process_list_judges_where_the_container_sees_none():
    inside = view(smi="/usr/bin/nvidia-smi", apps=())  # it cannot see its PID namespace's
    host = HostGpus(parse_gpus("0, NVIDIA A10, 550.54.14, 23028"), parse_compute_apps("4242, 900"))
    assert judge_use(inside, {4242}, host).proof.endswith("on the host)")
    assert judge_use(inside, {5}, host).on_gpu is False


def test_cuda_visibility_is_the_fallback_and_says_so():
    devices = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")
    seen = judge_use(view(devices=devices, driver_gpus=("0000:01:00.0",)), {1}, None)
    assert seen.on_gpu is True
    assert "CUDA visible: /dev/nvidia0" in seen.proof and "no nvidia-smi" in seen.proof
    torch = judge_use(view(devices=devices, torch_cuda=False), {1}, None)
    assert torch.on_gpu is False and "torch.cuda.is_available() is False" in torch.proof
    assert judge_use(view(), {1}, None).on_gpu is False


def test_a_helper_containers_answer_proves_nothing():
    helper = GpuView(via="helper cvat/server:v2.29.0", devices=("/dev/nvidia0",))
    assert judge_use(helper, {1}, None).on_gpu is None
    assert judge_use(GpuView.failed("timed out", "exec"), {1}, None).on_gpu is None


def test_the_functions_memory_is_judged_against_the_gpus():
    host = HostGpus(parse_gpus("0, NVIDIA A10, 550.54.14, 20000"), parse_compute_apps("1, 19000"))
    held = host.held_by({"pth-facebookresearch-sam-vit-h": {1}, "pth-lama": {2}})
    assert held == {"pth-facebookresearch-sam-vit-h": 19000, "pth-lama": 0}
    diagnosis = host.why_too_much_held(held, 0.9)
    assert "hold 19000 MiB of the GPUs' 20000 MiB (95%)" in str(diagnosis)


def test_a_cpu_only_profile_collects_no_gpu_check_and_a_gpu_one_does(tmp_path):
    import contextlib
    import io

    from criobe_verify.guide import _collect
    from selftests.twin import TWIN_PROFILE

    edited = tmp_path / "gpu.toml"
    edited.write_text(TWIN_PROFILE.read_text().replace('gpu = "none"', 'gpu = "optional"'))
    with contextlib.redirect_stdout(io.StringIO()):
        twin, gpu = set(_collect(str(TWIN_PROFILE))), set(_collect(str(edited)))
    assert not {i for i in twin if "gpu" in i}
    assert {"host/nvidia-gpus", "host/gpu-memory-held-by-functions"} <= gpu
    assert "functions/has-its-gpu[pth-lama]" in gpu
