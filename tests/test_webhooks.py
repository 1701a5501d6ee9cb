"""Webhooks layer: CVAT delivers webhooks to the bridge the way the CRIOBE pipeline needs.

    pytest -m webhooks

A ping is sent by cvat_server itself; events (update:job, update:task) are queued and sent by
cvat_worker_webhooks, each through its own Smokescreen: both paths are exercised. Everything
created carries the run prefix and is deleted at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time

import pytest

pytestmark = pytest.mark.webhooks

THIS = "tests/test_webhooks.py::"


def _deliveries(cvat_api, webhook_id: int) -> list[dict]:
    # Read raw: a delivery's `response` is text, which cvat-sdk's typed models reject.
    r = cvat_api.get(f"/api/webhooks/{webhook_id}/deliveries", params={"page_size": 100})
    assert r.status_code == 200, f"GET deliveries answered {r.status_code}: {r.text[:200]}"
    return r.json()["results"]


def _create_webhook(
    cvat_api, project_id: int, target: str, events: list[str], secret: str = ""
) -> dict:
    body = {
        "target_url": target,
        "description": "criobe-verify",
        "type": "project",
        "content_type": "application/json",
        "secret": secret,
        "is_active": True,
        "enable_ssl": False,
        "events": events,
        "project_id": project_id,
    }
    r = cvat_api.post("/api/webhooks", json=body)
    assert r.status_code == 201, (
        f"cvat_server: POST /api/webhooks answered {r.status_code}: {r.text[:300]}"
    )
    return r.json()


def _describe(delivery: dict) -> str:
    return f"{delivery['status_code']} {str(delivery.get('response') or '')[:300]!r}"


@pytest.fixture(scope="module")
def bridge_webhook(cvat_api, cvat_scratch, profile):
    g = profile.gateway
    project = cvat_scratch.project()
    target = f"http://{g.hostname}:{g.port}{g.path}"
    webhook = _create_webhook(cvat_api, project["id"], target, ["update:job", "update:task"])
    return project, webhook, {}


def test_webhook_ping_reaches_the_bridge(cvat_api, bridge_webhook):
    _, webhook, seen = bridge_webhook
    r = cvat_api.post(f"/api/webhooks/{webhook['id']}/ping")
    assert r.status_code == 200, f"cvat_server: ping answered {r.status_code}: {r.text[:300]}"
    delivery = r.json()
    seen["ping"] = delivery
    assert delivery["status_code"] == 200, (
        f"cvat_server: the ping of a webhook to {webhook['target_url']} was delivered with "
        f"{_describe(delivery)}, expected 200. cvat_server sends pings through its own "
        "Smokescreen: "
        + (
            "407 is Smokescreen refusing the gateway (check SMOKESCREEN_OPTS on cvat_server). "
            if delivery["status_code"] == 407
            else "502/504 means nothing answered at bridge.gateway:8000 in time. "
        )
        + "Fix: see the gateway layer's checks for cvat_server."
    )


def test_job_update_event_is_delivered_to_the_bridge(cvat_api, cvat_scratch, bridge_webhook):
    project, webhook, seen = bridge_webhook
    _, job = cvat_scratch.task_with_one_job(project["id"])
    r = cvat_api.patch(f"/api/jobs/{job['id']}", json={"state": "in progress"})
    assert r.status_code == 200, (
        f"cvat_server: PATCH /api/jobs/{job['id']} answered {r.status_code}"
    )
    deadline = time.monotonic() + 30
    delivery = None
    while time.monotonic() < deadline and delivery is None:
        delivery = next(
            (d for d in _deliveries(cvat_api, webhook["id"]) if d["event"] == "update:job"), None
        )
        if delivery is None:
            time.sleep(1)
    assert delivery is not None, (
        f"cvat_worker_webhooks: no update:job delivery for webhook {webhook['id']} 30 s after "
        f"PATCH /api/jobs/{job['id']} {{'state': 'in progress'}}: events are queued on RQ "
        "queue 'webhooks' and only cvat_worker_webhooks sends them. Fix: docker logs "
        "cvat_worker_webhooks; docker restart cvat_worker_webhooks"
    )
    ping = seen.get("ping")
    ping_text = (
        f"the ping from cvat_server was delivered with {ping['status_code']}"
        if ping
        else "no ping was sent"
    )
    assert delivery["status_code"] == 200, (
        f"cvat_worker_webhooks: the update:job event to {webhook['target_url']} was delivered "
        f"with {_describe(delivery)}, expected 200, while {ping_text}. Events go through "
        "cvat_worker_webhooks' own Smokescreen"
        + (
            ": a 407 there with a 200 ping means SMOKESCREEN_OPTS allows the gateway on "
            "cvat_server but not on cvat_worker_webhooks. Fix: SMOKESCREEN_OPTS: "
            '"--allow-address=<gateway>" on cvat_worker_webhooks in bridge/docker-compose.bridge.yml'
            if delivery["status_code"] == 407
            else ". Fix: docker logs cvat_worker_webhooks"
        )
    )


class _Receiver(http.server.ThreadingHTTPServer):
    """A one-purpose webhook receiver on the host, reached by containers at the gateway."""

    def __init__(self, address: str) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
                self.requests.append((dict(handler.headers.items()), body))
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(b'{"status":"received"}')

            def log_message(handler, *args) -> None:
                pass

        super().__init__((address, 0), Handler)


@pytest.fixture
def receiver(gateway_ip):
    try:
        server = _Receiver(gateway_ip)  # the docker0 address on Linux: not on public interfaces
    except OSError:
        server = _Receiver("0.0.0.0")  # Docker Desktop: the gateway is not a host address
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_signed_delivery_verifies_against_the_raw_body(
    cvat_api, cvat_scratch, receiver, profile, depends_on
):
    depends_on(f"{THIS}test_webhook_ping_reaches_the_bridge")
    project = cvat_scratch.project()
    secret = secrets.token_hex(16)
    port = receiver.server_address[1]
    target = f"http://{profile.gateway.hostname}:{port}/criobe-verify-hook"
    webhook = _create_webhook(cvat_api, project["id"], target, ["update:job"], secret=secret)
    delivery = cvat_api.post(f"/api/webhooks/{webhook['id']}/ping").json()
    assert receiver.requests, (
        f"cvat_server: a signed ping to {target} did not arrive (delivery {_describe(delivery)}); "
        f"the bridge's port works, so Smokescreen may allow only port {profile.gateway.port} of "
        "the gateway (--allow-address=IP:PORT): that is valid for the bridge, but this check "
        "needs another port. Use --allow-address=<gateway> without a port to run it."
    )
    headers, body = receiver.requests[-1]
    signature = headers.get("X-Signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected), (
        f"cvat_server: the ping's X-Signature-256 {signature!r} does not verify against the raw "
        f"body with the webhook's secret (expected {expected[:20]}…): a bridge that checks "
        "WEBHOOK_SECRET would reject every delivery."
    )
    assert json.loads(body)["event"] == "ping"
