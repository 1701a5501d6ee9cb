"""The suite's layers, lowest first, the two kinds of checks, and the gate that skips a layer
when a functional check below it failed.

    >>> from criobe_verify.layers import blocking_reason
    >>> failures = [("containers", "containers/running[cvat_ui]")]
    >>> blocking_reason("network", failures)
    'containers layer failed: containers/running[cvat_ui]'
    >>> blocking_reason("containers", failures) is None
    True

A layer built on a broken one can only report noise (a DNS check on a stopped container), so
the gate skips it and the skip reason names the check that broke the layer below. Policy
checks (how the stack is configured: exposure, image tags, restart policies, thresholds,
budgets) never gate: they fail the run on their own and are listed with their fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FUNCTIONAL = "functional"
POLICY = "policy"


@dataclass(frozen=True)
class Layer:
    name: str
    description: str
    # In strict runs a selected layer collecting fewer tests than this fails the run: a
    # refactor that silently drops checks must not look green.
    min_tests: int


LAYERS: tuple[Layer, ...] = (
    Layer("host", "Docker engine, Compose v2, disk, ports before/after install", 5),
    Layer("containers", "expected containers exist, run, healthy, right image and restart", 50),
    Layer("ports", "published ports answer their protocol; exposure audit", 8),
    Layer("network", "cvat_cvat, membership, aliases, DNS between containers", 10),
    Layer("gateway", "Smokescreen allows the bridge gateway; SSRF protection on", 8),
    Layer("services", "CVAT, Nuclio dashboard and bridge APIs", 7),
    Layer("functions", "Nuclio project cvat, functions deployed and ready, CVAT lists them", 3),
    Layer("reachability", "functions and services reachable from inside containers", 3),
    Layer("inference", "function outputs: contract, accuracy, golden, CVAT keeps them", 5),
    Layer("latency", "per-function latency against budgets", 1),
    Layer("webhooks", "CVAT webhooks to the bridge deliver 200", 4),
    Layer("e2e", "webhook-to-annotation pipeline", 2),
)
LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}


def blocking_reason(layer: str, failures: Iterable[tuple[str, str]]) -> str | None:
    """The skip reason for a check of `layer`, given the functional failures so far as
    (layer, check id) in run order; None when every layer below passed."""
    first: dict[str, str] = {}
    for failed_layer, check_id in failures:
        first.setdefault(failed_layer, check_id)
    for lower in LAYER_NAMES[: LAYER_INDEX[layer]]:
        if lower in first:
            return f"{lower}{GATE_SKIP}{first[lower]}"
    return None


GATE_SKIP = " layer failed: "


def is_gate_skip(reason: str) -> bool:
    """Whether a skip's reason is the gate's (a layer below failed): the run's verdict is then
    already broken, so the skip leaves nothing more to say.

    >>> is_gate_skip("containers layer failed: containers/running[cvat_ui]")
    True
    >>> is_gate_skip("no --sample-image given: …")
    False
    """
    layer, sep, _ = reason.partition(GATE_SKIP)
    return bool(sep) and layer in LAYER_INDEX


_DEPENDS_FAILED = ", which failed"


def depends_on_a_failure(check_id: str, detail: str = "") -> str:
    """The skip reason of a check built on one that failed in this run."""
    return f"depends on {check_id}{_DEPENDS_FAILED}" + (f": {detail}" if detail else "")


def follows_a_failure(reason: str) -> bool:
    """Whether a skip only follows a failure reported elsewhere (a layer below, or a check it
    builds on): the verdict is broken already, and the failure carries the diagnosis.

    >>> follows_a_failure(depends_on_a_failure("containers/exists[cvat_ui]"))
    True
    >>> follows_a_failure("depends on functions/deployed-and-ready[sam], which was skipped")
    False
    """
    if is_gate_skip(reason):
        return True
    head, sep, _ = reason.partition(_DEPENDS_FAILED)
    return bool(sep) and head.startswith("depends on ") and " " not in head[len("depends on ") :]
