"""Resources declare their probes; the run's prefetch makes the union of the declarations;
under --strict-probes a probe a resource makes without having declared it fails its check,
naming the probe and the class. On the real Prober, with the container's exec stood in for."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from criobe_verify import probes
from criobe_verify.diagnosis import CheckFailed
from criobe_verify.probes import Prober
from criobe_verify.profile import Gateway
from criobe_verify.resources import RESOURCES, Declared, RunFacts, Smokescreen
from criobe_verify.resources.declarations import declared_probes

PROFILE = SimpleNamespace(gateway=Gateway())
FACTS = RunFacts(stack_ip=lambda name: {"cvat_db": "172.23.0.3"}.get(name),
                 gateway_ip=lambda: "172.17.0.1")  # fmt: skip


class Container:
    def __init__(self, name: str, status: str = "running"):
        self.name, self.id, self.status = name, f"id-{name}", status
        self.attrs = {"Config": {"Env": []}, "HostConfig": {"ExtraHosts": []}}


class Execs:
    """The containers' side: answers every probe as the program would, and counts execs."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def answer(self, call: list[str]) -> dict:
        if call[0] == "proxy_get":
            return {"ok": True, "status": 200, "reason": "OK", "error_header": None, "body": ""}
        if call[0] == "process":
            return {"ok": True, "processes": [{"pid": 7, "argv": ["smokescreen"], "state": "S"}]}
        return {"ok": True, "addresses": ["172.17.0.1"]}

    def __call__(self, container, argv, timeout_s):
        probe, args = argv[3], argv[4:]
        self.calls.append((container.name, (probe, *args)))
        if probe == "batch":
            results = [self.answer(c) for c in json.loads(args[0])]
            return 0, json.dumps({"ok": True, "results": results})
        return 0, json.dumps(self.answer([probe, *args]))


@pytest.fixture
def execs(monkeypatch) -> Execs:
    execs = Execs()
    monkeypatch.setattr(probes, "exec_in", execs)
    return execs


def item(params: dict | None = None, fixtures=("smokescreen", "gateway_container")):
    callspec = SimpleNamespace(params=params) if params is not None else None
    return SimpleNamespace(fixturenames=list(fixtures), callspec=callspec)


def smokescreen_in(container: Container, prober: Prober, strict: bool) -> Smokescreen:
    return Smokescreen(container.name, lambda: container, prober, Gateway(),
                       gateway_ip=lambda: "172.17.0.1",
                       stack_ip=lambda name: "172.23.0.3", strict=strict)  # fmt: skip


def prefetched(execs: Execs, *names: str) -> tuple[Prober, dict[str, Container]]:
    """A prober that prefetched what the gateway checks of these containers declare."""
    containers = {n: Container(n) for n in names}
    items = [item({"gateway_container": n}) for n in names for _ in range(4)]  # 4 checks each
    plan = declared_probes(items, RESOURCES, PROFILE, FACTS)
    prober = Prober(client=None, helper_image=None)
    prober.prefetch_in_background({containers[n]: calls for n, calls in plan.now.items()})
    for c in containers.values():  # declared() waits for the container's batch
        assert all(prober.declared(c, *call) for call in plan.now[c.name])
    return prober, containers


def test_the_declarations_are_merged_per_container_each_call_once():
    items = [
        *(item({"gateway_container": n}) for n in ("cvat_server", "cvat_worker_webhooks") * 4),
        item({"expected_container": "cvat_db"}, fixtures=("expected_container",)),
        item(None, fixtures=("smokescreen",)),  # used without the parameter that picks one
    ]
    plan = declared_probes(items, RESOURCES, PROFILE, FACTS)
    assert set(plan.now) == {"cvat_server", "cvat_worker_webhooks"} and not plan.deferred
    assert plan.now["cvat_server"] == [
        ("process", "smokescreen"),
        ("listening", "127.0.0.1:4750"),
        ("resolve", "bridge.gateway"),
        ("proxy_get", "127.0.0.1:4750", "http://bridge.gateway:8000/health"),
        ("proxy_get", "127.0.0.1:4750", "http://172.23.0.3:5432/"),
    ]


def test_a_private_target_without_an_address_is_not_declared():
    facts = RunFacts(stack_ip=lambda name: None, gateway_ip=lambda: "172.17.0.1")
    plan = declared_probes([item({"gateway_container": "cvat_server"})], RESOURCES, PROFILE, facts)
    assert not any("5432" in " ".join(call) for call in plan.now["cvat_server"])


def test_every_fact_the_gateway_checks_read_comes_from_the_prefetch(execs):
    prober, containers = prefetched(execs, "cvat_server", "cvat_worker_webhooks")
    batches = list(execs.calls)
    assert [name for name, _ in batches] == ["cvat_server", "cvat_worker_webhooks"]
    for container in containers.values():
        s = smokescreen_in(container, prober, strict=True)
        assert s.process.found and s.listening.accepting
        assert s.resolve_gateway().addresses == ("172.17.0.1",)
        assert s.get(s.bridge_url).status == 200 and s.get(s.private_url).status == 200
    assert execs.calls == batches, "a fact was probed live instead of read from the prefetch"


