"""Ports layer: each published port answers its protocol, the bridge's port is reachable at
the Docker gateway the way CVAT reaches it, and the exposure audit (policy): nothing the profile
keeps internal is published on a public interface, whatever host port it is mapped to and
also through `network_mode: host`, and public ports are published on every interface.

    pytest -m ports

Replaces two of the install guide's checks: Nuclio 1.13 has no /api/healthz (the dashboard
answers /api/versions), and CVAT's about names itself "Computer Vision Annotation Tool".
The services as the host reaches them are criobe_verify/resources/published.py's; the audit is
criobe_verify/resources/exposure.py's.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect
from criobe_verify.resources.exposure import InternalPort, PublicPort
from criobe_verify.resources.published import CVAT_NAME, PublishedService

pytestmark = pytest.mark.ports


@check("ports/cvat-ui-answers-head", guide="step-5")
def test_cvat_ui_answers_head_through_traefik(profile):
    ui = PublishedService.cvat_ui(profile)
    answer = ui.request("HEAD", "/")
    expect(answer.answered, lambda: ui.why_unreachable(answer))
    expect(answer.status == 200 and answer.html, lambda: ui.why_not_the_ui(answer))


@check("ports/cvat-api-answers-about", guide="post-install")
def test_cvat_api_answers_about_through_traefik(profile, report_note):
    report_note(f"The guide greps the about answer for 'CVAT'; its name is {CVAT_NAME!r}.")
    api = PublishedService.cvat_api(profile)
    answer = api.request("GET", "/api/server/about")
    expect(answer.answered, lambda: api.why_unreachable(answer))
    expect(
        answer.status == 200 and answer.field("name") == CVAT_NAME, lambda: api.why_not_cvat(answer)
    )


@check("ports/nuclio-dashboard-answers", guide="post-install")
def test_nuclio_dashboard_answers_api_versions(profile, report_note):
    report_note(
        "The guide probes /api/healthz, which Nuclio 1.13 does not serve (its /live and "
        "/ready are on the unpublished :8082); /api/versions is the dashboard's own answer."
    )
    nuclio = PublishedService.nuclio(profile)
    answer = nuclio.request("GET", "/api/versions")
    expect(answer.answered, lambda: nuclio.why_unreachable(answer))
    ok = answer.status == 200 and answer.field("dashboard", "label")
    expect(ok, lambda: nuclio.why_not_the_dashboard(answer))


@check("ports/bridge-answers-health", guide=("step-7", "post-install"))
def test_bridge_answers_health(profile):
    bridge = PublishedService.bridge(profile)
    answer = bridge.request("GET", "/health")
    expect(answer.answered, lambda: bridge.why_unreachable(answer))
    ok = answer.status == 200 and answer.field("status") == "healthy"
    expect(ok, lambda: bridge.why_not_healthy(answer))


@check("ports/bridge-reachable-at-docker-gateway", guide="step-8")
def test_bridge_port_is_reachable_at_docker_gateway(gateway_leg, container_named):
    """From inside cvat_server, straight to the gateway (no Smokescreen): the leg of a
    webhook's path that the bridge's port binding decides."""
    answer, bridge = gateway_leg.answer, container_named(gateway_leg.spec.container)
    expect(answer.status == 200, lambda: gateway_leg.why_unreachable(answer, bridge))


@check("ports/internal-port-not-public", guide=("prereq", "step-3"), policy=True)
def test_internal_port_is_not_published_on_public_interface(
    internal_port, stack_snapshot, listeners, engine_host, stack_host
):
    audit = InternalPort(internal_port, stack_snapshot, listeners(), engine_host, stack_host)
    expect(not audit.offenders, audit.why_public)


@check("ports/public-port-on-all-interfaces", guide="step-3", policy=True)
def test_public_port_is_published_on_all_interfaces(public_port, stack_container):
    """The profile says lab members reach this port from their machines."""
    container = stack_container(public_port.container)
    if container is None:
        pytest.skip(f"depends on container {public_port.container}, which is missing")
    port = PublicPort(public_port, container)
    expect(port.on_all_interfaces, port.why_not_public)
