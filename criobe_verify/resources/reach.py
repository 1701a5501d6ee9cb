"""The calls the pipeline makes between containers, made from inside those containers, each as
a resource that declares its probe for the run's prefetch and owns the diagnosis of no answer:

- the leg of a webhook's path from cvat_server straight to the bridge at the Docker gateway
  (no Smokescreen): what the bridge's port binding decides;
- from the bridge: the Nuclio dashboard (its NUCLIO_HOST/NUCLIO_PORT) and every function's
  trigger at nuclio-nuclio-<fn>:8080 (the bridge's path);
- from cvat_server (online calls) and cvat_worker_annotation (batch requests): every function
  at host.docker.internal:<httpPort>, the path CVAT's lambda manager takes.

    leg = BridgeToFunction("bridge", find, prober, fn, strict=True)
    answer = leg.answer                    # an HttpAnswer from inside the bridge
    expect(answer.ok, lambda: leg.why_no_answer(answer))

Any HTTP answer counts for a function: a handler that needs a body may answer an empty request
with 500, which is the inference layer's business; only "no answer" fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import pytest

from criobe_verify.containers import extra_hosts
from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.probe_answers import HttpAnswer
from criobe_verify.probes import Call
from criobe_verify.profile import Function, Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts


def _get(url: str) -> Call:
    return ("http_get", url)


def _bindings(container: Any) -> list[str]:
    ports = container.attrs["NetworkSettings"].get("Ports") or {}
    return [
        f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{key}"
        for key, values in ports.items()
        for b in values or []
    ]


class InsideCall(Resource):
    """One GET made from inside a container; subclasses say which, and why it matters."""

    url: str

    @cached_property
    def answer(self) -> HttpAnswer:
        return self._probe(*_get(self.url))


class GatewayLeg(InsideCall):
    """cvat_server → http://<gateway>:<bridge port>/health, no proxy in between."""

    SOURCE = "cvat_server"

    def __init__(self, find, prober, profile: Profile, gateway_ip: Callable[[], str], *, strict):
        super().__init__(self.SOURCE, find, prober, strict=strict)
        self.spec = next(p for p in profile.ports if p.exposure == "gateway")
        self._gateway_ip = gateway_ip

    @classmethod
    def _url(cls, profile: Profile, gateway_ip: str) -> str:
        port = next(p.port for p in profile.ports if p.exposure == "gateway")
        return f"http://{gateway_ip}:{port}/health"

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        # The gateway address may run a container to ask Docker: named on the batch's thread.
        yield Declared(cls.SOURCE, lambda: _get(cls._url(profile, facts.gateway_ip())))

    @cached_property
    def gateway_ip(self) -> str:
        return self._gateway_ip()

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"http://{self.gateway_ip}:{self.spec.port}/health"

    def why_unreachable(self, answer: HttpAnswer, bridge: Any) -> Diagnosis:
        published = _bindings(bridge)
        loopback_only = bool(published) and all(p.startswith("127.") for p in published)
        return Diagnosis(
            self.spec.container,
            f"GET {self.url} from inside cvat_server "
            + (f"answered {answer.status}" if answer.ok else "failed"),
            observed=answer.error or repr(answer.body)[:200],
            why=f"it publishes {', '.join(published) or 'nothing'}"
            + (": bound to 127.0.0.1 only, unreachable at the gateway" if loopback_only else ""),
            expected=f"200 at the Docker gateway {self.gateway_ip} (bridge.gateway)",
            consequence="every webhook fails",
            fix=f'publish it as "{self.spec.port}:8000" in bridge/docker-compose.bridge.yml',
        )


def _dashboard_url(env: dict[str, str]) -> str:
    return f"http://{env.get('NUCLIO_HOST') or 'nuclio'}:{env.get('NUCLIO_PORT') or '8070'}/api/versions"


