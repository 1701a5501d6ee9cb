"""What supervisord says about the programs in CVAT's containers (`supervisorctl status`), and
which of them it restarted. supervisord restarts a crashing uvicorn or RQ worker inside the
container, so the container's RestartCount never moves: only this shows it.

    >>> status = parse_status(
    ...     "rqworker-webhooks:rqworker-webhooks-0   RUNNING   pid 87, uptime 0:00:05\\n"
    ...     "smokescreen                      RUNNING   pid 12, uptime 0:04:05\\n"
    ...     "clamav_update                    EXITED    Dec 01 08:42 PM\\n"
    ... )
    >>> [(p.name, p.state, p.uptime_s) for p in status]
    [('rqworker-webhooks-0', 'RUNNING', 5), ('smokescreen', 'RUNNING', 245), ('clamav_update', 'EXITED', None)]
    >>> [p.name for p in restarted(status, container_age_s=250)]
    ['rqworker-webhooks-0']

supervisord's own log (~/logs/supervisord.log) cannot tell which container a line is from:
CVAT's compose mounts the cvat_logs volume at ~/logs in every backend container, so they all
write the same file. A restart is told by the program's uptime instead: supervisord starts a
container's programs together, so one much younger than its siblings was respawned.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from criobe_verify.probe_answers import ProgramInfo

SOCKET_URL = "unix:///tmp/supervisord/supervisor.sock"  # every CVAT supervisord conf's socket
STATUS_CMD = ["supervisorctl", "-s", SOCKET_URL, "status"]
# Programs the stack cannot do without; others (CVAT's clamav updater, which exits at once
# when ClamAV is off) are reported but do not fail the check.
REQUIRED_PROGRAMS = ("smokescreen", "uvicorn*", "nginx*", "rqworker*", "rqscheduler*", "server*")
# States that are no verdict yet, and how long supervisord may take to leave them: a program
# that keeps failing goes FATAL after startretries (3) backoffs of 1, 2 and 3 s.
UNSETTLED = ("STARTING", "BACKOFF")
SETTLE_S = 30
# supervisord spawns a container's programs within a second of each other.
SIBLING_GRACE_S = 3
# A lone program is compared with the container's start, which may precede supervisord by
# the migrations CVAT's entrypoint waits for.
LONE_GRACE_S = 120

_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<detail>.*)$")
_UPTIME = re.compile(
    r"pid (?P<pid>\d+), uptime (?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)"
)


@dataclass(frozen=True)
class Program:
    name: str  # process name, without the group prefix
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ...
    detail: str
    pid: int | None = None
    uptime_s: int | None = None

    @property
    def required(self) -> bool:
        return any(fnmatch.fnmatchcase(self.name, p) for p in REQUIRED_PROGRAMS)


def parse_status(output: str) -> list[Program]:
    programs = []
    for line in output.splitlines():
        m = _STATUS.match(line.strip())
        if not m:
            continue
        u = _UPTIME.search(m["detail"])
        uptime = (
            int(u["days"] or 0) * 86400 + int(u["h"]) * 3600 + int(u["m"]) * 60 + int(u["s"])
            if u
            else None
        )
        programs.append(
            Program(
                m["name"].rsplit(":", 1)[-1],
                m["state"],
                m["detail"].strip(),
                int(u["pid"]) if u else None,
                uptime,
            )
        )
    return programs


def from_rpc(processes: Iterable[ProgramInfo]) -> list[Program]:
    """Programs from supervisord's getAllProcessInfo (what `supervisorctl status` prints)."""
    programs = []
    for p in processes:
        running = p.statename == "RUNNING"
        programs.append(
            Program(
                p.name,
                p.statename,
                p.description,
                p.pid,
                int(p.now - p.start) if running and p.start and p.now is not None else None,
            )
        )
    return programs


def restarted(programs: Iterable[Program], container_age_s: float) -> list[Program]:
    """RUNNING programs that supervisord respawned after starting them with their siblings."""
    running = [p for p in programs if p.state == "RUNNING" and p.uptime_s is not None]
    if len(running) > 1:
        oldest = max(p.uptime_s for p in running)
        return [p for p in running if oldest - p.uptime_s > SIBLING_GRACE_S]
    return [p for p in running if container_age_s - p.uptime_s > LONE_GRACE_S]
