"""Resources: one module per thing the stack has, as the checks see it. A resource reads its
facts once (typed, frozen), declares the probes it needs for the run's prefetch, and owns the
diagnosis of each way it can be wrong, so a check reads as intent:

    c = containers["cvat_ui"]
    expect(c.state.running, c.why_not_running)

    RESOURCES["smokescreen"]     # the fixture that hands a resource out -> its class

The pytest fixtures that hand them out live in fixtures/; the prefetch (fixtures/prefetch.py)
asks every registered class used by a selected check for its declared probes
(criobe_verify.resources.declarations).
"""

from __future__ import annotations

from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.resources.bridge import Bridge, BridgeOnTheStack
from criobe_verify.resources.gpu import FunctionGpu
from criobe_verify.resources.network import NameResolver
from criobe_verify.resources.reach import (
    BridgeToDashboard,
    BridgeToFunction,
    CvatToFunction,
    GatewayLeg,
)
from criobe_verify.resources.smokescreen import Smokescreen
from criobe_verify.resources.supervisord import Supervisord
from criobe_verify.resources.webhook import WebhooksWorker
from criobe_verify.resources.weights import FunctionWeights

# The fixture that hands a resource out -> its class: a selected check using the fixture has
# the class declare its probes for the run's prefetch (fixtures/prefetch.py).
RESOURCES: dict[str, type[Resource]] = {
    "smokescreen": Smokescreen,
    "resolver": NameResolver,
    "supervisord": Supervisord,
    "gateway_leg": GatewayLeg,
    "bridge_to_dashboard": BridgeToDashboard,
    "bridge_to_function": BridgeToFunction,
    "cvat_to_function_call": CvatToFunction,
    "bridge": Bridge,
    "bridge_direct_answer": BridgeOnTheStack,
    "webhooks_worker": WebhooksWorker,
    "function_gpu": FunctionGpu,
    "function_weights": FunctionWeights,
}

__all__ = ["RESOURCES", "Declared", "Resource", "RunFacts", "Smokescreen"]
