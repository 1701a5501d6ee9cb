"""Replay the exchanges recorded from a real CVAT 2.29.0 (selftests/data/contracts/cvat-2.29.0)
against the twin, and compare what comes back with what was recorded.

Comparison (`diff`): the same keys in the same order, the same JSON types, the same values
once ids, dates, tokens and request ids are masked (`normalize`). Ids are not compared by
value, but the replay learns which twin id stands for which recorded id (`IdMap`) from the
responses, and substitutes them into later requests (paths, query strings, JSON bodies).

Webhook deliveries go to a `Receiver` on the host (0.0.0.0:<free port>), reached from the
containers as http://bridge.gateway:<port>/hook through their Smokescreen, which allows
172.17.0.1; they are compared with the raw requests recorded by the lab receiver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import httpx

from selftests.data import CONTRACTS

CONTRACTS = Path(
    os.environ.get(
        "CVAT_CONTRACTS",
        CONTRACTS / "cvat-2.29.0",
    )
)
BASE_URL = os.environ.get("CVAT_TWIN_URL", "http://localhost:8080")
WEBHOOK_SECRET = "lab-webhook-secret"
RECORDED_USER_AGENT = "CVAT/2.29.0 python-requests/2.32.3"

DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ID_KEYS = {"id", "project_id", "task_id", "job_id", "label_id", "parent_id", "webhook_id",
           "data", "spec_id", "result_id", "parent_job_id", "task", "job"}  # fmt: skip
# which IdMap kind a recorded id under these keys is (check_ids)
ID_KINDS = {"project_id": "project", "task_id": "task", "job_id": "job", "label_id": "label",
            "spec_id": "attribute", "task": "task", "job": "job"}  # fmt: skip
SECRET_KEYS = {"key"}


def load_exchanges() -> list[tuple[str, dict]]:
    return [
        (p.name, json.loads(p.read_text())) for p in sorted(CONTRACTS.glob("[0-9][0-9]_*.json"))
    ]


def is_delivery(exchange: dict) -> bool:
    return "body_raw" in exchange.get("request", {})


# --- normalisation and comparison ------------------------------------------------------------


def _mask_string(text: str, aliases: dict[str, str]) -> str:
    for real, recorded in aliases.items():
        text = text.replace(real, recorded)
    if DATE_RE.match(text):
        return "<date>"
    if UUID_RE.match(text):
        return "<uuid>"
    # ids inside URLs, rq ids, messages and svg references
    text = re.sub(r"(/api/[a-z_]+/)\d+", r"\1<id>", text)
    text = re.sub(r"((?:project|task|job)_id=)\d+", r"\1<id>", text)
    text = re.sub(r"(task-)\d+", r"\1<id>", text)
    text = re.sub(r"(task #)\d+", r"\1<id>", text)
    # repr() of objects in exception texts (urllib3's connections)
    text = re.sub(r"( object at 0x)[0-9a-f]+", r"\1<addr>", text)
    text = re.sub(r'(data-label-id=\\?")\d+', r"\1<id>", text)
    text = re.sub(r"^(https?://)[^/]+", r"\1<host>", text)
    return text


def normalize(value, aliases: dict[str, str] | None = None, key: str | None = None):
    """Mask what differs between two runs: ids, dates, tokens, hosts, request ids, colours of
    generated sublabels."""
    aliases = aliases or {}
    if isinstance(value, dict):
        return {k: normalize(v, aliases, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalize(v, aliases, key) for v in value]
        if key == "elements" and all(isinstance(i, dict) for i in items):
            # CVAT returns a skeleton's elements in no particular order
            items.sort(key=lambda i: json.dumps(i, sort_keys=True))
        return items
    if key in ID_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return "<int>"
    if key in SECRET_KEYS and isinstance(value, str):
        return "<secret>"
    if key == "exc_info" and isinstance(value, str):
        return traceback_summary(_mask_string(value, aliases))
    if key in {"last_login", "date_joined"} and value is None:
        return value
    if isinstance(value, str):
        if key == "color" and re.match(r"^#[0-9a-f]{6}$", value):
            return "<color>"
        return _mask_string(value, aliases)
    return value


def traceback_summary(text: str) -> str:
    """A Python traceback as what two runs share: its first line, how many exceptions are
    chained, and the last one's line (the frames are another program's)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return text
    chained = text.count("During handling of the above exception") + text.count(
        "The above exception was the direct cause"
    )
    return f"{lines[0]} [+{chained} chained] {lines[-1]}"


