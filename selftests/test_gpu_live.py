"""The GPU side on a real NVIDIA GPU, where there is one: the host's nvidia-smi read as the
suite reads it, and a container given the GPU as Nuclio gives it (`--gpus all`, a device
request) seen to have it, with the GPU's own nvidia-smi inside it.

Marked `gpu`: each test skips, saying why, where nvidia-smi does not answer (this project's CI
machines have no GPU); test_gpu.py proves the same judgements on recorded output everywhere.
Run them on a GPU host: `python -m pytest selftests/test_gpu_live.py -m gpu -rs`.
"""

from __future__ import annotations

import shutil
import subprocess

import docker
import pytest
import testinfra
from criobe_verify.fixtures.gpu import _read_host_gpus

from criobe_verify.nvidia_smi import QUERY_GPUS, parse_gpus
from criobe_verify.resources.gpu import GpuAccess

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def host_smi() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("no nvidia-smi on this host (no NVIDIA GPU): the GPU side is proven on "
                    "recorded output in test_gpu.py")  # fmt: skip
    answer = subprocess.run([smi, *QUERY_GPUS], capture_output=True, text=True, timeout=60)
    if answer.returncode != 0 or not parse_gpus(answer.stdout):
        pytest.skip(f"nvidia-smi does not list a GPU here: {answer.stderr.strip()[-200:]}")
    return answer.stdout


def _engine() -> docker.DockerClient | None:
    try:
        return docker.from_env(timeout=30)
    except docker.errors.DockerException:  # no engine on the GPU host
        return None


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    client = _engine()
    if client is None:
        pytest.skip("no Docker engine here")
    return client


def test_the_hosts_gpus_are_read_as_the_suite_reads_them(host_smi):
    # Without an engine the runtimes read as none (the reader's own fallback).
    gpus = _read_host_gpus(testinfra.get_host("local://"), _engine())
    assert gpus.present and gpus.driver and gpus.total_mib > 0, gpus
    assert [g.name for g in gpus.gpus] == [g.name for g in parse_gpus(host_smi)]
    assert gpus.apps is not None, f"nvidia-smi could not list processes: {gpus.smi_error}"


def test_a_container_given_the_gpu_as_nuclio_does_is_seen_with_it(host_smi, engine):
    image = next((t for i in engine.images.list() for t in i.tags if "bookworm" in t), None)
    if image is None:
        pytest.skip("no debian image to start (scripts/build-base-image.sh makes one)")
    container = engine.containers.create(
        image, ["sleep", "120"],
        device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])],
    )  # fmt: skip
    try:
        try:
            container.start()
        except docker.errors.APIError as exc:
            pytest.fail(f"the engine refuses --gpus all on a host whose nvidia-smi answers "
                        f"(NVIDIA Container Toolkit missing?): {exc}")  # fmt: skip
        container.reload()
        access = GpuAccess.of(container.attrs)
        assert access.has_gpu, access.describe()
        inside = container.exec_run(["nvidia-smi", *QUERY_GPUS])
        assert inside.exit_code == 0, inside.output.decode()[-300:]
        assert parse_gpus(inside.output.decode()), inside.output.decode()
    finally:
        container.remove(force=True)
