"""Stand-ins for what CVAT's lambda manager talks to in the recordings of
selftests/data/contracts/cvat-2.29.0-lambda: the Nuclio dashboard and the functions. Each
records the requests it receives (client address, request line, headers in order, body) for
the replay to compare with the recorded ones. Standard library only: it runs with any python3.

    python3 stub.py dashboard --port 8070 --functions /stub-data/functions.json
    python3 stub.py function --port 32768 --answer /stub-data/gridcorners.json

Dashboard: GET /api/functions (the map), GET /api/functions/<name> (one entry, or 404
{"error": "Function not found"}). Function: any POST answers the current answer
({"status", "delay_s", "body"}). Control paths under /_stub/ are not recorded:
GET /_stub/requests (and clear them), POST /_stub/answer (function), POST /_stub/ports
({"<name>": <httpPort>}, dashboard), POST /_stub/reset.
"""

import argparse
import copy
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, functions=None, answer=None):
        self.lock = threading.Lock()
        self.requests = []
        self.functions = functions or {}
        self.ports = {}
        self.default_answer = answer
        self.answer = copy.deepcopy(answer)

    def record(self, item):
        with self.lock:
            self.requests.append(item)

    def take(self):
        with self.lock:
            items, self.requests = self.requests, []
        return items

    def entry(self, name):
        entry = copy.deepcopy(self.functions[name])
        if name in self.ports:
            entry["status"]["httpPort"] = self.ports[name]
        return entry


def make_handler(mode, state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, payload, content_type="application/json"):
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _control(self, body):
            path = self.path.split("?", 1)[0]
            if path == "/_stub/requests":
                return self._send(200, state.take())
            if path == "/_stub/reset":
                state.ports = {}
                state.answer = copy.deepcopy(state.default_answer)
                state.take()
                return self._send(200, {})
            if path == "/_stub/answer" and self.command == "POST":
                state.answer = json.loads(body)
                return self._send(200, {})
            if path == "/_stub/ports" and self.command == "POST":
                state.ports.update(json.loads(body))
                return self._send(200, {})
            return self._send(404, {"error": "unknown control path"})

        def _handle(self):
            body = self._body()
            if self.path.startswith("/_stub/"):
                return self._control(body)
            item = {
                "t": time.time(),
                "client": self.client_address[0],
                "method": self.command,
                "path": self.path,
                "http_version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("utf-8", "replace"),
            }
            if mode == "dashboard":
                return self._dashboard(item)
            answer = copy.deepcopy(state.answer)
            item["answered"] = answer
            state.record(item)
            time.sleep(answer.get("delay_s", 0))
            self._send(answer["status"], answer["body"])

        def _dashboard(self, item):
            state.record(item)
            path = self.path.split("?", 1)[0].rstrip("/")
            if self.command == "GET" and path == "/api/functions":
                return self._send(200, {name: state.entry(name) for name in state.functions})
            prefix = "/api/functions/"
            if self.command == "GET" and path.startswith(prefix):
                name = path[len(prefix) :]
                if name in state.functions:
                    return self._send(200, state.entry(name))
                return self._send(404, {"error": "Function not found"})
            return self._send(404, {"error": "not served by the stub"})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(prog="stub.py")
    parser.add_argument("mode", choices=("dashboard", "function"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--functions", help="dashboard: the GET /api/functions map (JSON file)")
    parser.add_argument("--answer", help="function: {status, delay_s, body} (JSON file)")
    args = parser.parse_args(argv)
    if args.mode == "dashboard":
        with open(args.functions) as f:
            state = State(functions=json.load(f))
    else:
        with open(args.answer) as f:
            state = State(answer=json.load(f))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("0.0.0.0", args.port), make_handler(args.mode, state))
    print(f"stub {args.mode} on :{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
