"""The supervisord inside one of CVAT's containers: the programs it runs, once settled, and
the diagnosis of a program down or respawned. supervisord restarts a crashing uvicorn or RQ
worker inside the container, so the container's RestartCount never moves: only this shows it.

    s = Supervisord(containers["cvat_worker_webhooks"], prober, window_s=600, strict=True)
    programs = s.settled_programs()          # STARTING/BACKOFF waited out, bounded
    expect(not s.failing(programs), lambda: s.why_failing(programs))

It declares one probe, supervisord's control socket (the same XML-RPC that supervisorctl
uses), prefetched as the run starts; where it did not answer, `supervisorctl status` is run in
the container, and where the container has neither, the check skips saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import pytest

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.probe_answers import SupervisorState
from criobe_verify.probes import Prober, ProbeUnavailable, exec_in, missing_tool
from criobe_verify.profile import Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.resources.container import StackContainer, role
from criobe_verify.supervisor import (
    SETTLE_S,
    SOCKET_URL,
    STATUS_CMD,
    UNSETTLED,
    Program,
    from_rpc,
    parse_status,
    restarted,
)
from criobe_verify.waiting import settle

_SOCKET_CALL = ("supervisor", SOCKET_URL.removeprefix("unix://"))


class Supervisord(Resource):
    parameter = "supervised_container"

    def __init__(
        self, container: StackContainer, prober: Prober, window_s: float, *, strict: bool
    ) -> None:
        super().__init__(container.name, lambda: container.container, prober, strict=strict)
        self.stack_container, self.window_s = container, window_s

    @classmethod
    def probes(cls, param: str, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        yield Declared(param, _SOCKET_CALL)

    @cached_property
    def answer(self) -> SupervisorState:
        try:
            return self._probe(*_SOCKET_CALL)
        except ProbeUnavailable as exc:  # no python3 here: supervisorctl may still answer
            return SupervisorState.failed(str(exc))

    def _status(self) -> list[Program]:
        code, out = exec_in(self.container, STATUS_CMD)
        if missing_tool(code, out):
            pytest.skip(
                f"{self.name}: has no supervisorctl ({out.strip()[-120:]}) and its "
                f"control socket did not answer ({self.answer.error}); "
                "CVAT's server image has both"
            )
        return parse_status(out)

    def settled_programs(self, timeout: float = SETTLE_S) -> list[Program]:
        """Its programs once supervisord has settled them: STARTING (within startsecs) and
        BACKOFF (between retries) are no verdict yet, so wait, bounded, for RUNNING or for
        supervisord to give a program up (FATAL)."""
        seen = [from_rpc(self.answer.programs) if self.answer.ok else self._status()]

        def settled() -> tuple[bool, str]:
            unsettled = [p.name for p in seen[-1] if p.state in UNSETTLED]
            if unsettled:
                seen.append(self._status())
            return not unsettled, f"{', '.join(unsettled) or 'none'} unsettled"

        settle(settled, timeout=timeout, what=f"supervisord in {self.name}")
        return seen[-1]

    def down(self, programs: list[Program]) -> list[Program]:
        return [p for p in programs if p.required and p.state != "RUNNING"]

    def respawned(self, programs: list[Program]) -> list[Program]:
        age = self.stack_container.state.age_s or 0
        return [p for p in restarted(programs, age) if p.required and p.uptime_s < self.window_s]

    def failing(self, programs: list[Program]) -> list[Program]:
        return self.down(programs) + self.respawned(programs)

    # -- diagnoses ----------------------------------------------------------------------

    def why_no_programs(self) -> Diagnosis:
        c = self.stack_container
        return Diagnosis(
            c.label,
            f"`{' '.join(STATUS_CMD)}` gave no program list",
            observed=self.answer.error or "",
            expected="supervisord answering on its control socket, as in CVAT's images",
            consequence="nothing in the container is supervised as CVAT expects",
            fix=f"docker logs {c.container.name}; {c._fix()}",
            logs=c.logs(),
        )

    def why_failing(self, programs: list[Program]) -> list[Diagnosis]:
        c = self.stack_container
        logs = c.logs()
        name = c.container.name
        found = [
            Diagnosis(
                c.label,
                f"supervisord program {p.name} is {p.state}",
                observed=p.detail,
                expected="RUNNING",
                consequence=f"{role(c.name)} ({p.name} is not running)",
                fix=f"docker logs {name} shows why; then docker restart {name}",
                logs=logs,
            )
            for p in self.down(programs)
        ]
        eldest = max((q.uptime_s or 0 for q in programs), default=0)
        return found + [
            Diagnosis(
                c.label,
                f"supervisord restarted {p.name} {p.uptime_s} s ago",
                observed=f"{p.name} up {p.uptime_s} s, its siblings up {eldest} s",
                why="it exited and supervisord respawned it inside the container",
                expected=f"no restart in the last {self.window_s:.0f} s",
                consequence=f"{role(c.name)} while it is down, and work in flight is lost",
                fix=f"docker logs {name} around that time shows why it exited",
                logs=logs,
            )
            for p in self.respawned(programs)
        ]
