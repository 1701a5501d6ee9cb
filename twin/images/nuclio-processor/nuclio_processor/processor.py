"""The function runtime: Nuclio's processor, HTTP trigger and Python wrapper in one process.

    processor [--config /etc/nuclio/config/processor/processor.yaml]    # the image's CMD

Reads the function configuration the dashboard wrote (JSON, which is YAML), imports
spec.handler ("main:handler") from /opt/nuclio, calls init_context(context) once, then serves
the HTTP trigger on :8080 (any method, any path) and health on :8082 (/live; /ready once
init_context is done). Each request becomes a real nuclio_sdk.Event, built by the SDK's own
deserializer from the fields Nuclio's msgpack encoder sends (pkg/processor/runtime/rpc/
encode.go); the handler's return value goes through nuclio_sdk.Response.from_entrypoint_output,
and an exception becomes the wrapper's 500 text/plain answer
(pkg/processor/runtime/python/py/_nuclio_wrapper.py). Requests wait for a free worker
(trigger numWorkers) up to workerAvailabilityTimeoutMilliseconds, then get 503, like the
HTTP trigger (pkg/processor/trigger/http/trigger.go).
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import nuclio_sdk
import nuclio_sdk.json_encoder
import nuclio_sdk.logger

DEFAULT_CONFIG = "/etc/nuclio/config/processor/processor.yaml"
HANDLER_DIR = os.environ.get("NUCLIO_PYTHON_PATH", "/opt/nuclio")


class Function:
    """The loaded handler, its context and the worker pool of the HTTP trigger."""

    def __init__(self, config):
        self.meta = config.get("metadata") or {}
        self.spec = config.get("spec") or {}
        trigger_name, trigger = self._http_trigger()
        self.trigger_name = trigger_name
        self.workers = threading.Semaphore(int(trigger.get("numWorkers") or 1))
        timeout_ms = trigger.get("workerAvailabilityTimeoutMilliseconds")
        self.worker_wait = (10000 if timeout_ms is None else int(timeout_ms)) / 1000.0
        self.max_body = int((trigger.get("attributes") or {}).get("maxRequestBodySize") or 0)
        self.logger = nuclio_sdk.Logger(logging.DEBUG)
        self.logger.set_handler("default", sys.stdout, nuclio_sdk.logger.JSONFormatter())
        self.encoder = nuclio_sdk.json_encoder.Encoder()
        self.entrypoint = self._load(self.spec.get("handler") or "main:handler")
        self.module = sys.modules[self.entrypoint.__module__]
        self.context = nuclio_sdk.Context(
            self.logger,
            nuclio_sdk.Platform("local", namespace=self.meta.get("namespace", "nuclio")),
            "0",
            nuclio_sdk.TriggerInfo("http", trigger_name),
        )
        self.ready = threading.Event()

    def _http_trigger(self):
        for name, trigger in (self.spec.get("triggers") or {}).items():
            if (trigger or {}).get("kind") == "http":
                return trigger.get("name") or name, trigger
        return "default-http", {}

    @staticmethod
    def _load(handler):
        # the wrapper's _load_entrypoint_from_handler
        match = re.match(r"^([\w|-]+(\.[\w|-]+)*):(\w+)$", handler)
        if not match:
            raise ValueError(f"Malformed handler - {handler!r}")
        module_name, entrypoint = match.group(1), match.group(3)
        if HANDLER_DIR not in sys.path:
            sys.path.insert(0, HANDLER_DIR)
        module = __import__(module_name)
        for sub in module_name.split(".")[1:]:
            module = getattr(module, sub)
        return getattr(module, entrypoint)

    def initialize(self):
        init_context = getattr(self.module, "init_context", None)
        if init_context is not None:
            result = init_context(self.context)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        self.ready.set()

    def event(self, method, path, query, headers, body):
        content_type = headers.get("Content-Type", "")
        message = {
            "body": body,
            "content_type": content_type,
            "content-type": content_type,
            "trigger": {"kind": "http", "name": self.trigger_name},
            "fields": dict(query),
            "headers": headers,
            "id": str(uuid.uuid4()),
            "method": method,
            "path": path,
            "size": len(body),
            "timestamp": int(time.time()),
            "url": "",
            "shard_id": 0,
            "num_shards": 0,
            "type": "",
            "type_version": "",
            "version": "",
            "offset": 0,
            "topic": "",
        }
        return nuclio_sdk.Event.deserialize(
            message, kind=nuclio_sdk.event.EventDeserializerKinds.msgpack
        )

    def call(self, event):
        """(status, content_type, headers, body bytes) for one event."""
        try:
            output = self.entrypoint(self.context, event)
            if asyncio.iscoroutine(output):
                output = asyncio.run(output)
            response = nuclio_sdk.Response.from_entrypoint_output(self.encoder.encode, output)
            # the wrapper JSON-encodes the response for the processor; a body that cannot be
            # encoded fails there, inside the same try
            response = json.loads(self.encoder.encode(response))
        except BaseException as exc:
            text = f'Exception caught in handler - "{exc}": {traceback.format_exc()}'
            self.logger.error_with(
                "Exception caught in handler", exc=str(exc), traceback=traceback.format_exc()
            )
            return 500, "text/plain", {}, text.encode()
        body = response.get("body") or ""
        if response.get("body_encoding") == "base64":
            data = base64.b64decode(body)
        else:
            data = str(body).encode()
        # the processor decodes headers from JSON: only string values survive its type switch
        headers = {k: v for k, v in (response.get("headers") or {}).items() if isinstance(v, str)}
        return response.get("status_code") or 200, response.get("content_type"), headers, data


def canonical(name):
    """fasthttp's header-name normalisation: content-type -> Content-Type."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def make_trigger_handler(function):
    class TriggerHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return "nuclio"

        def log_message(self, fmt, *args):
            pass

        def _reply(self, status, content_type, headers, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type or "text/plain; charset=utf-8")
            for key, value in headers.items():
                if key.lower() not in ("content-length", "content-type"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            if function.max_body and length > function.max_body:
                self.close_connection = True
                return self._reply(413, "text/plain", {}, b"Request Entity Too Large")
            body = self.rfile.read(length) if length > 0 else b""
            if not function.ready.is_set():
                msg = json.dumps({"error": "Server not ready", "status": "initializing"})
                return self._reply(503, "application/json", {}, (msg + "\n").encode())
            if not function.workers.acquire(timeout=function.worker_wait):
                return self._reply(503, None, {}, b"")
            try:
                url = urlsplit(self.path)
                headers = {canonical(k): v for k, v in self.headers.items()}
                event = function.event(self.command, url.path, parse_qsl(url.query), headers, body)
                result = function.call(event)
            finally:
                function.workers.release()
            self._reply(*result)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    return TriggerHandler


def make_health_handler(function):
    class HealthHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/live":
                status = 200
            elif path == "/ready":
                status = 200 if function.ready.is_set() else 503
            else:
                status = 404
            body = b"404 page not found\n" if status == 404 else b"{}\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return HealthHandler


def _serve(port, handler):
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(prog="processor")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    try:
        with open(args.config) as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        print(json.dumps({"level": "error", "message": f"Failed to read configuration: {exc}"}))
        return 1
    try:
        function = Function(config)
    except BaseException as exc:
        print(
            json.dumps(
                {
                    "level": "error",
                    "message": "Caught unhandled exception while initializing",
                    "err": str(exc),
                    "traceback": traceback.format_exc(),
                }
            ),
            flush=True,
        )
        return 1
    _serve(8082, make_health_handler(function))
    try:
        function.initialize()
    except BaseException:
        function.logger.error_with(
            "Exception raised while running init_context", traceback=traceback.format_exc()
        )
        return 1
    # A twin fault knob for the selftests: the processor stays healthy but never opens its
    # HTTP trigger, as a processor whose trigger failed to bind while its health server runs.
    if os.environ.get("NUCLIO_TWIN_FAULT") != "trigger-closed":
        _serve(8080, make_trigger_handler(function))
    function.logger.info_with("Processor started", handler=function.spec.get("handler"))
    threading.Event().wait()
    return 0
