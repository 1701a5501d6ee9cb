"""A resource: one thing of the stack (the Smokescreen in cvat_server, ...) as the checks see
it, in the manner of pytest-testinfra's modules: its facts are properties and methods that
return typed answers, and it owns the diagnosis of each way it can be wrong.

    class Smokescreen(Resource):
        parameter = "gateway_container"        # which one: the checks' parameter

        @classmethod
        def probes(cls, param, profile, facts):  # every probe it will make, for the prefetch
            yield Declared(param, ("listening", profile.gateway.proxy))

        @cached_property
        def listening(self) -> Listening:
            return self._probe("listening", self.proxy)

A resource makes its probes through `_probe`, which reads the run's prefetched answer; under
--strict-probes (the twin, the fault harness) a probe its class did not declare fails the
check, naming the probe and the class, so the declarations cannot drift from the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.probes import Call, Prober
from criobe_verify.profile import Profile


@dataclass(frozen=True)
class Declared:
    """A probe a resource will make: in which container (the profile's name), which call. A
    call that needs a slow fact (the gateway address, which runs a container to ask Docker)
    is given as a function: the prefetch names it on its own thread, off the run's path.

    >>> Declared("cvat_server", ("listening", "127.0.0.1:4750")).deferred
    False
    """

    container: str
    call: Call | Callable[[], Call]

    @property
    def deferred(self) -> bool:
        return callable(self.call)


class RunFacts:
    """What declarations may need to name their probes, each asked once, on first use.

    >>> facts = RunFacts(stack_ip=lambda name: {"cvat_db": "172.23.0.3"}.get(name),
    ...                  gateway_ip=lambda: "172.17.0.1")
    >>> facts.stack_ip("cvat_db"), facts.stack_ip("cvat_opa")
    ('172.23.0.3', None)
    """

    def __init__(
        self,
        stack_ip: Callable[[str], str | None],
        gateway_ip: Callable[[], str],
        bridge_env: Callable[[], dict[str, str]] = dict,
        function_port: Callable[[str], int | None] = lambda name: None,
        function_entry: Callable[[str], dict[str, Any] | None] = lambda name: None,
    ) -> None:
        self._stack_ip = stack_ip
        self._ips: dict[str, str | None] = {}
        self._gateway_ip = gateway_ip
        self._bridge_env = bridge_env
        self._env: dict[str, str] | None = None
        self._function_port = function_port
        self._ports: dict[str, int | None] = {}
        self._function_entry = function_entry
        self._entries: dict[str, dict[str, Any] | None] = {}

    def function_entry(self, name: str) -> dict[str, Any] | None:
        """A function as the dashboard lists it (metadata, spec, status); None where it is
        not deployed."""
        if name not in self._entries:
            self._entries[name] = self._function_entry(name)
        return self._entries[name]

    def bridge_env(self) -> dict[str, str]:
        """The bridge container's environment (where it looks the dashboard up)."""
        if self._env is None:
            self._env = self._bridge_env()
        return self._env

    def function_port(self, name: str) -> int | None:
        """The host port the dashboard says a function's trigger is published on; None where
        the function is not deployed (its check says so)."""
        if name not in self._ports:
            self._ports[name] = self._function_port(name)
        return self._ports[name]

    def stack_ip(self, name: str) -> str | None:
        """A container's address on the stack network; None where it has none (its check
        says why)."""
        if name not in self._ips:
            self._ips[name] = self._stack_ip(name)
        return self._ips[name]

    def gateway_ip(self) -> str:
        """The address host-gateway gives containers. It may wait for Docker: call it only
        inside a deferred call (`Declared(name, lambda: (...))`)."""
        return self._gateway_ip()


class Resource:
    """One thing of the stack, in one container, as the checks see it."""

    # The checks' parameter that says which one (its value is the container's profile name);
    # None for a resource of which the stack has one.
    parameter: ClassVar[str | None] = None

    def __init__(
        self, name: str, find: Callable[[], Any], prober: Prober | None, *, strict: bool
    ) -> None:
        self.name = name  # the profile's name of the container, as messages say it
        self._find = find
        self.prober = prober
        self.strict = strict

    @cached_property
    def container(self) -> Any:
        """Its Docker container, looked up when a fact first needs it: a missing one fails
        the check that asks (saying so), not the fixture that handed the resource out."""
        return self._find()

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterable[Declared]:
        """Every probe an instance for `param` will make: the run's prefetch is the union of
        what the selected checks' resources declare."""
        return ()

    def _probe(self, probe: str, *args: str) -> Any:
        """The answer to a probe in this resource's container, read from the prefetch: the
        probe's typed answer (criobe_verify.probe_answers.ANSWERS says which)."""
        if self.prober is None:
            raise RuntimeError(f"{type(self).__name__}({self.name}) was built without a prober")
        if (
            self.strict
            and type(self) not in self.prober.undeclarable_classes
            and not self.prober.declared(self.container, probe, *args)
        ):
            fail(self.undeclared(probe, *args))
        return self.prober.run(self.container, probe, *args)

    def undeclared(self, probe: str, *args: str) -> Diagnosis:
        """A probe made live that the class did not declare (the strict-probes rule)."""
        cls = f"{type(self).__module__}.{type(self).__qualname__}"
        call = f"{probe}({', '.join(repr(a) for a in args)})"
        return Diagnosis(
            self.name,
            f"probe {call} was made live without having been declared",
            why=f"{cls}.probes() does not declare it, so the run's prefetch did not make it",
            expected="every probe a resource makes declared by its class (--strict-probes)",
            consequence="the declarations drifted from the facts the checks read: an "
            "undeclared probe costs its check an exec of its own",
            fix=f"declare {(probe, *args)!r} in {cls}.probes()",
        )
