"""Gateway layer: the path a webhook takes from CVAT to the bridge, checked by behaviour.

    pytest -m gateway --gateway-ip 172.17.0.1

In cvat_server (pings) and cvat_worker_webhooks (events) CVAT sends webhooks through its own
Smokescreen on 127.0.0.1:4750 to http://bridge.gateway:8000. Each container's Smokescreen
must be alive, bridge.gateway must resolve to the host gateway (what Docker's host-gateway is
on this engine), the bridge must answer through the proxy, and Smokescreen must still refuse
stack-private addresses (SSRF protection). The resource (criobe_verify/resources/smokescreen.py)
holds the facts and explains each failure; SMOKESCREEN_OPTS is read only to explain one.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.gateway, pytest.mark.guide("step-8")]


@check("gateway/smokescreen-listening")
def test_smokescreen_is_listening(smokescreen):
    """Alive and accepting on its proxy address: every webhook goes through it."""
    process, port = smokescreen.process, smokescreen.listening
    expect(process.found and port.accepting, lambda: smokescreen.why_not_listening(process, port))


@check("gateway/bridge-gateway-resolves")
def test_bridge_gateway_resolves_to_platform_gateway(smokescreen):
    """bridge.gateway is the host gateway of this engine inside the sending container."""
    resolution = smokescreen.resolve_gateway()
    expect(
        resolution.addresses == (smokescreen.gateway_ip,),
        lambda: smokescreen.why_gateway_misresolved(resolution),
    )


@check("gateway/bridge-answers-through-smokescreen")
def test_bridge_answers_through_smokescreen(smokescreen, depends_on):
    """The bridge answers 200 through the proxy, the way a webhook reaches it."""
    depends_on("gateway/smokescreen-listening", "gateway/bridge-gateway-resolves")
    answer = smokescreen.get(smokescreen.bridge_url)
    expect(answer.status == 200, lambda: smokescreen.why_bridge_refused(answer))


@check("gateway/smokescreen-refuses-private-address")
def test_smokescreen_refuses_private_address(smokescreen, depends_on):
    """SSRF protection stays on: a stack-private address (cvat_db's) is refused."""
    depends_on("gateway/smokescreen-listening")
    answer = smokescreen.get(smokescreen.private_url)
    expect(smokescreen.refuses_as_private(answer), lambda: smokescreen.why_private_answered(answer))
