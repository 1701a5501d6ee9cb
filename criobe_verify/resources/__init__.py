"""Resources: the things of the stack as the checks see them, each with its typed facts, the
probes it declares for the run's prefetch, and the diagnosis of each way it can be wrong.

    RESOURCES["smokescreen"]     # the fixture that hands a resource out -> its class

The pytest fixtures that hand them out live in fixtures/ (fixtures/gateway.py: `smokescreen`);
the prefetch (fixtures/prefetch.py) asks every registered class used by a selected check for
its declared probes (criobe_verify.resources.declarations).
"""

from __future__ import annotations

from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.resources.smokescreen import Smokescreen

RESOURCES: dict[str, type[Resource]] = {
    "smokescreen": Smokescreen,
}

__all__ = ["RESOURCES", "Declared", "Resource", "RunFacts", "Smokescreen"]