def check_ids(recorded, actual, ids: IdMap, path: str = "$") -> list[str]:
    """Ids the masking hides: a recorded id of a known object must be the twin's object that
    the replay paired with it (label_id, spec_id, task, job ...). Skeleton elements are paired
    by label, since their order is free."""
    problems: list[str] = []
    if isinstance(recorded, dict) and isinstance(actual, dict):
        for key, value in recorded.items():
            if key not in actual:
                continue
            kind = ID_KINDS.get(key)
            if kind and isinstance(value, int) and value in ids.maps.get(kind, {}):
                if actual[key] != ids.get(kind, value):
                    problems.append(
                        f"{path}.{key}: {actual[key]!r} is not the twin's {kind} for recorded"
                        f" {value} ({ids.get(kind, value)})"
                    )
            elif key == "elements" and isinstance(value, list) and isinstance(actual[key], list):
                rec = sorted(value, key=lambda e: ids.get("label", e.get("label_id", 0)))
                act = sorted(actual[key], key=lambda e: e.get("label_id", 0))
                problems += check_ids(rec, act, ids, f"{path}.{key}")
            else:
                problems += check_ids(value, actual[key], ids, f"{path}.{key}")
    elif isinstance(recorded, list) and isinstance(actual, list):
        for i, (r, a) in enumerate(zip(recorded, actual, strict=False)):
            problems += check_ids(r, a, ids, f"{path}[{i}]")
    return problems


def _type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "dict"


def diff(recorded, actual, path: str = "$", *, values: bool = True) -> list[str]:
    """Key order, key sets, JSON types and (normalised) values that differ."""
    problems: list[str] = []
    if _type(recorded) != _type(actual):
        return [f"{path}: type {_type(actual)} != recorded {_type(recorded)}"]
    if isinstance(recorded, dict):
        rk, ak = list(recorded), list(actual)
        missing = [k for k in rk if k not in actual]
        extra = [k for k in ak if k not in recorded]
        if missing:
            problems.append(f"{path}: missing keys {missing}")
        if extra:
            problems.append(f"{path}: extra keys {extra}")
        common_r = [k for k in rk if k in actual]
        common_a = [k for k in ak if k in recorded]
        if common_r != common_a:
            problems.append(f"{path}: key order {common_a} != recorded {common_r}")
        for k in common_r:
            problems += diff(recorded[k], actual[k], f"{path}.{k}", values=values)
    elif isinstance(recorded, list):
        if len(recorded) != len(actual):
            problems.append(f"{path}: {len(actual)} items != recorded {len(recorded)}")
        for i, (r, a) in enumerate(zip(recorded, actual, strict=False)):
            problems += diff(r, a, f"{path}[{i}]", values=values)
    elif (
        values
        and recorded != actual
        and not (
            isinstance(recorded, (int, float))
            and isinstance(actual, (int, float))
            and recorded == actual
        )
    ):
        problems.append(f"{path}: {actual!r} != recorded {recorded!r}")
    return problems


# --- id mapping ---------------------------------------------------------------------------------

KIND_BY_COLLECTION = {
    "projects": "project", "tasks": "task", "jobs": "job", "labels": "label",
    "webhooks": "webhook", "users": "user", "deliveries": "delivery",
}  # fmt: skip


