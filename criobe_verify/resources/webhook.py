"""A CVAT webhook and its deliveries, the worker that sends its events, and the lab's own
webhooks to the bridge.

    webhook = scratch.webhook(project.id, "http://bridge.gateway:8000/health", ["update:job"])
    ping = webhook.ping()                       # cvat_server sends it at once: a Delivery
    delivery = webhook.delivery("update:job", within=30, unready=why_not_sent)   # waited for

A ping is sent by cvat_server itself; events are queued and sent by cvat_worker_webhooks, each
through its own Smokescreen. Deliveries are read as CVAT sends them (JSON, not cvat-sdk's
typed model): a delivery's `response` is the body text, which the typed model rejects
(CONTRACTS §8).

    >>> d = Delivery(1, "ping", 407, "Egress proxying is denied")
    >>> d.describe()
    "407 'Egress proxying is denied'"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from criobe_verify.bridge_hooks import BridgeHook
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.memo import Once
from criobe_verify.profile import Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.resources.bridge import HttpAnswer
from criobe_verify.resources.cvat import SERVER, answering, paged
from criobe_verify.waiting import Appears, Unready

if TYPE_CHECKING:
    import httpx

    from criobe_verify.resources.cvat import CvatSession

SMOKESCREEN_STATUSES = {
    407: "Smokescreen refused it",
    502: "Smokescreen could not connect",
    504: "Smokescreen timed out",
}
WORKER = "cvat_worker_webhooks"


@dataclass(frozen=True)
class Delivery:
    id: int
    event: str
    status_code: int
    response: str = ""  # the target's answer body, as CVAT recorded it
    created_date: str = ""
    updated_date: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Delivery:
        return cls(
            d["id"],
            d["event"],
            d["status_code"],
            str(d.get("response") or ""),
            d.get("created_date") or "",
            d.get("updated_date") or "",
        )

    @property
    def when(self) -> str:
        return self.updated_date or self.created_date

    def describe(self, width: int = 300) -> str:
        return f"{self.status_code} {self.response[:width]!r}"

    def came_from(self, direct: HttpAnswer) -> bool:
        """Whether the recorded answer is the bridge's own (what a direct POST gets), not
        Smokescreen's 407/502/504."""
        return direct.same_as(self.status_code, self.response)


