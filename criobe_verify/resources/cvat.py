"""CVAT's API as the bridge uses it: its own answers, and a session with the bridge's
credentials (what the suite creates there is scratch.py's; the facts are cvat_facts.py's).

    cvat = Cvat(profile)
    about = cvat.about()                                  # raw answers, over httpx
    session = cvat.session(cvat.login(credentials))       # cvat-sdk 2.29.0, the bridge's client
    me = session.me()
    expect(me.is_admin, lambda: session.why_not_admin(me))

What the suite creates and reads (projects with labels, tasks with data, jobs, annotations,
webhooks, deliveries, paging) goes through cvat-sdk 2.29.0, the client the bridge itself
uses, so the suite calls CVAT the way the bridge does. httpx stays where CVAT's raw answer is
the fact being checked: the about page, health, the login answer, the lambda call and its
listing. cvat-sdk is imported on the first SDK call, never with this module: a static
verdict of the lower layers does not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from criobe_verify.diagnosis import CheckFailed, Diagnosis, fail
from criobe_verify.http import http_client
from criobe_verify.profile import Profile
from criobe_verify.redact import REDACTOR
from criobe_verify.resources.bridge import Credentials
from criobe_verify.resources.cvat_facts import (
    About,
    Health,
    Job,
    Label,
    Login,
    OnlineCall,
    Project,
    Shape,
    Task,
    User,
)

if TYPE_CHECKING:
    from cvat_sdk import Client

SERVER = "cvat_server"
LOGIN_CHECK = "services/cvat-accepts-bridge-credentials"
TIMEOUT_S = 30  # per request; cvat-sdk sends its requests without one unless told


# --- the API's own answers (httpx) ------------------------------------------------------------


class Cvat:
    """CVAT's API without a session, read raw: what it answers is the fact."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Host": self.profile.cvat_host, "Accept": "application/vnd.cvat+json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        return http_client(base_url=self.profile.cvat_url, headers=headers, timeout=TIMEOUT_S)

    def about(self) -> About:
        with self.http() as client:
            r = client.get("/api/server/about")
        if r.status_code != 200:
            fail(Diagnosis(SERVER, f"GET /api/server/about answered {r.status_code}"))
        body = r.json()
        return About(str(body.get("version") or ""), body.get("name", ""))

    def health(self) -> Health:
        with self.http() as client:
            r = client.get("/api/server/health/", params={"format": "json"})
        try:
            checks = r.json()
        except ValueError:
            checks = {}
        return Health(r.status_code, checks if isinstance(checks, dict) else {})

    def login(self, credentials: Credentials) -> Login:
        """One login (each costs CVAT a password hash); its token becomes a secret."""
        with self.http() as client:
            body = {"username": credentials.username, "password": credentials.password}
            r = client.post("/api/auth/login", json=body)
        try:
            key = r.json().get("key") if r.status_code == 200 else None
        except (ValueError, AttributeError):
            key = None
        if key:
            REDACTOR.add(key)
        return Login(credentials, r.status_code, r.text, key)

    def session(self, login: Login) -> CvatSession:
        """A session on the login's token (Token auth, as cvat-sdk's own login sets it)."""
        if not login.key:
            fail(self.why_no_session(login))
        return CvatSession(self, login.key)

    def why_version_differs(self, about: About) -> Diagnosis:
        want = self.profile.cvat_version
        return Diagnosis(
            SERVER,
            f"/api/server/about reports version {about.version!r}",
            expected=f"{want!r} (profile {self.profile.name})",
            consequence=f"the CRIOBE bridge and functions are verified against CVAT {want}, "
            "not this release",
            fix=f"CVAT_VERSION=v{want} docker compose ... up -d, or update the profile after "
            "verifying the new version",
        )

    def why_unhealthy(self, health: Health) -> Diagnosis:
        broken = health.broken
        consequence, fix = "CVAT cannot serve its users", "docker logs cvat_server"
        if "DatabaseBackend" in broken:
            consequence = "CVAT cannot reach its database (cvat_db): nothing can be read or saved"
            fix = "docker compose ... up -d cvat_db; docker logs cvat_db"
        elif any(k.startswith("Cache backend") for k in broken):
            consequence = "a cache backend (Redis) is down: queues and frames fail"
            fix = "check cvat_redis_inmem / cvat_redis_ondisk"
        elif "DiskUsage" in broken:
            consequence = "Docker's disk is ≥ 90 % full"
            fix = "free disk space on Docker's root"
        return Diagnosis(
            SERVER,
            f"GET /api/server/health/?format=json answered {health.status}",
            observed="; ".join(f"{k}: {v!r}" for k, v in broken.items()) or "no checks",
            expected="every backend 'working'",
            consequence=consequence,
            fix=fix,
        )

    def why_login_refused(self, login: Login) -> Diagnosis:
        """A 5xx is no verdict on the credentials: the health page says which backend broke."""
        if login.status >= 500:
            health = self.health()
            return Diagnosis(
                SERVER,
                f"POST /api/auth/login answered {login.status}: a server error, not a verdict "
                "on the credentials",
                observed=f"health {health.status}: "
                + ("; ".join(f"{k}: {v!r}" for k, v in health.broken.items()) or "all working"),
                expected="200 with a token",
                consequence="nobody can log in, the bridge included",
                fix="fix the failing backend (see the health check); docker logs cvat_server",
            )
        c = login.credentials
        return Diagnosis(
            "bridge",
            "CVAT refuses the credentials in the bridge's environment",
            observed=f"{c.user_var}={c.username!r}, {c.password_var}=[REDACTED]: POST "
            f"/api/auth/login answered {login.status} {login.text[:200]!r}",
            expected="a token for the admin created after install",
            consequence="every webhook the bridge handles fails when it calls CVAT",
            fix=f"set {c.password_var} in bridge/.env to the password of CVAT user "
            f"{c.username!r}, then docker compose ... up -d bridge",
        )

    def why_no_session(self, login: Login) -> Diagnosis:
        return Diagnosis(
            SERVER,
            f"POST /api/auth/login with the bridge's credentials answered {login.status}",
            observed=repr(login.text[:200]),
            expected="200 with a token",
            consequence="no check can create projects or webhooks in CVAT",
            fix=f"see {LOGIN_CHECK}",
        )