def test_strict_an_undeclared_probe_fails_naming_the_probe_and_the_resource(execs):
    prober, containers = prefetched(execs, "cvat_server")
    s = smokescreen_in(containers["cvat_server"], prober, strict=True)
    with pytest.raises(CheckFailed) as failure:
        s.get("http://bridge.gateway:8000/docs")
    message = str(failure.value)
    assert "probe proxy_get('127.0.0.1:4750', 'http://bridge.gateway:8000/docs')" in message
    assert "made live without having been declared" in message
    assert "criobe_verify.resources.smokescreen.Smokescreen.probes()" in message
    assert len(execs.calls) == 1, "the undeclared probe must not have been made"


def test_not_strict_an_undeclared_probe_is_made_live(execs):
    prober, containers = prefetched(execs, "cvat_server")
    s = smokescreen_in(containers["cvat_server"], prober, strict=False)
    assert s.get("http://bridge.gateway:8000/docs").status == 200
    assert execs.calls[-1] == (
        "cvat_server",
        ("proxy_get", "127.0.0.1:4750", "http://bridge.gateway:8000/docs"),
    )


def test_a_container_that_does_not_run_is_declared_but_not_probed(execs):
    stopped = Container("cvat_server", status="exited")
    prober = Prober(client=None, helper_image=None)
    prober.prefetch_in_background({stopped: [("listening", "127.0.0.1:4750")]})
    assert prober.declared(stopped, "listening", "127.0.0.1:4750") and not execs.calls


def test_a_deferred_call_is_named_on_the_prefetch_thread_and_counts_as_declared(execs):
    class NeedsTheGateway(Smokescreen):
        @classmethod
        def probes(cls, param, profile, facts):
            yield Declared(param, lambda: ("http_get", f"http://{facts.gateway_ip()}:8000/health"))

    asked = []
    facts = RunFacts(stack_ip=lambda name: None, gateway_ip=lambda: asked.append(1) or "10.9.0.1")
    plan = declared_probes([item({"gateway_container": "cvat_server"})],
                           {"smokescreen": NeedsTheGateway}, PROFILE, facts)  # fmt: skip
    assert not asked, "the slow fact must not be asked while the run starts"
    server = Container("cvat_server")
    prober = Prober(client=None, helper_image=None)
    prober.prefetch_in_background({}, [(server, plan.later["cvat_server"])])
    assert prober.declared(server, "http_get", "http://10.9.0.1:8000/health")
    assert not prober.declared(server, "http_get", "http://10.9.0.2:8000/health")
    assert asked == [1]
    assert prober.run(server, "http_get", "http://10.9.0.1:8000/health").ok
    assert len(execs.calls) == 1  # the prefetched batch, read by run()


def test_a_process_not_found_at_the_start_is_looked_for_again_when_read(execs, monkeypatch):
    monkeypatch.setattr(Execs, "answer", lambda self, call: {"ok": False, "processes": []})
    prober, containers = prefetched(execs, "cvat_server")
    s = smokescreen_in(containers["cvat_server"], prober, strict=True)
    assert not s.process.found
    assert execs.calls[-1] == ("cvat_server", ("process", "smokescreen"))  # asked again, live


def test_a_declaration_that_trips_on_a_fact_leaves_its_class_out_of_the_rule(execs):
    """The dashboard hangs: the reachability resources cannot name the functions' ports.
    Their checks then explain the hung dashboard; they are not also told their probes were
    undeclared (pytest.fail from the dashboard is not an Exception), and the other classes'
    declarations stand."""

    def hung(name: str) -> int:
        pytest.fail("nuclio: cannot reach the Nuclio dashboard at http://localhost:8070")

    facts = RunFacts(
        stack_ip=lambda name: "172.23.0.3", gateway_ip=lambda: "172.17.0.1", function_port=hung
    )
    from criobe_verify.paths import PROFILES_DIR
    from criobe_verify.profile import load_profile

    fn = next(f for f in load_profile(PROFILES_DIR / "twin.toml").functions if f.name == "pth-lama")
    items = [
        item({"expected_function": fn}, fixtures=("bridge_to_function", "expected_function")),
        item({"gateway_container": "cvat_server"}),
    ]
    plan = declared_probes(items, RESOURCES, PROFILE, facts)
    assert plan.undeclarable == {RESOURCES["bridge_to_function"]}
    assert plan.now["cvat_server"], "the Smokescreen's declarations were lost with it"
    prober = Prober(client=None, helper_image=None)
    prober.undeclarable_classes |= plan.undeclarable
    bridge = Container("bridge")
    call = RESOURCES["bridge_to_function"](lambda: bridge, prober, fn, 32768, strict=True)
    assert call.answer.ok, "a probe of an undeclarable class must be made live, not refused"
