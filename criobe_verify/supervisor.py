"""What supervisord says about the programs in CVAT's containers: `supervisorctl status` and
the restarts its main log records. supervisord restarts a crashing uvicorn or RQ worker inside
the container, so the container's RestartCount never moves: only this shows it.

    >>> status = parse_status(
    ...     "rqworker-webhooks:rqworker-webhooks-0   RUNNING   pid 87, uptime 0:04:05\\n"
    ...     "smokescreen                      FATAL     Exited too quickly (process log may have details)\\n"
    ... )
    >>> [(p.name, p.state) for p in status]
    [('rqworker-webhooks-0', 'RUNNING'), ('smokescreen', 'FATAL')]
    >>> log = "2026-12-01 10:00:00,100 INFO supervisord started with pid 1\\n" \\
    ...       "2026-12-01 10:05:00,000 WARN exited: rqworker-webhooks-0 (terminated by SIGKILL; not expected)\\n"
    >>> [(e.name, e.reason) for e in unexpected_exits(log)]
    [('rqworker-webhooks-0', 'terminated by SIGKILL')]
"""

from __future__ import annotations

import datetime
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

SOCKET_URL = "unix:///tmp/supervisord/supervisor.sock"  # every CVAT supervisord conf's socket
STATUS_CMD = ["supervisorctl", "-s", SOCKET_URL, "status"]
MAINTAIL_CMD = ["supervisorctl", "-s", SOCKET_URL, "maintail", "-200000"]
# Programs the stack cannot do without; others (CVAT's clamav updater, which exits at once
# when ClamAV is off) are reported but do not fail the check.
REQUIRED_PROGRAMS = ("smokescreen", "uvicorn*", "nginx*", "rqworker*", "rqscheduler*", "server*")

_STATUS = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<detail>.*)$")
_LOG = re.compile(r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ (?P<level>[A-Z]+) (?P<msg>.*)$")
_EXITED = re.compile(r"^exited: (?P<name>\S+) \((?P<reason>.*); not expected\)$")


@dataclass(frozen=True)
class Program:
    name: str  # process name, without the group prefix
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, ...
    detail: str

    @property
    def required(self) -> bool:
        return any(fnmatch.fnmatchcase(self.name, p) for p in REQUIRED_PROGRAMS)


@dataclass(frozen=True)
class Exit:
    name: str
    reason: str
    at: datetime.datetime


def parse_status(output: str) -> list[Program]:
    programs = []
    for line in output.splitlines():
        m = _STATUS.match(line.strip())
        if m:
            programs.append(Program(m["name"].rsplit(":", 1)[-1], m["state"], m["detail"].strip()))
    return programs


def unexpected_exits(log: str) -> list[Exit]:
    """Unexpected exits since supervisord last started (each was followed by a restart,
    unless the program then went FATAL)."""
    exits: list[Exit] = []
    for line in log.splitlines():
        m = _LOG.match(line.strip())
        if not m:
            continue
        if m["msg"].startswith("supervisord started"):
            exits = []
            continue
        e = _EXITED.match(m["msg"])
        if e:
            at = datetime.datetime.strptime(m["stamp"], "%Y-%m-%d %H:%M:%S")
            exits.append(Exit(e["name"], e["reason"], at))
    return exits


def recent(exits: Iterable[Exit], now: datetime.datetime, within_s: float) -> list[Exit]:
    return [e for e in exits if (now - e.at).total_seconds() <= within_s]
