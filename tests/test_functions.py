"""Functions layer: the Nuclio side as CVAT and the bridge use it. The dashboard reports its
version, the project `cvat` exists, every expected function is deployed in it and `ready`
(its container's health and network are the containers and network layers' business), the
port the dashboard says (status.httpPort) is the one its container publishes now (a restarted
container gets another random port while the dashboard says ready: nuclio/nuclio#1668), its
container restarts with Docker (policy), its model weights are in its container with a
plausible size, and CVAT's own lambda listing shows the detectors with the profile's labels.

    pytest -m functions

Optional functions (SAM) absent from the stack are skipped with that reason; present ones
are checked like the others.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.functions, pytest.mark.guide("step-6")]


@check("functions/nuclio-version", policy=True)
def test_nuclio_dashboard_is_the_profiles_version(nuclio):
    expect(nuclio.version == nuclio.expected_version, nuclio.why_other_version)


@check("functions/nuclio-project-exists")
def test_nuclio_project_exists(nuclio):
    expect(nuclio.project_exists, nuclio.why_no_project)


@check("functions/deployed-and-ready")
def test_function_is_deployed_and_ready(expected_function, nuclio, depends_on):
    depends_on("functions/nuclio-project-exists")
    fn = nuclio.function(expected_function)
    if expected_function.optional and not fn.deployed:
        not_asked(f"{fn.fn.name}: optional in profile {nuclio.profile.name} and not deployed")
    expect(fn.deployed, fn.why_not_deployed)
    expect(fn.ready, fn.why_not_ready)


@check("functions/cvat-lists-detector")
def test_cvat_lists_the_detector_with_its_labels(
    detector_function, nuclio, cvat_listing, depends_on
):
    """CVAT's /api/lambda/functions is what the bridge and the UI's auto-annotation see."""
    depends_on("functions/deployed-and-ready")
    listing, wanted = cvat_listing(), nuclio.function(detector_function).spec_labels
    expect(listing.ok, listing.why_failed)
    listed = listing.labels(detector_function.name)
    expect(
        wanted and listed == wanted, lambda: listing.why_not_listed(detector_function.name, wanted)
    )


@check("functions/http-port-is-published")
def test_dashboards_http_port_is_the_port_the_container_publishes(
    expected_function, nuclio, depends_on
):
    """The port CVAT calls (status.httpPort) is the one Docker publishes now: a restarted
    container may publish another while the dashboard still says ready."""
    depends_on("functions/deployed-and-ready")
    fn = nuclio.function(expected_function)
    expect(fn.http_port == fn.published_port, fn.why_port_moved)


@check("functions/container-restarts-with-docker", policy=True)
def test_function_container_restarts_with_docker(expected_function, nuclio, depends_on):
    """A function must come back after a reboot as the stack's containers do."""
    depends_on("functions/deployed-and-ready")
    fn = nuclio.function(expected_function)
    expect(fn.restarts_with_docker, fn.why_not_restarted_with_docker)


@check("functions/model-weights-present")
def test_function_model_weights_are_present(
    expected_function, nuclio, function_weights, report_note, depends_on
):
    """Each weights file the profile or the function's spec names exists in its container
    and is no smaller than weights_min_mb; where nothing names one, a skip says so."""
    depends_on("functions/deployed-and-ready")
    if expected_function.optional and not nuclio.function(expected_function).deployed:
        pytest.skip(f"{expected_function.name}: optional and not deployed")
    weights = function_weights
    if not weights.sources:
        pytest.skip(weights.why_unknown())
    for found in weights.files():
        expect(found.plausible, lambda found=found: weights.why_implausible(found))
        report_note(f"{expected_function.name}: {found.where.path} ({found.where.source}): "
                    f"{found.observed()}")  # fmt: skip


@check("functions/has-its-gpu")
@pytest.mark.gpu_checks
def test_function_has_its_gpu_and_uses_it(
    gpu_function, function_gpu, functions, sample, report_note, depends_on
):
    """Only where the profile asks it for a GPU: "required" fails a function on the CPU,
    "optional" reports what it has (a skip where it has none: nothing was verified)."""
    depends_on("functions/deployed-and-ready")
    gpu, required = function_gpu, gpu_function.gpu == "required"
    if not required and not gpu.access.has_gpu:
        pytest.skip(f"{gpu_function.name}: gpu optional; on the CPU ({gpu.access.describe()})")
    expect(gpu.access.has_gpu, gpu.why_no_gpu)
    functions.answer(gpu_function.name, sample.request(gpu_function.role), sample.key)  # warm
    use = gpu.use()
    if use.on_gpu is None or (not required and not use.on_gpu):
        pytest.skip(f"{gpu_function.name}: has {gpu.access.describe()}; use unproven: {use.proof}")
    expect(use.on_gpu, lambda: gpu.why_not_using(use))
    report_note(f"{gpu_function.name}: {gpu.access.describe()}; {use.proof}")