class Webhook:
    """A webhook the suite created, read through cvat-sdk 2.29.0."""

    def __init__(self, session: CvatSession, id: int, target_url: str, project_id: int) -> None:
        self.session, self.id, self.target_url, self.project_id = (
            session,
            id,
            target_url,
            project_id,
        )

    @property
    def _api(self) -> Any:
        return self.session.sdk.api_client.webhooks_api

    def ping(self) -> Delivery:
        """POST /api/webhooks/<id>/ping: cvat_server sends it at once and returns the
        delivery (read raw: see the module's docstring)."""
        with answering(f"POST /api/webhooks/{self.id}/ping"):
            _, r = self._api.create_ping(self.id, _parse_response=False, _check_status=False)
        if r.status != 200:
            fail(
                Diagnosis(
                    SERVER,
                    f"ping answered {r.status}",
                    observed=r.data.decode(errors="replace")[:300],
                )
            )
        return Delivery.from_json(json.loads(r.data))

    def deliveries(self) -> list[Delivery]:
        """Newest first."""
        with answering(f"GET /api/webhooks/{self.id}/deliveries"):
            found = paged(self._api.list_deliveries_endpoint, id=self.id, page_size=100)
        return [Delivery.from_json(d) for d in found]

    def newest(self) -> Delivery | None:
        found = self.deliveries()
        return found[0] if found else None

    def delivery(
        self, event: str | None, *, within: float, unready: Callable[[Unready], Diagnosis]
    ) -> Delivery:
        """The newest delivery of `event` (None: of any event), waited for; the check fails
        with `unready`'s diagnosis when none comes within the bound."""

        def look() -> tuple[Delivery | None, str]:
            found = [d for d in self.deliveries() if event is None or d.event == event]
            return (found[0] if found else None), f"{len(found)} {event or 'any'} deliveries"

        what = f"the {event or 'first'} delivery of webhook {self.id}"
        return Appears(what, look, unready).wait(within, interval=0.05)

    # --- diagnoses ---

    def why_not_the_bridge(self, delivery: Delivery, direct: HttpAnswer, sender: str) -> Diagnosis:
        return Diagnosis(
            sender,
            f"the delivery to {self.target_url} did not come back from the bridge",
            observed=delivery.describe(),
            why=SMOKESCREEN_STATUSES.get(
                delivery.status_code, "another answer than the bridge's own"
            )
            + f" (a direct POST to the bridge answers {direct.status} {direct.body[:80]!r})",
            expected="the bridge's own answer",
            consequence="CVAT's webhooks never reach the bridge, so nothing is automated",
            fix=f"see the gateway layer's checks for {sender} (SMOKESCREEN_OPTS, bridge.gateway)",
        )

    def why_ping_not_200(self, ping: Delivery) -> Diagnosis:
        return Diagnosis(
            "bridge",
            f"the ping of a webhook to {self.target_url} shows {ping.status_code}",
            observed=ping.describe(),
            why="405: /health accepts GET only; the guide expects its ping to show 200"
            if ping.status_code == 405
            else "",
            expected="200, as the install guide's post-installation check says",
            consequence="the guide's verification step fails for the lab",
            fix="let /health accept POST in the bridge, or set bridge.health_accepts_post = "
            "false in the profile if a GET-only /health is intended",
        )

    def why_event_not_sent(self, cause: str) -> Callable[[Unready], Diagnosis]:
        """For `delivery(unready=...)`: no event delivery after `cause` (what the suite did)."""

        def explain(how: Unready) -> Diagnosis:
            return Diagnosis(
                WORKER,
                f"no update:job delivery for webhook {self.id} {how.timeout_s:.0f} s after {cause}",
                why="events are queued on RQ queue 'webhooks' and only cvat_worker_webhooks "
                "sends them",
                expected="a delivery within seconds",
                consequence="no job or task event reaches the bridge",
                fix="docker logs cvat_worker_webhooks; docker restart cvat_worker_webhooks",
            )

        return explain

    def why_event_lost(self, delivery: Delivery, direct: HttpAnswer) -> Diagnosis:
        """An event that did not reach the bridge: a ping (cvat_server's own path) tells the
        two senders apart."""
        ping = self.ping()
        if ping.status_code == delivery.status_code:
            return self.why_not_the_bridge(delivery, direct, WORKER)
        return Diagnosis(
            WORKER,
            f"the {delivery.event} event to {self.target_url} was delivered with "
            f"{delivery.describe()}, while the ping from cvat_server was delivered with "
            f"{ping.status_code}",
            why="events go through cvat_worker_webhooks' own Smokescreen"
            + (
                ": a 407 there with a working ping means SMOKESCREEN_OPTS allows the gateway "
                "on cvat_server but not on cvat_worker_webhooks"
                if delivery.status_code == 407
                else ""
            ),
            expected="the bridge's own answer",
            consequence="every job and task event is lost, so the pipeline never chains",
            fix='SMOKESCREEN_OPTS: "--allow-address=<gateway>" on cvat_worker_webhooks in '
            "bridge/docker-compose.bridge.yml",
        )


NO_LAB_WEBHOOKS = (
    "No webhook of the lab's points at the bridge yet (the guide's post-install step adds "
    "them); the e2e layer checks the pipeline with webhooks of its own."
)


