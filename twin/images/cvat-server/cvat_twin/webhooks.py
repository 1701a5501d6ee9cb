"""Webhook payloads, CVAT's sender (cvat/apps/webhooks/signals.py: send_webhook) and the RQ
job run by cvat_worker_webhooks. Every request goes through the local Smokescreen
(http://localhost:4750), like PROXIES_FOR_UNTRUSTED_URLS in CVAT."""

import hashlib
import hmac
import http.client
import json
import logging
import ssl
from urllib.parse import urlsplit

from . import CVAT_VERSION, db, settings

log = logging.getLogger("cvat.webhooks")

USER_AGENT = f"CVAT/{CVAT_VERSION} python-requests/2.32.3"
WEBHOOK_TIMEOUT = 10
RESPONSE_SIZE_LIMIT = 1024 * 1024
PROXY = ("localhost", 4750)
QUEUE = "webhooks"

PROJECT_EVENTS = [
    "create:comment", "create:issue", "create:job", "create:task", "delete:comment",
    "delete:issue", "delete:job", "delete:project", "delete:task", "update:comment",
    "update:issue", "update:job", "update:project", "update:task",
]  # fmt: skip
ORGANIZATION_EVENTS = sorted(
    [*PROJECT_EVENTS, "create:project", "update:organization", "delete:organization",
     "create:invitation", "delete:invitation", "create:membership", "update:membership",
     "delete:membership"]
)  # fmt: skip


class _ConnectionError(Exception):
    pass


class _Timeout(Exception):
    pass


def _post(url, body, headers, verify):
    """requests.post(url, data=body, headers=..., proxies=<smokescreen>, timeout=10)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    netloc = host if parts.port is None else f"{host}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                *PROXY,
                timeout=WEBHOOK_TIMEOUT,
                context=ssl.create_default_context()
                if verify
                else ssl._create_unverified_context(),
            )
            conn.set_tunnel(host, port, headers={"User-Agent": USER_AGENT})
            target = path
            try:
                # requests: a failing tunnel or TLS handshake (also by timeout) is a
                # ConnectTimeout/SSLError/ProxyError, all ConnectionErrors -> 502
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:
                raise _ConnectionError(str(exc)) from exc
        else:
            conn = http.client.HTTPConnection(*PROXY, timeout=WEBHOOK_TIMEOUT)
            target = f"http://{netloc}{path}"
        conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", netloc)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read(RESPONSE_SIZE_LIMIT)
        status = response.status
        conn.close()
    except TimeoutError as exc:
        raise _Timeout() from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _ConnectionError(str(exc)) from exc
    return status, data


def send(webhook, payload, redelivery=False, cur=None):
    """Send one payload and store the delivery; return the delivery as a dict (in-memory
    key order, like the ping's answer)."""
    body = json.dumps(payload).encode("utf-8")
    headers = [
        ("User-Agent", USER_AGENT),
        ("Accept-Encoding", "gzip, deflate"),
        ("Accept", "*/*"),
        ("Connection", "keep-alive"),
    ]
    if webhook["secret"]:
        signature = hmac.new(webhook["secret"].encode("utf-8"), body, hashlib.sha256)
        headers.append(("X-Signature-256", "sha256=" + signature.hexdigest()))
    headers += [("Content-Length", str(len(body))), ("Content-Type", "application/json")]
    response_body = None
    try:
        status_code, response_body = _post(
            webhook["target_url"], body, headers, webhook["enable_ssl"]
        )
    except _Timeout:
        status_code = 504
    except _ConnectionError as exc:
        log.warning("webhook %s: %s", webhook["id"], exc)
        status_code = 502
    text = response_body.decode("utf-8", "replace") if response_body else None
    changed = ",".join(payload.get("before_update", {}).keys())
    stamp = db.now()

    def _store(c):
        c.execute(
            "UPDATE twin_webhook SET last_status = %s, last_delivery_date = %s WHERE id = %s",
            (status_code, stamp, webhook["id"]),
        )
        c.execute(
            "INSERT INTO twin_delivery (webhook_id, event, status_code, redelivery,"
            " changed_fields, request, response, created_date, updated_date)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id, created_date, updated_date",
            (webhook["id"], payload["event"], status_code, redelivery, changed, db.Json(payload),
             text, stamp, stamp),
        )  # fmt: skip
        return c.fetchone()

    if cur is not None:
        row = _store(cur)
    else:
        with db.transaction() as c:
            row = _store(c)
    return {
        "id": row["id"],
        "webhook_id": webhook["id"],
        "event": payload["event"],
        "status_code": status_code,
        "redelivery": redelivery,
        "created_date": db.iso(row["created_date"]),
        "updated_date": db.iso(row["updated_date"]),
        "changed_fields": changed,
        "request": payload,
        "response": text,
    }


def deliver_batch(items):
    """RQ job (queue `webhooks`): send [(webhook_id, payload), ...] in order."""
    for webhook_id, payload in items:
        with db.transaction() as cur:
            cur.execute("SELECT * FROM twin_webhook WHERE id = %s", (webhook_id,))
            webhook = cur.fetchone()
        if webhook is None or not webhook["is_active"]:
            continue
        send(webhook, payload)


def redeliver(delivery_id):
    """RQ job: send a stored delivery's request again (redelivery=True)."""
    with db.transaction() as cur:
        cur.execute(
            "SELECT d.request, w.* FROM twin_delivery d JOIN twin_webhook w ON w.id = d.webhook_id"
            " WHERE d.id = %s",
            (delivery_id,),
        )
        row = cur.fetchone()
    if row is not None:
        send(row, row["request"], redelivery=True)


def enqueue(func, *args):
    from redis import Redis
    from rq import Queue

    queue = Queue(QUEUE, connection=Redis.from_url(settings.redis_inmem_url()))
    queue.enqueue(func, *args)
