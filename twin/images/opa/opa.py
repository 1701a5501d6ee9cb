"""criobe-verify twin of the OPA server (openpolicyagent/opa:0.63.0) as CVAT runs it:
`opa run --server [--addr ADDR] [--log-level L] [--set k=v ...]`.

Serves GET /health -> 200 {}. CVAT's policy queries (POST /v1/data/...) are not part of the
twin yet: every other path answers 404.
"""

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args(argv):
    if not argv or argv[0] != "run":
        print(
            f"Error: unknown command {argv[:1]!r} (the twin supports `run --server`)",
            file=sys.stderr,
        )
        sys.exit(1)
    parser = argparse.ArgumentParser(prog="opa run", add_help=False)
    parser.add_argument("-s", "--server", action="store_true")
    parser.add_argument("-a", "--addr", action="append", default=None)
    parser.add_argument("-l", "--log-level", default="info")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--log-format", default="json")
    args, _rest = parser.parse_known_args(argv[1:])
    if not args.server:
        print("Error: the twin only supports `opa run --server`", file=sys.stderr)
        sys.exit(1)
    addr = (args.addr or [":8181"])[-1]
    host, _, port = addr.rpartition(":")
    return args, (host or "0.0.0.0", int(port))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_level = "info"

    def log_message(self, fmt, *args):
        if self.log_level in ("debug", "info"):
            sys.stderr.write(
                json.dumps(
                    {
                        "level": "info",
                        "msg": "Received request.",
                        "req_method": self.command,
                        "req_path": self.path.split("?")[0],
                    }
                )
                + "\n"
            )

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def version_string(self):
        return "opa-twin"

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            self._send(200, {})
        else:
            self._send(404, {"code": "resource_not_found", "message": "page not found"})

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._send(404, {"code": "resource_not_found", "message": "page not found"})


def main(argv):
    args, address = parse_args(argv)
    Handler.log_level = args.log_level
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer(address, Handler)
    sys.stderr.write(
        json.dumps({"level": "info", "msg": "Initializing server.", "addrs": [f":{address[1]}"]})
        + "\n"
    )

    def stop(_signum, _frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    httpd.serve_forever(poll_interval=0.5)
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
