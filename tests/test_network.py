"""Network layer: the stack's Docker network, who is on it, aliases and DNS between containers.

    pytest -m network

CVAT reaches Nuclio as `nuclio`, the bridge reaches CVAT as `cvat-server` and functions as
`nuclio-nuclio-<fn>`, OPA fetches its rules from `cvat-server`: all of it is Docker DNS on
`cvat_cvat`, so a container on another network, a missing alias or a broken resolver breaks
the pipeline silently. Name lookups run inside the container (its own resolver and
/etc/hosts); one without python3 is probed from a helper sharing its network namespace.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.network, pytest.mark.guide("step-3")]


@check("network/stack-network-exists")
def test_stack_network_exists(stack_network):
    expect(stack_network.exists, stack_network.why_missing)
    expect(stack_network.driver == "bridge", stack_network.why_wrong_driver)


@check("network/on-stack-network")
def test_container_is_on_stack_network(networked_container, containers, stack_network, depends_on):
    depends_on("network/stack-network-exists")
    c = containers.existing(networked_container[0])
    membership = stack_network.membership(c)
    expect(membership.on_network, membership.why_off_network)


@check("network/alias-set")
def test_network_alias_is_set(aliased_container, containers, stack_network, depends_on):
    depends_on("network/stack-network-exists")
    membership = stack_network.membership(containers.existing(aliased_container.name))
    missing = membership.missing_aliases(aliased_container)
    expect(not missing, lambda: membership.why_aliases_missing(aliased_container))


@check("network/resolves-stack-names")
def test_container_resolves_stack_names(resolver, depends_on):
    depends_on("network/stack-network-exists")
    expect(not resolver.wrong(), resolver.why_wrong)
