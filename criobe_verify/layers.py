"""The suite's layers, lowest first, and the gate that skips a layer when one below failed.

    >>> from criobe_verify.layers import LayerGate
    >>> gate = LayerGate()
    >>> gate.record_failure("containers", "tests/test_containers.py::test_containers_are_running")
    >>> gate.blocking("network")
    'containers layer failed: tests/test_containers.py::test_containers_are_running'

A layer built on a broken one can only report noise (a DNS check on a stopped container),
so the gate skips it and the skip reason names the check that broke the layer below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    name: str
    description: str
    # In twin mode a layer collecting fewer tests than this fails the run: a refactor that
    # silently drops checks must not look green.
    min_tests: int


LAYERS: tuple[Layer, ...] = (
    Layer("host", "Docker engine, Compose v2, disk, ports before/after install", 5),
    Layer("containers", "expected containers exist, run, healthy, right image and restart", 6),
    Layer("ports", "published ports answer their protocol; exposure audit", 5),
    Layer("network", "cvat_cvat, membership, aliases, DNS between containers", 4),
    Layer("gateway", "Smokescreen allows the bridge gateway; SSRF protection on", 8),
    Layer("services", "CVAT, Nuclio dashboard and bridge APIs", 7),
    Layer("reachability", "functions and services reachable from inside containers", 0),
    Layer("inference", "function outputs: contract, accuracy, golden", 0),
    Layer("latency", "per-function latency against budgets", 0),
    Layer("webhooks", "CVAT webhooks to the bridge deliver 200", 3),
    Layer("e2e", "webhook-to-annotation pipeline", 0),
)
LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}


@dataclass
class LayerGate:
    """Remembers the first failing check of each layer."""

    failures: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def record_failure(self, layer: str, nodeid: str) -> None:
        self.failures.setdefault(layer, nodeid)
        self.failed.add(nodeid)

    def blocking(self, layer: str) -> str | None:
        """The skip reason for a test of `layer`, or None when every layer below passed."""
        for lower in LAYER_NAMES[: LAYER_INDEX[layer]]:
            if lower in self.failures:
                return f"{lower} layer failed: {self.failures[lower]}"
        return None