class BridgeToDashboard(InsideCall):
    """The bridge → the Nuclio dashboard, where its environment says it is."""

    def __init__(self, find, prober, env: dict[str, str], *, strict: bool) -> None:
        super().__init__("bridge", find, prober, strict=strict)
        self.env = env
        self.url = _dashboard_url(env)

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        yield Declared("bridge", _get(_dashboard_url(facts.bridge_env())))

    def why_no_dashboard(self, answer: HttpAnswer) -> Diagnosis:
        return Diagnosis(
            "bridge",
            f"GET {self.url} from inside the bridge "
            + (f"answered {answer.status}" if answer.ok else "failed"),
            observed=answer.error or repr(answer.body)[:200],
            why=f"NUCLIO_HOST={self.env.get('NUCLIO_HOST', '(unset)')}, "
            f"NUCLIO_PORT={self.env.get('NUCLIO_PORT', '(unset)')} in its environment",
            expected="200 from the dashboard on cvat_cvat",
            consequence="the bridge cannot look the functions up",
            fix="NUCLIO_HOST=nuclio and NUCLIO_PORT=8070 in bridge/.env; both on cvat_cvat",
        )


def _require_deployed(fn: Function, port: int | None) -> int:
    if port is None:
        if fn.optional:
            not_asked(f"{fn.name}: optional in the profile and not deployed")
        pytest.skip(f"depends on functions/deployed-and-ready[{fn.name}]")
    return port


class BridgeToFunction(InsideCall):
    """The bridge → a function's trigger by its container name on cvat_cvat."""

    parameter = "expected_function"

    def __init__(self, find, prober, fn: Function, port: int | None, *, strict: bool) -> None:
        super().__init__("bridge", find, prober, strict=strict)
        self.fn, self.port = fn, port
        self.url = f"http://{fn.container}:8080/"

    @classmethod
    def probes(cls, param: Function, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        if facts.function_port(param.name) is not None:
            yield Declared("bridge", _get(f"http://{param.container}:8080/"))

    def require_deployed(self) -> None:
        _require_deployed(self.fn, self.port)

    def why_no_answer(self, answer: HttpAnswer) -> Diagnosis:
        return Diagnosis(
            "bridge",
            f"GET {self.url} from inside the bridge got no HTTP answer",
            observed=answer.error or "",
            expected="any HTTP answer from the function's trigger",
            consequence=f"the bridge cannot call {self.fn.name}",
            fix=f"deploy {self.fn.name} on cvat_cvat (spec.platform.attributes.network); "
            f"docker logs {self.fn.container}",
        )


class CvatToFunction(InsideCall):
    """cvat_server or cvat_worker_annotation → host.docker.internal:<the function's httpPort>."""

    parameter = "cvat_to_function"

    def __init__(self, source: str, find, prober, fn: Function, port: int | None, *, strict):
        super().__init__(source, find, prober, strict=strict)
        self.fn, self.port = fn, port
        self.url = f"http://host.docker.internal:{port}/"

    @classmethod
    def probes(cls, param: tuple[str, Function], profile, facts: RunFacts) -> Iterator[Declared]:
        source, fn = param
        if (port := facts.function_port(fn.name)) is not None:
            yield Declared(source, _get(f"http://host.docker.internal:{port}/"))

    def require_deployed(self) -> None:
        _require_deployed(self.fn, self.port)

    def why_no_answer(self, answer: HttpAnswer) -> Diagnosis:
        mapped = any(e.startswith("host.docker.internal:") for e in extra_hosts(self.container))
        calls = "online calls" if self.name == "cvat_server" else "automatic annotation requests"
        return Diagnosis(
            self.name,
            f"GET {self.url} from inside {self.name} got no HTTP answer",
            observed=answer.error or "",
            why=""
            if mapped
            else "extra_hosts has no host.docker.internal entry: the "
            "serverless overlay's host.docker.internal:host-gateway is missing",
            expected=f"any HTTP answer from {self.fn.name}'s published port {self.port}",
            consequence=f"CVAT's {calls} to {self.fn.name} fail with 503",
            fix="components/serverless/docker-compose.serverless.yml in the -f list"
            if not mapped
            else f"the function's container must publish its trigger (docker port "
            f"{self.fn.container}); functions/http-port-is-published says whether the port "
            "moved when the container restarted",
        )
