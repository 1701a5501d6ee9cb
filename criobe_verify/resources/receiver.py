"""A webhook receiver the suite runs in a short-lived container on the stack's network,
published on the host at the Docker gateway, so CVAT reaches it exactly as it reaches the
bridge (bridge.gateway:<port> through Smokescreen) and no host firewall or remote DOCKER_HOST
stands between them. It logs every request it gets; the suite reads them back.

    receiver = Receiver.start(docker_client, image, network="cvat_cvat", gateway_ip=ip,
                              name=f"{run_prefix}-receiver")
    ...  # make CVAT deliver to receiver.url("bridge.gateway")
    signed = receiver.last()
    expect(signed and signed.verifies(secret), lambda: receiver.why_signature_fails(signed, secret))
    receiver.remove()

    >>> r = Received({"X-Signature-256": "sha256=x"}, b'{"event": "ping"}')
    >>> r.event, r.verifies("s3cret")
    ('ping', False)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.resources.webhook import Delivery
from criobe_verify.waiting import LogLine, wait_or_fail

SUBJECT = "webhook receiver"
PATH = "/criobe-verify-hook"
ROLE = {"criobe-verify.role": "webhook-receiver"}  # cleanup.py removes what carries it
SERVER = r"""
import base64, http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(json.dumps({"headers": list(self.headers.items()),
                          "body": base64.b64encode(body).decode()}), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status":"received"}')

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("0.0.0.0", 9000), Handler)
print(json.dumps({"listening": 9000}), flush=True)
server.serve_forever()
"""


def signature(secret: str, body: bytes) -> str:
    """X-Signature-256 as CVAT computes it: HMAC-SHA256 of the raw body, `sha256=` prefix."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Received:
    headers: Mapping[str, str]
    body: bytes

    @property
    def event(self) -> str | None:
        try:
            return json.loads(self.body).get("event")
        except (ValueError, AttributeError):
            return None

    @property
    def signature(self) -> str:
        return self.headers.get("X-Signature-256", "")

    def verifies(self, secret: str) -> bool:
        return hmac.compare_digest(self.signature, signature(secret, self.body))


@dataclass
class Receiver:
    container: Any  # a docker Container
    port: int  # on the host, at the gateway

    @classmethod
    def start(
        cls, docker_client: Any, image: str, *, network: str, gateway_ip: str, name: str
    ) -> Receiver:
        """Run it and wait until it listens; the caller removes it (`remove`)."""
        import docker

        container, last_error = None, None
        # On Linux the gateway is an address of this host (docker0): publishing there keeps
        # the receiver off public interfaces. Where it is not (Docker Desktop), all interfaces.
        for host_ip in (gateway_ip, "0.0.0.0"):
            try:
                container = docker_client.containers.run(
                    image,
                    entrypoint=["python3", "-c", SERVER],
                    command=[],
                    name=name,
                    network=network,
                    ports={"9000/tcp": (host_ip, None)},
                    labels=ROLE,
                    detach=True,
                )
                break
            except docker.errors.APIError as exc:
                last_error = exc
                with contextlib.suppress(docker.errors.NotFound):
                    docker_client.containers.get(name).remove(force=True)
        if container is None:
            fail(
                Diagnosis(
                    SUBJECT,
                    f"could not start a receiver container from {image}",
                    observed=str(last_error),
                    consequence="the signed-delivery check cannot run",
                )
            )
        try:
            ready = LogLine(
                SUBJECT, container, "listening", consequence="the signed-delivery check cannot run"
            )
            wait_or_fail(ready, timeout=20, what="the webhook receiver", interval=0.2)
            return cls(container, cls._host_port(container))
        except BaseException:
            container.remove(force=True)
            raise

    @staticmethod
    def _host_port(container: Any) -> int:
        container.reload()
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get("9000/tcp") or []
        if not bindings:
            fail(Diagnosis(SUBJECT, "was not published on the host"))
        return int(bindings[0]["HostPort"])

    def url(self, hostname: str) -> str:
        return f"http://{hostname}:{self.port}{PATH}"

    def received(self) -> list[Received]:
        """Every request it got, oldest first."""
        lines = self.container.logs(stdout=True, stderr=False).decode(errors="replace")
        found = []
        for line in lines.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "headers" in entry:
                found.append(Received(dict(entry["headers"]), base64.b64decode(entry["body"])))
        return found

    def last(self) -> Received | None:
        found = self.received()
        return found[-1] if found else None

    def remove(self) -> None:
        self.container.remove(force=True)

    def why_nothing_arrived(self, ping: Delivery, target: str, bridge_port: int) -> Diagnosis:
        return Diagnosis(
            "cvat_server",
            f"a signed ping to {target} did not arrive",
            observed=f"delivery {ping.describe()}",
            why=f"the bridge's port works, so Smokescreen may allow only port {bridge_port} of "
            "the gateway (--allow-address=IP:PORT): valid for the bridge, but this check's "
            "receiver listens on another port",
            expected="the ping at the suite's receiver",
            consequence="the signature cannot be checked",
            fix="use --allow-address=<gateway> without a port to run this check",
        )

    def why_signature_fails(self, received: Received, secret: str) -> Diagnosis:
        return Diagnosis(
            "cvat_server",
            "the ping's X-Signature-256 does not verify against the raw body with the "
            "webhook's secret",
            observed=repr(received.signature),
            expected=f"{signature(secret, received.body)[:20]}…",
            consequence="a bridge that checks WEBHOOK_SECRET rejects every delivery",
            fix="check that nothing between CVAT and the bridge rewrites the body",
        )
