"""The CVAT twin's lambda manager answers like the real CVAT 2.29.0 the exchanges in
selftests/data/contracts/cvat-2.29.0-lambda were recorded from, and sends the Nuclio dashboard
and the functions what it sent them.

    pytest selftests/test_cvat_lambda_conformance.py -m lambda_twin   # Docker (image builds)

A private twin (selftests/lambda_twin.py: project criobelambda, its own network, test tags,
free loopback ports) runs with a stub dashboard answering nuclio_api_functions.json as service
`nuclio`, and stub functions on free host ports (their status.httpPort) that answer
nuclio_function_answers.json, or what a recorded exchange says they answered. Every exchange
is replayed in order and compared key by key and type by type (selftests/cvat_replay.py), ids
checked against the objects the replay paired them with; each exchange's dashboard requests
and each call's function requests are compared with the recorded ones: request line, headers
in order, body keys in order, the image's bytes, and which container sent them. The recorded
JPEG is not in the repository: a deterministic one of the same size stands in, and the
functions must receive exactly its bytes.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time

import httpx
import pytest

from selftests import cvat_replay as replay
from selftests.data import CONTRACTS
from selftests.lambda_twin import LambdaTwin, free_port

pytestmark = pytest.mark.lambda_twin

RECORDINGS = CONTRACTS / "cvat-2.29.0-lambda"
RECORDED_PORTS = {"pth-yolo-gridcorners": 32768, "pth-yolo-coralsegv4": 32769}
RECORDED_CLOSED_PORT = 32770
# The recording's slow function waited 8 s; what the exchanges show (started, progress 0, a
# second request refused) holds for any delay longer than the few exchanges made meanwhile.
SLOW_DELAY_S = 3.0
FINAL = ("finished", "failed")
ORDER = {"queued": 0, "deferred": 0, "scheduled": 0, "started": 1, "finished": 2, "failed": 2}

# Exchanges the replay does not reproduce, and why.
NOT_REPLAYED: dict[str, str] = {}


def exchanges() -> list[tuple[str, dict]]:
    return [
        (p.name, json.loads(p.read_text())) for p in sorted(RECORDINGS.glob("[0-9][0-9]_*.json"))
    ]


def _json(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def is_call(exchange: dict) -> bool:
    """An online call or a request create: what makes CVAT invoke a function."""
    req = exchange["request"]
    return req["method"] == "POST" and (
        req["path"].startswith("/api/lambda/functions/") or req["path"] == "/api/lambda/requests"
    )


def recorded_server(items: list[tuple[str, dict]]) -> str:
    """The recorded cvat_server's address: the one that asked the dashboard."""
    return next(r["client"] for _, e in items for r in e.get("nuclio_dashboard_requests", []))