class LabWebhooks:
    """The lab's own webhooks to the bridge (not the suite's), read, never changed or pinged."""

    def __init__(
        self, session: CvatSession, gateway_host: str, functions: Once[httpx.Response]
    ) -> None:
        self.session, self.functions = session, functions
        parsed = (BridgeHook.parse(w, gateway_host) for w in session.webhooks())
        self.hooks = [h for h in parsed if h is not None]

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def misnamed(self) -> list[str]:
        """Per webhook naming a project or a function CVAT does not have, what is missing."""
        projects = {p.id: p.name for p in self.session.projects()}
        r = self.functions()
        functions = {f["id"] for f in r.json()} if r.status_code == 200 else set()
        return [
            f"webhook {h.id} of project {projects.get(h.project_id, h.project_id)!r} → "
            f"/{h.endpoint}: " + "; ".join(problems)
            for h in self.hooks
            if (problems := h.problems(set(projects), functions))
        ]

    def failing(self) -> list[tuple[BridgeHook, Delivery]]:
        """Each webhook whose newest delivery was not answered 200, with it."""
        newest = [
            (h, Webhook(self.session, h.id, h.target_url, h.project_id).newest())
            for h in self.hooks
        ]
        return [(h, d) for h, d in newest if d is not None and d.status_code != 200]

    def why_misnamed(self, bad: list[str]) -> Diagnosis:
        status = self.functions().status_code
        return Diagnosis(
            SERVER,
            f"{len(bad)} of the lab's {len(self.hooks)} webhook(s) to the bridge name what "
            "CVAT does not have",
            observed="; ".join(bad[:5]),
            why=""
            if status == 200
            else f"GET /api/lambda/functions answered {status}, so no model_name can be found",
            expected="target_proj_id the id of the next stage's project (its URL in CVAT: "
            "/projects/<id>), model_name a function CVAT lists",
            consequence="the bridge answers those deliveries with an error and the quadrat "
            "stops at that stage",
            fix="edit the webhook in CVAT (Project → Actions → Setup webhooks)",
        )

    def why_failing(self, failing: list[tuple[BridgeHook, Delivery]]) -> Diagnosis:
        refused = any(d.status_code == 403 for _, d in failing)
        return Diagnosis(
            "bridge",
            f"the newest delivery of {len(failing)} of the lab's webhook(s) failed",
            observed="; ".join(
                f"webhook {h.id} → /{h.endpoint}: {d.event} at {d.when} {d.describe()}"
                for h, d in failing[:5]
            ),
            why="403: the webhook's secret is not WEBHOOK_SECRET in bridge/.env (or the "
            "webhook has none and the bridge requires one)"
            if refused
            else "",
            expected="200 from the bridge",
            consequence="those stages do not run for the lab's quadrats",
            fix="give the webhook the secret in bridge/.env (or empty both)"
            if refused
            else "the bridge's log at that time (docker logs bridge) says why",
        )


@dataclass(frozen=True)
class Process:
    pid: int
    state: str  # /proc state: R, S, T (stopped), Z, ...
    argv: tuple[str, ...]


_PROCESSES = ("processes_with", "webhooks")


class WebhooksWorker(Resource):
    """cvat_worker_webhooks, the only consumer of RQ queue `webhooks`: its processes, as a
    probe inside it sees them (declared: read from the run's prefetch)."""

    NAME = WORKER

    def __init__(self, find: Callable[[str], Any], prober: Any, *, strict: bool = False) -> None:
        super().__init__(self.NAME, lambda: find(self.NAME), prober, strict=strict)
        self.find = find

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        yield Declared(cls.NAME, _PROCESSES)

    def processes(self) -> list[Process]:
        answer = self._probe(*_PROCESSES)
        return [Process(p.pid, p.state, p.argv) for p in answer.processes]

    def why_no_job_taken(self, how: Unready) -> Diagnosis:
        procs = self.processes()
        shown = "; ".join(f"pid {p.pid} state {p.state}: {' '.join(p.argv)[:90]}" for p in procs)
        return Diagnosis(
            self.NAME,
            f"no RQ worker took the update:project job from the 'webhooks' queue in "
            f"{how.waited_s:.0f} s",
            observed=f"processes: {shown or 'none with webhooks in their command line'}",
            why="its worker process is stopped (state T): alive, but taking no job"
            if any(p.state == "T" for p in procs)
            else "",
            expected="a delivery record within seconds",
            consequence="every webhook event stays queued, so the pipeline never chains (pings "
            "still work: cvat_server sends those itself)",
            fix="docker restart cvat_worker_webhooks; docker logs cvat_worker_webhooks",
        )
