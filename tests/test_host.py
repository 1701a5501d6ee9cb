"""Host layer: the Docker engine, Compose v2, disk and the stack's host ports.

    pytest --phase preinstall            # before installing: engine, compose, disk, ports free
    pytest -m host                       # after: the same, and each port held by its container

The stack cannot exist without an engine and Compose v2; a full disk stops image builds and
CVAT's own health check (≥ 90 % full is a 500); a port another program holds makes the guide's
`docker compose up` fail half-way. Where the profile asks a function for a GPU: the host's
NVIDIA GPUs, driver and Docker's nvidia runtime, and the GPU memory the functions hold. The facts and their diagnoses are the host resources'
(criobe_verify/resources/host.py).
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = pytest.mark.host


@check("host/docker-engine-answers", guide="prereq", phases=("preinstall", "installed"))
def test_docker_engine_answers(engine):
    expect(engine.answers, engine.why_not_answering)
    expect(engine.recent_enough, engine.why_too_old)


@check("host/engine-accepts-the-stacks-clients", guide="prereq", phases=("preinstall", "installed"))
def test_engine_accepts_the_api_versions_of_the_stacks_clients(engine):
    """Docker 29 refuses clients older than API 1.44: Nuclio 1.13.0's dashboard speaks 1.42,
    Traefik v2.10's docker provider 1.24 (the profile's [[host.docker_api_clients]])."""
    expect(not engine.clients_refused(), engine.why_clients_refused)


@check("host/compose-v2-available", guide="prereq", phases=("preinstall", "installed"))
def test_compose_v2_is_available(compose):
    expect(compose.answers, compose.why_missing)
    expect(compose.recent_enough, compose.why_too_old)


@check(
    "host/docker-root-free-disk", guide="prereq", policy=True, phases=("preinstall", "installed")
)
def test_docker_root_has_free_disk(engine_host, docker_root):
    engine_host.require()  # df on this machine says nothing about a remote engine's disk
    disk = docker_root()
    expect(disk.enough, disk.why_low)


@check("host/port-free-before-install", guide="prereq", phases=("preinstall",))
@pytest.mark.free_before_install
def test_stack_port_is_free_before_install(stack_port, host_port, engine_host):
    engine_host.require()
    port = host_port(stack_port)
    expect(not port.holders, port.why_held_before_install)


@check("host/port-held-by-its-container", guide="step-3")
def test_stack_port_is_held_by_its_container(stack_port, host_port, engine_host):
    engine_host.require()
    port = host_port(stack_port)
    expect(port.held_by_its_container, port.why_not_its_container)


@check("host/nvidia-gpus", guide="prereq")
@pytest.mark.gpu_checks
def test_host_reports_its_nvidia_gpus(host_gpus, engine_host, profile, report_note):
    """A report: where there is no GPU the functions' own check fails the ones that need it."""
    engine_host.require()
    gpus, required = host_gpus(), any(f.gpu == "required" for f in profile.functions)
    if not gpus.present and (gpus.smi_missing or not required):
        pytest.skip(f"no NVIDIA GPU on this host ({gpus.smi_error or 'nvidia-smi lists none'})")
    expect(gpus.present, gpus.why_driver_broken)
    report_note(gpus.report())


@check("host/gpu-memory-held-by-functions", guide="prereq", policy=True)
@pytest.mark.gpu_checks
def test_functions_leave_gpu_memory_free(host_gpus, engine_host, function_pids, profile):
    """At the run's start: Nuclio's functions load their models in init_context."""
    engine_host.require()
    gpus = host_gpus()
    if not gpus.present or gpus.apps is None:
        pytest.skip(f"no NVIDIA GPU on this host ({gpus.smi_error or 'nvidia-smi lists none'})")
    held, share_max = gpus.held_by(function_pids()), profile.host.gpu_memory_share_max
    expect(
        sum(held.values()) <= share_max * gpus.total_mib,
        lambda: gpus.why_too_much_held(held, share_max),
    )