# --- a session: cvat-sdk for what the suite creates and reads -----------------------------------


def sdk_client(url: str, host: str, token: str, timeout: float = TIMEOUT_S) -> Client:
    """cvat-sdk's Client on the bridge's token, sending the Host Traefik routes by and a
    timeout on every request. Its version check is off: the window is a check of its own
    (services/bridge-cvat-sdk-supports-server), asked of the bridge's SDK, not the suite's."""
    from cvat_sdk import Client

    client = Client(url, check_server_version=False)
    api = client.api_client
    api.set_default_header("Host", host)
    api.set_default_header("Authorization", f"Token {token}")
    rest = api.rest_client
    send = rest.request  # every SDK path (generated endpoints, uploads) goes through it

    def with_timeout(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return send(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = with_timeout
    return client


@contextmanager
def answering(what: str, expected: str = "200") -> Iterator[None]:
    """An SDK call whose error fails the check naming the request and CVAT's answer."""
    import urllib3
    from cvat_sdk.api_client.exceptions import ApiException

    try:
        yield
        return
    except ApiException as exc:
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
        found = Diagnosis(
            SERVER, f"{what} answered {exc.status}", observed=repr((body or "")[:300]),
            expected=expected,
        )  # fmt: skip
    except urllib3.exceptions.HTTPError as exc:
        found = Diagnosis(
            SERVER, f"{what} failed", observed=f"{type(exc).__name__}: {exc}", expected=expected
        )
    # The with statement hands the SDK's exception over as the context: the report shows the
    # diagnosis alone, not the SDK's headers and traceback.
    raise CheckFailed((found,)) from None


def paged(endpoint: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, as the JSON CVAT sent (see CvatSession on why not typed)."""
    from cvat_sdk.core.helpers import get_paginated_collection

    return get_paginated_collection(endpoint, return_json=True, _parse_response=False, **params)


def answer_json(call: Callable[..., tuple[Any, Any]], *args: Any, **params: Any) -> Any:
    """One SDK endpoint's answer as the JSON CVAT sent."""
    _, response = call(*args, _parse_response=False, **params)
    return json.loads(response.data)


class CvatSession:
    """CVAT logged in with the bridge's token: `sdk` (cvat-sdk, made on first use) reads and
    writes what the suite needs; `http` (httpx) asks where the raw answer is the fact.

    Listings, labels and annotations come through cvat-sdk's endpoints but are parsed from
    their JSON straight into the frozen facts of cvat_facts.py: the generated models validate
    every field of every element, 30 ms for one 117-point grid answer, which an e2e stage
    asks for every half second; typed, the 61 such reads of a services+webhooks+e2e run
    took 0.69 s of CPU against 0.13 s for them and the deliveries as JSON (measured
    without a profiler, on a 2-core host that also runs the functions), for a typed object
    the suite would only copy out of. Writes and single objects (users/self, creations,
    PATCHes, request status) stay typed.
    """

    def __init__(self, cvat: Cvat, token: str) -> None:
        self.cvat, self.profile = cvat, cvat.profile
        self.http = cvat.http(token)
        self._token = token
        self._sdk: Client | None = None

    @property
    def sdk(self) -> Client:
        if self._sdk is None:
            self._sdk = sdk_client(self.profile.cvat_url, self.profile.cvat_host, self._token)
        return self._sdk

    def close(self) -> None:
        self.http.close()
        if self._sdk is not None:
            self._sdk.close()

    # --- facts (cvat-sdk) ---

    def me(self) -> User:
        with answering("GET /api/users/self"):
            user, _ = self.sdk.api_client.users_api.retrieve_self()
        return User(
            user.username,
            tuple(user.get("groups") or ()),
            bool(user.get("is_superuser")),
            bool(user.get("is_staff")),
        )

    def projects(self) -> list[Project]:
        with answering("GET /api/projects"):
            found = paged(self.sdk.api_client.projects_api.list_endpoint, page_size=100)
        return [Project(p["id"], p["name"]) for p in found]

    def webhooks(self) -> list[dict[str, Any]]:
        with answering("GET /api/webhooks"):
            return paged(self.sdk.api_client.webhooks_api.list_endpoint, page_size=100)

    def listing(self, kind: str, page_size: int = 100, **filters: Any) -> list[dict[str, Any]]:
        """Every page of one of CVAT's listings (`projects`, `tasks`, `jobs`, `labels`,
        `webhooks`) as the JSON CVAT sent: the inventory's read (criobe_verify/inventory.py)."""
        with answering(f"GET /api/{kind}"):
            endpoint = getattr(self.sdk.api_client, f"{kind}_api").list_endpoint
            return paged(endpoint, page_size=page_size, **filters)

    def newest_delivery(self, webhook_id: int) -> dict[str, Any] | None:
        """The webhook's newest delivery: CVAT 2.29 lists them newest first (recording 21)
        and its deliveries endpoint takes no `sort`, so one page of one is enough."""
        with answering(f"GET /api/webhooks/{webhook_id}/deliveries"):
            data = answer_json(
                self.sdk.api_client.webhooks_api.list_deliveries, webhook_id, page_size=1
            )
        results = data.get("results") or []
        return max(results, key=lambda d: d.get("id", 0)) if results else None

    def annotations(self, job_id: int) -> dict[str, Any]:
        """A job's annotations (tags, shapes, tracks) as the JSON CVAT sent."""
        with answering(f"GET /api/jobs/{job_id}/annotations"):
            return answer_json(self.sdk.api_client.jobs_api.retrieve_annotations, job_id)

    def job_frame(self, job_id: int, number: int) -> bytes:
        """One frame of a job (its number in the task, as the job listing's start_frame
        gives it), original quality, the bytes CVAT serves."""
        with answering(f"GET /api/jobs/{job_id}/data?type=frame&number={number}"):
            _, r = self.sdk.api_client.jobs_api.retrieve_data(
                job_id, type="frame", number=number, quality="original", _parse_response=False
            )
        return r.data

    def labels(self, project_id: int) -> tuple[Label, ...]:
        with answering(f"GET /api/labels?project_id={project_id}"):
            found = paged(
                self.sdk.api_client.labels_api.list_endpoint, project_id=project_id, page_size=500
            )
        return tuple(Label.from_answer(m) for m in found)

    def tasks_in(self, project_id: int) -> list[Task]:
        with answering(f"GET /api/tasks?project_id={project_id}"):
            found = paged(
                self.sdk.api_client.tasks_api.list_endpoint, project_id=project_id, page_size=100
            )
        return [Task(t["id"], t["name"], t.get("project_id")) for t in found]

    def job_of(self, task_id: int) -> Job | None:
        with answering(f"GET /api/jobs?task_id={task_id}"):
            found = paged(self.sdk.api_client.jobs_api.list_endpoint, task_id=task_id)
        return Job.from_answer(found[0]) if found else None

    def update_job(self, job_id: int, **fields: str) -> Job:
        from cvat_sdk import models

        with answering(f"PATCH /api/jobs/{job_id} {fields}"):
            job, _ = self.sdk.api_client.jobs_api.partial_update(
                job_id, patched_job_write_request=models.PatchedJobWriteRequest(**fields)
            )
        return Job.from_answer(job)

    def rename_project(self, project: Project, name: str) -> Project:
        from cvat_sdk import models

        with answering(f"PATCH /api/projects/{project.id}"):
            found, _ = self.sdk.api_client.projects_api.partial_update(
                project.id,
                patched_project_write_request=models.PatchedProjectWriteRequest(name=name),
            )
        return Project(found.id, found.name)

    def shapes(self, job_id: int) -> tuple[Shape, ...]:
        with answering(f"GET /api/jobs/{job_id}/annotations"):
            data = answer_json(self.sdk.api_client.jobs_api.retrieve_annotations, job_id)
        return tuple(Shape.from_answer(s) for s in data["shapes"])

    def frame(self, task_id: int) -> bytes | None:
        """Frame 0 as CVAT serves it to the bridge (original quality), or None."""
        from cvat_sdk.api_client.exceptions import ApiException

        try:
            _, r = self.sdk.api_client.tasks_api.retrieve_data(
                task_id, type="frame", number=0, quality="original", _parse_response=False
            )
        except ApiException:
            return None
        return r.data

    # --- the lambda API, raw (httpx): its answer is the fact ---

    def lambda_functions(self) -> httpx.Response:
        return self.http.get("/api/lambda/functions")

    def call_online(self, function: str, task_id: int, frame: int = 0) -> OnlineCall:
        r = self.http.post(
            f"/api/lambda/functions/{function}", json={"task": task_id, "frame": frame}
        )
        try:
            data = r.json()
        except ValueError:
            data = None
        return OnlineCall(function, r.status_code, r.text, data)

    def why_not_admin(self, user: User) -> Diagnosis:
        return Diagnosis(
            SERVER,
            f"the bridge's user {user.username!r} is not in CVAT's admin group",
            observed=f"groups {list(user.groups)}, is_superuser={user.is_superuser}, "
            f"is_staff={user.is_staff}",
            why="CVAT decides privileges by group membership, not by the Django flags",
            expected="'admin' in groups",
            consequence="the bridge cannot create tasks in every project nor read every job (403)",
            fix="docker exec -it cvat_server bash -ic 'python3 ~/manage.py createsuperuser' "
            "and put that user in bridge/.env, or add the user to the admin group in "
            "CVAT's admin page (/admin)",
        )

    def why_online_call_failed(self, call: OnlineCall) -> Diagnosis:
        return Diagnosis(
            SERVER,
            f"POST /api/lambda/functions/{call.function} answered {call.status}",
            observed=call.text[:400],
            expected="200 with the function's shapes",
            consequence="CVAT's automatic annotation with this model fails",
            fix="cvat_server reaches the function at host.docker.internal:<httpPort>: "
            "see the reachability layer",
        )

    def why_online_call_changed(self, call: OnlineCall, expected: list) -> Diagnosis:
        return Diagnosis(
            SERVER,
            f"the online call of {call.function} did not return what the function answered",
            observed=json.dumps(call.data)[:300],
            expected=f"the function's answer, filtered by CVAT's rules: {json.dumps(expected)[:300]}",
            consequence="what CVAT stores differs from what the model found",
            fix="compare the function's labels and attributes with the project's",
        )