def attributed_requests(items: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """Each call -> the recorded function requests it caused. An online call's come from
    cvat_server, within its own exchange; a batch run's come from the worker while CVAT is
    polled, so they belong to the last request create that was accepted (200)."""
    server = recorded_server(items)
    calls: dict[str, list[dict]] = {}
    batch = None
    for name, exchange in items:
        if is_call(exchange):
            calls[name] = []
            accepted = exchange["response"]["status"] == 200
            if exchange["request"]["path"] == "/api/lambda/requests" and accepted:
                batch = name
        for request in exchange.get("function_requests", []):
            owner = name if request["client"] == server else batch
            calls[owner].append(request)
    return calls


def closed_port_note(exchange: dict) -> bool:
    return "where nothing listened" in (exchange.get("note") or "")


class LambdaReplayer:
    def __init__(self, twin: LambdaTwin, image: bytes):
        self.twin = twin
        self.image = image
        self.http = httpx.Client(base_url=twin.api_url, timeout=60)
        self.ids = replay.IdMap()
        self.items = exchanges()
        self.by_name = dict(self.items)
        self.recorded = attributed_requests(self.items)
        self.received: dict[str, list[dict]] = {call: [] for call in self.recorded}
        self.batch: str | None = None  # the last request create the twin accepted
        self.defaults = _json("nuclio_function_answers.json")
        self.token = ""
        self.password = "Lambda-" + secrets.token_hex(8)
        self.results: dict[str, list[str]] = {}
        self.dashboard_results: dict[str, list[str]] = {}
        self.function_results: dict[str, list[str]] = {}
        self.schema: dict[str, tuple[bool, list[str]]] = {}
        self.statuses: dict[str, list[str]] = {}
        self.dashboard_clients: set[str] = set()
        self.dashboard_running = True
        self.server_ip = twin.ip("cvat_server")
        self.worker_ip = twin.ip("cvat_worker_annotation")
        self.aliases = {}
        for function, port in twin.function_ports.items():
            recorded = RECORDED_PORTS.get(function, RECORDED_CLOSED_PORT)
            self.aliases[f"host.docker.internal:{port}"] = f"host.docker.internal:{recorded}"
            self.aliases[f"port={port}"] = f"port={recorded}"

    # -- setup -------------------------------------------------------------------------------

    def login(self) -> None:
        result = self.twin.exec(
            "cvat_server", "python3", "/home/django/manage.py", "createsuperuser", "--noinput",
            env={"DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_EMAIL": "admin@localhost",
                 "DJANGO_SUPERUSER_PASSWORD": self.password},
        )  # fmt: skip
        assert result.returncode == 0 or "already taken" in result.stderr, result.stderr
        response = self.http.post(
            "/api/auth/login", json={"username": "admin", "password": self.password}
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["key"]

    def headers(self) -> dict:
        return {"Accept": "application/vnd.cvat+json", "Authorization": f"Token {self.token}"}

    # -- the stubs ---------------------------------------------------------------------------

    def configure_functions(self, call: str) -> None:
        """The functions this call reaches answer what the recorded ones answered it; the
        dashboard reports a closed port where the recording's did."""
        for request in self.recorded[call]:
            answer = copy.deepcopy(request["answered"])
            answer["delay_s"] = min(answer.get("delay_s", 0), SLOW_DELAY_S)
            self.twin.function(request["function"], "POST", "/_stub/answer", answer)
        exchange = self.by_name[call]
        if self.dashboard_running:
            self.twin.dashboard("POST", "/_stub/ports", dict(self._recorded_ports()))
        if closed_port_note(exchange):
            function = self._function_of(exchange)
            closed = self.twin.function_ports["closed"]
            self.twin.dashboard("POST", "/_stub/ports", {function: closed})

    def _function_of(self, exchange: dict) -> str:
        req = exchange["request"]
        if req["path"] == "/api/lambda/requests":
            return req["json"]["function"]
        return req["path"].rsplit("/", 1)[1]

    def check_dashboard(self, name: str, exchange: dict, running: bool) -> None:
        recorded = exchange.get("nuclio_dashboard_requests", [])
        got = self.twin.dashboard("GET", "/_stub/requests") if running else []
        problems = []
        if len(got) != len(recorded):
            problems.append(
                f"{len(got)} dashboard requests {[g['path'] for g in got]} != recorded"
                f" {len(recorded)} {[r['path'] for r in recorded]}"
            )
        for rec, item in zip(recorded, got, strict=False):
            self.dashboard_clients.add(item["client"])
            problems += replay.compare_dashboard_request(rec, item, self.aliases, self.server_ip)
        self.dashboard_results[name] = problems

    def collect_functions(self, name: str) -> None:
        """What the stub functions received since the last exchange, given to its call: the
        current exchange when cvat_server sent it, the running batch request when the worker
        did (anything else is reported under the current exchange)."""
        for item in self._function_requests():
            if item["client"] == self.server_ip and name in self.received:
                self.received[name].append(item)
            elif item["client"] == self.worker_ip and self.batch is not None:
                self.received[self.batch].append(item)
            else:
                self.received.setdefault(name, []).append(item)

    def check_functions(self) -> None:
        deadline = time.monotonic() + 30
        while sum(map(len, self.received.values())) < sum(map(len, self.recorded.values())):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
            self.collect_functions("(after the replay)")
        for call, got in self.received.items():
            recorded = self.recorded.get(call, [])
            got.sort(key=lambda i: i["t"])
            problems = []
            if [g["function"] for g in got] != [r["function"] for r in recorded]:
                problems.append(
                    f"functions called {[g['function'] for g in got]} != recorded"
                    f" {[r['function'] for r in recorded]}"
                )
            online = (
                self.by_name.get(call, {})
                .get("request", {})
                .get("path", "")
                .startswith("/api/lambda/functions/")
            )
            client = self.server_ip if online else self.worker_ip
            for rec, item in zip(recorded, got, strict=False):
                problems += replay.compare_function_request(
                    rec, item, self.image, self.aliases, client
                )
            self.function_results[call] = problems

    def _function_requests(self) -> list[dict]:
        return [
            dict(item, function=function)
            for function in RECORDED_PORTS
            for item in self.twin.function(function, "GET", "/_stub/requests")
        ]

    # -- requests ----------------------------------------------------------------------------

    def send(self, exchange: dict) -> httpx.Response:
        req = exchange["request"]
        body = self.ids.body(req["json"]) if req["json"] is not None else None
        return self.http.request(
            req["method"], self.ids.path(req["path"]), headers=self.headers(), json=body
        )

    def upload(self, exchange: dict) -> httpx.Response:
        form = exchange["request"]["multipart_form"]
        file = form["client_files[0]"]
        response = self.http.post(
            self.ids.path(exchange["request"]["path"]),
            headers=self.headers(),
            data={"image_quality": str(form["image_quality"])},
            files={"client_files[0]": (file["filename"], self.image, file["content_type"])},
        )
        if response.status_code == 202:
            self._wait_task_created(response.json()["rq_id"])
        return response

    def _wait_task_created(self, rq_id: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = self.http.get(f"/api/requests/{rq_id}", headers=self.headers()).json()
            if status["status"] in FINAL:
                assert status["status"] == "finished", status
                return
            time.sleep(0.1)
        raise AssertionError(f"{rq_id} did not finish")

    def poll(self, name: str, exchange: dict) -> httpx.Response:
        """Poll until the recorded status (the twin's timing is not the recording's); the
        statuses seen on the way must follow queued -> started -> finished | failed.

        LambdaJob.to_dict reads the job's hash, then its status again (get_status()): a poll
        that races the worker's write can read `started` or a final status with the date that
        goes with it still null, in CVAT as in the twin. Such a torn answer is polled past."""
        wanted = exchange["response"]["json"]["status"]
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            response = self.send(exchange)
            status = response.json().get("status") if response.status_code == 200 else None
            if not seen or seen[-1] != status:
                seen.append(status)
            body = response.json() if response.status_code == 200 else {}
            torn = (status in ("started", *FINAL) and body.get("started") is None) or (
                status in FINAL and body.get("ended") is None
            )
            if ((status == wanted or status in FINAL) and not torn) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.statuses[name] = seen
        return response

    def raced_create(
        self, exchange: dict, response: httpx.Response, problems: list[str]
    ) -> list[str]:
        """A request create answers LambdaJob(rq_job).to_dict() right after the enqueue, and
        to_dict reads the job's status then: a worker that took the job meanwhile makes it
        `started` (or final) in CVAT as in the twin. The recording read `queued`; a later
        status in queued -> started -> finished | failed is that race, not a difference."""
        req = exchange["request"]
        recorded_answer = exchange["response"]
        if (req["method"], req["path"]) != ("POST", "/api/lambda/requests") or not (
            recorded_answer["status"] == response.status_code == 200
        ):
            return problems
        recorded, status = recorded_answer["json"].get("status"), response.json().get("status")
        if recorded not in ORDER or status not in ORDER or ORDER[status] < ORDER[recorded]:
            return problems
        raced = f"$.status: {status!r} != recorded {recorded!r}"
        return [p for p in problems if p != raced]

    # -- the replay --------------------------------------------------------------------------

    def check(self, name: str, exchange: dict, response: httpx.Response) -> None:
        problems = replay.compare_response(exchange, response, self.aliases)
        problems = self.raced_create(exchange, response, problems)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        rec_json = exchange["response"].get("json")
        if body is not None and rec_json is not None:
            problems += replay.check_ids(rec_json, body, self.ids)
        model = replay.response_model(exchange["request"]["method"], exchange["request"]["path"])
        if model and 200 <= exchange["response"]["status"] < 300:
            self.schema[name] = (
                not replay.schema_problems(model, rec_json),
                replay.schema_problems(model, body),
            )
        if body is not None and rec_json is not None:
            collection = exchange["request"]["path"].split("?")[0].split("/")[2]
            self.ids.learn(rec_json, body, replay.KIND_BY_COLLECTION.get(collection))
        self.results[name] = problems

    def run(self) -> None:
        self.login()
        for name, exchange in self.items:
            if name[:2] in NOT_REPLAYED:
                continue
            if "dashboard_down" in name and self.dashboard_running:
                self.twin.stop_dashboard()
                self.dashboard_running = False
            elif "dashboard_down" not in name and not self.dashboard_running:
                self.twin.start_dashboard()
                self.dashboard_running = True
            if name in self.recorded:
                self.configure_functions(name)
            req = exchange["request"]
            if "multipart_form" in req:
                response = self.upload(exchange)
            elif req["method"] == "GET" and re.match(r"^/api/lambda/requests/[^/]+$", req["path"]):
                response = self.poll(name, exchange)
            else:
                response = self.send(exchange)
            if is_call(exchange) and req["path"] == "/api/lambda/requests":
                self.batch = name if response.status_code == 200 else self.batch
            self.check(name, exchange, response)
            self.check_dashboard(name, exchange, self.dashboard_running)
            self.collect_functions(name)
        if not self.dashboard_running:
            self.twin.start_dashboard()
        self.check_functions()

    def _recorded_ports(self):
        for function in RECORDED_PORTS:
            yield function, self.twin.function_ports[function]


def _dashboard_functions(ports: dict[str, int]) -> dict:
    functions = _json("nuclio_api_functions.json")
    for name, entry in functions.items():
        entry["status"]["httpPort"] = ports[name]
    return functions


@pytest.fixture(scope="module")
def twin():
    LambdaTwin().cleanup()  # leftovers of an interrupted run, by this project's names only
    lambda_twin = LambdaTwin()
    try:
        for name in (*RECORDED_PORTS, "closed"):
            lambda_twin.function_ports[name] = free_port()
        lambda_twin.up(_dashboard_functions(lambda_twin.function_ports))
        defaults = _json("nuclio_function_answers.json")
        lambda_twin.start_functions(
            {name: {"status": 200, "delay_s": 0, "body": defaults[name]} for name in RECORDED_PORTS}
        )
        yield lambda_twin
    finally:
        lambda_twin.cleanup()
        print(
            "\n[lambda_twin] timings (s): "
            + json.dumps({k: round(v, 1) for k, v in lambda_twin.timings.items()})
        )


@pytest.fixture(scope="module")
def replayed(twin):
    image = replay.photo_jpeg()
    replayer = LambdaReplayer(twin, image)
    started = time.monotonic()
    try:
        replayer.run()
    except Exception:
        print(twin.logs("cvat_server", "cvat_worker_annotation", "nuclio"))
        raise
    twin.timings["replay"] = time.monotonic() - started
    return replayer


def _names():
    return [n for n, _ in exchanges() if n[:2] not in NOT_REPLAYED]


def _calls():
    return list(attributed_requests([(n, e) for n, e in exchanges() if n[:2] not in NOT_REPLAYED]))


@pytest.mark.parametrize("name", _names())
def test_exchange_replays_equal(replayed, name):
    assert name in replayed.results, f"{name} was not replayed"
    assert replayed.results[name] == []


@pytest.mark.parametrize("name", _names())
def test_dashboard_requests_as_recorded(replayed, name):
    assert replayed.dashboard_results.get(name) == []


@pytest.mark.parametrize("call", _calls())
def test_function_requests_as_recorded(replayed, call):
    assert replayed.function_results.get(call) == []


def test_no_unexpected_function_requests(replayed):
    unexpected = {k: v for k, v in replayed.function_results.items() if k not in replayed.recorded}
    assert unexpected == {}


def test_only_cvat_server_talks_to_the_dashboard(replayed):
    assert replayed.dashboard_clients == {replayed.server_ip}


def test_request_statuses_only_move_forward(replayed):
    assert replayed.statuses, "no request was polled"
    for name, seen in replayed.statuses.items():
        ranks = [ORDER.get(s, -1) for s in seen]
        assert -1 not in ranks and ranks == sorted(ranks), f"{name}: {seen}"


def test_answers_follow_the_schema(replayed):
    assert replayed.schema, "no exchange was validated"
    problems = {n: p for n, (ok, p) in replayed.schema.items() if ok and p}
    assert problems == {}


def test_plugins_models_follows_cvat_serverless(twin):
    """MODELS is CVAT_SERVERLESS read through to_bool; the serverless overlay sets it to 1."""
    code = (
        "import json, os; from cvat_twin.api import server_info;"
        " print(json.dumps(server_info.plugins(None).data['MODELS']))"
    )
    for value, expected in (("1", "true"), ("", "false"), ("0", "false"), ("true", "true")):
        result = twin.exec("cvat_server", "python3", "-c", code, env={"CVAT_SERVERLESS": value})
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected, value


def test_deleting_a_running_request(replayed, twin):
    """DELETE /api/lambda/requests/<id> answers 204; the request is gone (404, a JSON string)
    and the run it stopped writes nothing."""
    http, headers = replayed.http, replayed.headers()
    task = replayed.ids.get("task", 9)
    job = replayed.ids.get("job", 9)
    slow = {
        "status": 200,
        "delay_s": 2,
        "body": _json("nuclio_function_answers.json")["pth-yolo-coralsegv4"],
    }
    twin.function("pth-yolo-coralsegv4", "POST", "/_stub/answer", slow)
    http.delete(f"/api/jobs/{job}/annotations", headers=headers)
    created = http.post("/api/lambda/requests", headers=headers,
                        json={"function": "pth-yolo-coralsegv4", "task": task, "cleanup": True})  # fmt: skip
    assert created.status_code == 200, created.text
    rq_id = created.json()["id"]
    deadline = time.monotonic() + 30
    while http.get(f"/api/lambda/requests/{rq_id}", headers=headers).json()["status"] != "started":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    deleted = http.delete(f"/api/lambda/requests/{rq_id}", headers=headers)
    assert deleted.status_code == 204
    gone = http.get(f"/api/lambda/requests/{rq_id}", headers=headers)
    assert (gone.status_code, gone.json()) == (404, f"{rq_id} lambda job is not found")
    time.sleep(3)
    shapes = http.get(f"/api/jobs/{job}/annotations", headers=headers).json()["shapes"]
    assert shapes == []
    twin.function("pth-yolo-coralsegv4", "GET", "/_stub/requests")


def _rle(bits: list[int]) -> list[int]:
    """COCO run lengths of a flat mask, the first run counting zeros."""
    counts, current, run = [], 0, 0
    for bit in bits:
        if bit == current:
            run += 1
        else:
            counts.append(run)
            current, run = bit, 1
    return [*counts, run]


def test_a_mask_without_conv_mask_to_poly_is_stored_as_rle(replayed, twin):
    """Not recorded; CVAT 2.29.0's _call_detector: without conv_mask_to_poly a mask shape keeps
    type mask, its points the RLE of the flat mask (datumaro's mask_to_rle) and the bbox."""
    http, headers = replayed.http, replayed.headers()
    task, job = replayed.ids.get("task", 9), replayed.ids.get("job", 9)
    answers = _json("nuclio_function_answers.json")["pth-yolo-coralsegv4"]
    twin.function("pth-yolo-coralsegv4", "POST", "/_stub/answer",
                  {"status": 200, "delay_s": 0, "body": answers})  # fmt: skip
    created = http.post("/api/lambda/requests", headers=headers,
                        json={"function": "pth-yolo-coralsegv4", "task": task, "cleanup": True})  # fmt: skip
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 30
    while (
        body := http.get(f"/api/lambda/requests/{created.json()['id']}", headers=headers).json()
    )["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert body["status"] == "finished", body
    shapes = http.get(f"/api/jobs/{job}/annotations", headers=headers).json()["shapes"]
    porites = next(a for a in answers if a["label"] == "Porites")
    masks = [s for s in shapes if s["type"] == "mask"]
    assert len(masks) == 1 and len(shapes) == 3
    expected = [*_rle(porites["mask"][:-4]), *porites["mask"][-4:]]
    assert masks[0]["points"] == [float(v) for v in expected]
    twin.function("pth-yolo-coralsegv4", "GET", "/_stub/requests")
