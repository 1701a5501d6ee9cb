"""The supervisord inside one of CVAT's containers: the programs it runs, once settled, and
the diagnosis of a program down or respawned. supervisord restarts a crashing uvicorn or RQ
worker inside the container, so the container's RestartCount never moves: only this shows it.

    s = Supervisord(containers["cvat_worker_webhooks"], answer, window_s=600)
    programs = s.settled_programs()          # STARTING/BACKOFF waited out, bounded
    expect(not s.failing(programs), lambda: s.why_failing(programs))

`answer` is the prefetched reply of supervisord's control socket (the same XML-RPC that
supervisorctl uses); where it did not answer, `supervisorctl status` is run in the container,
and where the container has neither, the check skips saying so.
"""

from __future__ import annotations

import pytest

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.probe_answers import SupervisorState
from criobe_verify.probes import exec_in, missing_tool
from criobe_verify.resources.container import StackContainer, role
from criobe_verify.supervisor import (
    SETTLE_S,
    STATUS_CMD,
    UNSETTLED,
    Program,
    from_rpc,
    parse_status,
    restarted,
)
from criobe_verify.waiting import wait_at_most


class Supervisord:
    def __init__(self, container: StackContainer, answer: SupervisorState, window_s: float) -> None:
        self.container, self.answer, self.window_s = container, answer, window_s

    def _status(self) -> list[Program]:
        code, out = exec_in(self.container.container, STATUS_CMD)
        if missing_tool(code, out):
            pytest.skip(
                f"{self.container.name}: has no supervisorctl ({out.strip()[-120:]}) and its "
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

        wait_at_most(settled, timeout=timeout, what=f"supervisord in {self.container.name}")
        return seen[-1]

    def down(self, programs: list[Program]) -> list[Program]:
        return [p for p in programs if p.required and p.state != "RUNNING"]

    def respawned(self, programs: list[Program]) -> list[Program]:
        age = self.container.state.age_s or 0
        return [p for p in restarted(programs, age) if p.required and p.uptime_s < self.window_s]

    def failing(self, programs: list[Program]) -> list[Program]:
        return self.down(programs) + self.respawned(programs)

    # -- diagnoses ----------------------------------------------------------------------

    def why_no_programs(self) -> Diagnosis:
        c = self.container
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
        c, logs = self.container, self.container.logs()
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