@dataclass
class IdMap:
    maps: dict[str, dict[int, int]] = field(default_factory=dict)

    def add(self, kind: str, recorded: int, actual: int) -> None:
        self.maps.setdefault(kind, {})[recorded] = actual

    def get(self, kind: str, recorded: int) -> int:
        return self.maps.get(kind, {}).get(recorded, recorded)

    def learn(self, recorded, actual, kind: str | None = None) -> None:
        """Walk a recorded and a twin response in parallel and pair their ids."""
        if isinstance(recorded, dict) and isinstance(actual, dict):
            own = kind
            url = recorded.get("url")
            if isinstance(url, str):
                m = re.search(r"/api/([a-z_]+)/\d+$", url)
                if m:
                    own = KIND_BY_COLLECTION.get(m.group(1), own)
            if "webhook_id" in recorded and "event" in recorded and "status_code" in recorded:
                own = "delivery"
            if (
                "id" in recorded
                and isinstance(recorded["id"], int)
                and isinstance(actual.get("id"), int)
                and own
            ):
                self.add(own, recorded["id"], actual["id"])
            for key, value in recorded.items():
                if key not in actual:
                    continue
                child = {"owner": "user", "assignee": "user", "sender": "user",
                         "sublabels": "label", "elements": "shape", "shapes": "shape",
                         "tags": "shape", "webhook": "webhook", "task": "task",
                         "job": "job", "results": own,
                         "attributes": "attribute"}.get(key)  # fmt: skip
                if key in {"project_id", "task_id", "job_id", "webhook_id", "label_id"}:
                    k = key[:-3]
                    if isinstance(value, int) and isinstance(actual[key], int):
                        self.add(k, value, actual[key])
                    continue
                if isinstance(value, (dict, list)):
                    self.learn(value, actual[key], child)
        elif isinstance(recorded, list) and isinstance(actual, list):
            for r, a in zip(recorded, actual, strict=False):
                self.learn(r, a, kind)

    def path(self, path: str) -> str:
        parts = urlsplit(path)
        segments = parts.path.split("/")
        out = []
        for i, seg in enumerate(segments):
            prev = segments[i - 1] if i else ""
            if seg.isdigit() and prev in KIND_BY_COLLECTION:
                seg = str(self.get(KIND_BY_COLLECTION[prev], int(seg)))
            elif prev == "requests":
                seg = quote(
                    re.sub(r"task-(\d+)", lambda m: f"task-{self.get('task', int(m.group(1)))}",
                           unquote(seg)),
                    safe="",
                )  # fmt: skip
            out.append(seg)
        query = [
            (k, str(self.get(k[:-3], int(v))) if k.endswith("_id") and v.isdigit() else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return "/".join(out) + (f"?{urlencode(query)}" if query else "")

    def body(self, value, key: str | None = None):
        if isinstance(value, dict):
            return {k: self.body(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.body(v, key) for v in value]
        if key in {"project_id", "task_id", "job_id", "label_id"} and isinstance(value, int):
            return self.get(key[:-3], value)
        if key in {"task", "job"} and isinstance(value, int) and not isinstance(value, bool):
            return self.get(key, value)
        return value


# --- the webhook receiver ------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float


class Receiver:
    """Records raw POSTs and answers 200 {"status": "received"} like the lab receiver."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                item = Received(self.command, self.path, self.request_version,
                                list(self.headers.items()), body, time.time())  # fmt: skip
                with receiver._lock:
                    receiver.requests.append(item)
                payload = b'{"status": "received"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        with self._lock:
            return list(self.requests)

    def take(self, count: int, timeout: float = 30.0) -> list[Received]:
        got = self.wait(count, timeout)[:count]
        with self._lock:
            del self.requests[: len(got)]
        return got


def compare_delivery(recorded: dict, got: Received, aliases: dict[str, str]) -> list[str]:
    """Header names in order, the values that matter, the signature and the body."""
    problems = []
    rec = recorded["request"]
    rec_names = [n for n, _ in rec["headers"]]
    got_names = [n for n, _ in got.headers]
    if rec_names != got_names:
        problems.append(f"header order {got_names} != recorded {rec_names}")
    rec_headers = dict(rec["headers"])
    got_headers = dict(got.headers)
    for name in ("User-Agent", "Accept", "Content-Type", "Accept-Encoding"):
        if got_headers.get(name) != rec_headers.get(name):
            problems.append(
                f"{name}: {got_headers.get(name)!r} != recorded {rec_headers.get(name)!r}"
            )
    if got.method != rec["method"] or got.http_version != rec["http_version"]:
        problems.append(f"request line {got.method} {got.http_version}")
    if int(got_headers.get("Content-Length", -1)) != len(got.body):
        problems.append("Content-Length does not match the body")
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    if got_headers.get("X-Signature-256") != expected:
        problems.append("X-Signature-256 does not verify with the webhook secret")
    text = got.body.decode("utf-8")
    if json.dumps(json.loads(text)) != text:
        problems.append("body is not json.dumps(payload) with default separators")
    problems += [
        f"body {p}"
        for p in diff(
            normalize(json.loads(rec["body_raw"]), aliases), normalize(json.loads(text), aliases)
        )
    ]
    return problems


# --- the HTTP side -------------------------------------------------------------------------------

MASKED_HEADERS = {"x-request-id", "set-cookie (names only)", "location"}


def compare_response(
    recorded: dict, response: httpx.Response, aliases: dict[str, str]
) -> list[str]:
    problems = []
    rec = recorded["response"]
    if response.status_code != rec["status"]:
        problems.append(f"status {response.status_code} != recorded {rec['status']}")
    for name, value in rec["headers"].items():
        lname = name.lower()
        if lname == "set-cookie (names only)":
            names = sorted({c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")})
            if names != sorted(value):
                problems.append(f"cookies {names} != recorded {sorted(value)}")
            continue
        got = response.headers.get(name)
        if got is None:
            problems.append(f"header {name} missing")
        elif lname == "x-request-id":
            if not UUID_RE.match(got):
                problems.append(f"X-Request-Id {got!r} is not a UUID")
        elif lname == "location":
            if normalize(got) != normalize(value):
                problems.append(f"Location {got!r} != recorded {value!r}")
        elif lname == "content-length":
            problems += _content_length_problems(rec, int(value), response)
        elif got != value:
            problems.append(f"header {name}: {got!r} != recorded {value!r}")
    if "text" in rec and rec.get("json") is None:
        # a non-JSON answer (Django's HTML error page): the same text
        if response.text != rec["text"]:
            problems.append(f"body {response.text[:200]!r} != recorded {rec['text'][:200]!r}")
        return problems
    try:
        body = response.json() if response.content else None
    except ValueError:
        return [*problems, f"body is not JSON: {response.text[:200]!r}"]
    problems += diff(normalize(rec["json"], aliases), normalize(body, aliases))
    return problems


def rendered_length(rec: dict) -> int:
    """Length of a recorded body as the server rendered it (DRF's compact JSON)."""
    if "text" in rec and rec.get("json") is None:
        return len(rec["text"].encode("utf-8"))
    if rec.get("json") is None:
        return 0
    return len(json.dumps(rec["json"], ensure_ascii=False, separators=(",", ":")).encode())


def _content_length_problems(rec: dict, recorded: int, response: httpx.Response) -> list[str]:
    """Django's GZipMiddleware leaves bodies under 200 bytes alone and pads a gzipped body with
    a file name of 0-99 random bytes, keeping the original when that is not shorter: a body of
    a few hundred bytes goes out compressed or not by chance, and the value differs per run.
    So: the twin's Content-Length is its own wire body's; a body under 200 bytes is never
    compressed; one the recording compressed by more than the padding can add must be too."""
    problems = []
    rendered = rendered_length(rec)
    got_encoding = response.headers.get("content-encoding")
    got_length = int(response.headers.get("content-length", -1))
    if got_length != response.num_bytes_downloaded:
        problems.append(
            f"Content-Length {got_length} != the {response.num_bytes_downloaded} bytes sent"
        )
    if got_encoding and len(response.content) < 200:
        problems.append(f"a body of {len(response.content)} bytes is {got_encoding}-encoded")
    if recorded + 120 < rendered and got_encoding != "gzip":
        problems.append(f"body not gzip-encoded (Content-Encoding {got_encoding!r}) as recorded")
    return problems


# --- what CVAT sent to the Nuclio dashboard and to the functions --------------------------------


def _aliased(text: str, aliases: dict[str, str]) -> str:
    for real, recorded in aliases.items():
        text = text.replace(real, recorded)
    return text


def _compare_request_line(
    rec: dict, got: dict, aliases: dict[str, str], client: str | None
) -> list[str]:
    problems = []
    for key in ("method", "path", "http_version"):
        if _aliased(str(got.get(key)), aliases) != rec.get(key):
            problems.append(f"{key} {got.get(key)!r} != recorded {rec.get(key)!r}")
    rec_names = [n for n, _ in rec["headers"]]
    got_names = [n for n, _ in got["headers"]]
    if got_names != rec_names:
        problems.append(f"header order {got_names} != recorded {rec_names}")
    got_headers = dict(got["headers"])
    for name, value in rec["headers"]:
        if name == "Content-Length":
            body = got["body"].encode("utf-8")
            if got_headers.get(name) != str(len(body)):
                problems.append(f"Content-Length {got_headers.get(name)!r} != {len(body)} sent")
        elif _aliased(got_headers.get(name, ""), aliases) != value:
            problems.append(f"{name}: {got_headers.get(name)!r} != recorded {value!r}")
    if client is not None and got.get("client") != client:
        problems.append(f"sent from {got.get('client')}, not from {client}")
    return problems


def compare_dashboard_request(
    rec: dict, got: dict, aliases: dict[str, str], client: str | None = None
) -> list[str]:
    """Request line, headers in order with their values, the (empty) body and, given the
    address of the container that should have sent it, the sender."""
    problems = _compare_request_line(rec, got, aliases, client)
    if got["body"] != rec["body"]:
        problems.append(f"body {got['body'][:100]!r} != recorded {rec['body']!r}")
    return problems


def compare_function_request(
    rec: dict, got: dict, image: bytes, aliases: dict[str, str], client: str | None = None
) -> list[str]:
    """As compare_dashboard_request, and the body: requests' json= encoding (", " and ": "),
    the keys in the recorded order, the other values with their JSON types, the image as the
    standard padded base64 of the original upload, byte for byte. `rec["fields"]["image"]`
    describes the recorded image, whose bytes are not in the repository: its dimensions are
    compared with those of `image`, which is what the replay uploaded."""
    from PIL import Image

    problems = _compare_request_line(rec, got, aliases, client)
    try:
        body = json.loads(got["body"])
    except ValueError:
        return [*problems, f"body is not JSON: {got['body'][:100]!r}"]
    if json.dumps(body) != got["body"]:
        problems.append("body is not json.dumps(payload) with the default separators")
    if list(body) != rec["body"]["keys_in_order"]:
        problems.append(f"body keys {list(body)} != recorded {rec['body']['keys_in_order']}")
    for key, value in rec["body"]["fields"].items():
        if key == "image":
            continue
        problems += [f"body {p}" for p in diff(value, body.get(key), f"$.{key}")]
    encoded = body.get("image")
    if "image" in rec["body"]["fields"]:
        described = rec["body"]["fields"]["image"]
        if not isinstance(encoded, str):
            return [*problems, f"image is {type(encoded).__name__}, not a base64 string"]
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except ValueError:
            return [*problems, f"image is not standard base64: {encoded[:40]!r}"]
        if base64.b64encode(decoded).decode() != encoded:
            problems.append("image is not padded standard base64")
        if hashlib.sha256(decoded).hexdigest() != hashlib.sha256(image).hexdigest():
            problems.append(
                f"image is not the uploaded file: {len(decoded)} bytes, sha256"
                f" {hashlib.sha256(decoded).hexdigest()[:16]}..."
            )
        if decoded[:4].hex() != described["decoded_magic_hex"]:
            problems.append(
                f"image starts {decoded[:4].hex()}, recorded {described['decoded_magic_hex']}"
            )
        size = Image.open(io.BytesIO(image)).size
        if size != (described["jpeg_width"], described["jpeg_height"]):
            problems.append(f"uploaded image is {size}, recorded {described['jpeg_width']}x"
                            f"{described['jpeg_height']}")  # fmt: skip
    answered = {"status": rec["answered"]["status"], "body": rec["answered"]["body"]}
    got_answered = {"status": got["answered"]["status"], "body": got["answered"]["body"]}
    if got_answered != answered:
        problems.append("the stub function did not answer what the recorded one did")
    return problems


def photo_jpeg(width: int = 640, height: int = 480, seed: int = 7) -> bytes:
    """A deterministic JPEG with some texture, standing in for the recorded quadrat photo
    (640x480, 18 705 bytes), whose bytes are not in the repository."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (188, 170, 130))
    draw = ImageDraw.Draw(img)
    for _ in range(400):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(2, 18)
        shade = rng.randrange(90, 220)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(shade, shade - 20, shade - 50))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), (seed * 40 % 256, 120, 200))
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


# --- schema validation ----------------------------------------------------------------------------
# The models of cvat-sdk 2.29.0 are generated from CVAT 2.29.0's schema.yml; validating a body
# with them (typed deserialisation, as the SDK does) checks it against the schema.

RESPONSE_MODELS = [
    ("GET", r"^/api/server/about$", "About"),
    ("POST", r"^/api/auth/login$", "Token"),
    ("GET", r"^/api/users/self$", "User"),
    ("GET", r"^/api/projects$", "PaginatedProjectReadList"),
    ("POST", r"^/api/projects$", "ProjectRead"),
    ("GET", r"^/api/projects/\d+$", "ProjectRead"),
    ("GET", r"^/api/labels$", "PaginatedLabelList"),
    ("POST", r"^/api/tasks$", "TaskRead"),
    ("GET", r"^/api/tasks/\d+$", "TaskRead"),
    ("PATCH", r"^/api/tasks/\d+$", "TaskRead"),
    ("POST", r"^/api/tasks/\d+/data$", "DataResponse"),
    ("GET", r"^/api/requests/[^/]+$", "Request"),
    ("POST", r"^/api/lambda/requests$", "FunctionCall"),
    ("GET", r"^/api/lambda/requests/[^/]+$", "FunctionCall"),
    ("GET", r"^/api/jobs$", "PaginatedJobReadList"),
    ("GET", r"^/api/jobs/\d+$", "JobRead"),
    ("PATCH", r"^/api/jobs/\d+$", "JobRead"),
    ("GET", r"^/api/jobs/\d+/annotations$", "LabeledData"),
    ("PUT", r"^/api/jobs/\d+/annotations$", "LabeledData"),
    ("GET", r"^/api/webhooks/events$", "Events"),
    ("POST", r"^/api/webhooks$", "WebhookRead"),
    ("POST", r"^/api/webhooks/\d+/ping$", "WebhookDeliveryRead"),
    ("GET", r"^/api/webhooks/\d+/deliveries$", "PaginatedWebhookDeliveryReadList"),
    ("GET", r"^/api/webhooks/\d+/deliveries/\d+$", "WebhookDeliveryRead"),
]


def response_model(method: str, path: str) -> str | None:
    path = path.split("?", 1)[0]
    for m, pattern, model in RESPONSE_MODELS:
        if m == method and re.match(pattern, path):
            return model
    return None


def schema_problems(model: str, body) -> list[str]:
    from cvat_sdk.api_client import Configuration, model_utils, models

    try:
        model_utils.validate_and_convert_types(
            body, (getattr(models, model),), ["body"], True, True, configuration=Configuration()
        )
    except Exception as exc:  # ApiTypeError, ApiValueError, ApiAttributeError...
        return [f"{model}: {type(exc).__name__}: {exc}"]
    return []
