"""The dashboard twin's HTTP front: Nuclio 1.13.0's REST API on :8070, health on 127.0.0.1:8082.

    nuclio-twin-runtime -m nuclio_twin.dashboard      # as the image's entrypoint does

    GET    /api/versions                      200 {"dashboard": {label, gitCommit, os, arch}}
    GET    /api/projects[/<name>]             200 {name: project} | project | 404
    POST   /api/projects                      201 project; 400 without a name
    DELETE /api/projects   {metadata:{name}}  204; 412 default project / project has functions
    GET    /api/functions[/<name>]            200 {name: function} | function | 404
    POST   /api/functions  <function config>  202 (empty body); 409 name taken; 412 no project
    PUT    /api/functions/<name>              202 (redeploy with the body's config)
    PATCH  /api/functions/<name>  {"desiredState": "ready"}   202 (redeploy the stored config)
    DELETE /api/functions  {metadata:{name}}  204 (also when absent); 412 while building
    ANY    /api/function_invocations[/...]    the function's answer; 400/404/500 {"error": "..."}
    127.0.0.1:8082  GET /live, GET /ready     200 {} (probed by the HEALTHCHECK's uhttpc)

Request namespaces come from x-nuclio-function-namespace (functions, invocations) and
x-nuclio-project-namespace (projects), default "nuclio"; a deployed function's namespace is its
metadata.namespace (pkg/dashboard/resource/function.go processFunctionInfo). Routing and error
bodies follow pkg/restful/resource.go and go-chi (404 "404 page not found", 405 empty).
"""

import http.client
import json
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from . import DEFAULT_NAMESPACE, VERSION
from .errors import NuclioError, bad_request, conflict, not_found
from .local_platform import Platform, Settings, go_json, parse_duration

INDEX_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Nuclio</title></head>
<body><div id="nuclio">Nuclio dashboard 1.13.0 (criobe-verify twin)</div></body>
</html>
"""
NOT_FOUND_TEXT = b"404 page not found\n"
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
# nginx in front of the real dashboard puts its own Server and Date on every answer
PROXY_OWN_HEADERS = {"server", "date"}
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

PLATFORM: Platform = None  # set by main()


def _log(msg, **fields):
    record = {"level": "info", "name": "dashboard", "message": msg, **fields}
    print(json.dumps(record), file=sys.stderr, flush=True)


class DashboardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "nginx"  # the real image answers through nginx

    def log_message(self, fmt, *args):
        pass

    # plumbing

    def _send(self, status, body=b"", content_type="application/json", headers=None):
        if not isinstance(body, bytes):
            body = (go_json(body) + "\n").encode()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        _log("Handled request", method=self.command, path=urlsplit(self.path).path, status=status)

    def _error(self, err):
        self._send(err.status, err.body())

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self):
        raw = self._body()
        try:
            value = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"invalid character in JSON body: {exc}").wrap(
                "Failed to parse JSON body"
            ) from exc
        return value if isinstance(value, dict) else {}

    def _header(self, name):
        return self.headers.get(name) or ""

    def _function_namespace(self):
        return self._header("x-nuclio-function-namespace") or DEFAULT_NAMESPACE

    def _project_namespace(self):
        return self._header("x-nuclio-project-namespace") or DEFAULT_NAMESPACE

    def _route(self):
        path = urlsplit(self.path).path
        if path.startswith("/api/function_invocations"):
            return self._invoke()
        if not path.startswith("/api"):
            if self.command in ("GET", "HEAD"):
                return self._send(200, INDEX_HTML, "text/html; charset=utf-8")
            return self._send(405, b"", None)
        routes = (
            (r"/api/versions/?", {"GET": self._versions}),
            (
                r"/api/projects/?",
                {
                    "GET": self._projects,
                    "POST": self._create_project,
                    "PUT": self._update_project_legacy,
                    "DELETE": self._delete_project,
                },
            ),
            (r"/api/projects/([^/]+)", {"GET": self._project, "PUT": self._update_project}),
            (
                r"/api/functions/?",
                {
                    "GET": self._functions,
                    "POST": self._create_function,
                    "DELETE": self._delete_function,
                },
            ),
            (
                r"/api/functions/([^/]+)",
                {
                    "GET": self._function,
                    "PUT": self._update_function,
                    "PATCH": self._patch_function,
                },
            ),
        )
        for pattern, methods in routes:
            match = re.fullmatch(pattern, path)
            if match:
                method = "GET" if self.command == "HEAD" else self.command
                handler = methods.get(method)
                if handler is None:
                    self._body()
                    return self._send(405, b"", None)
                try:
                    return handler(*(unquote(g) for g in match.groups()))
                except NuclioError as err:
                    return self._error(err)
        self._body()
        return self._send(404, NOT_FOUND_TEXT, "text/plain; charset=utf-8")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route

    # versions

    def _versions(self):
        self._send(200, {"dashboard": dict(VERSION)})

    # projects (pkg/dashboard/resource/project.go)

    def _project_info(self):
        body = self._json_body()
        meta = body.get("metadata") or {}
        meta["namespace"] = meta.get("namespace") or DEFAULT_NAMESPACE
        if not meta.get("name"):
            raise bad_request("Project name must be provided in metadata").wrap(
                "Failed to process project info"
            )
        return {"metadata": meta, "spec": body.get("spec") or {}}

    def _projects(self):
        namespace = self._project_namespace()
        name = self._header("x-nuclio-project-name") or None
        projects = PLATFORM.projects(namespace, name)
        self._send(200, {p["metadata"]["name"]: p for p in projects})

    def _project(self, name):
        found = PLATFORM.projects(self._project_namespace(), name)
        if not found:
            raise not_found("Project not found")
        self._send(200, found[0])

    def _create_project(self):
        project = PLATFORM.create_project(self._project_info())
        self._send(201, project)

    def _update_project(self, name):
        info = self._project_info()
        if info["metadata"]["name"] != name:
            raise bad_request("Project name is different from request id")
        PLATFORM.create_project(info)
        self._send(204, b"")

    def _update_project_legacy(self):
        info = self._project_info()
        PLATFORM.create_project(info)
        link = f'</api/projects/{info["metadata"]["name"]}>; rel="alternate"'
        self._send(204, b"", headers={"Deprecation": "true", "Link": link})

    def _delete_project(self):
        info = self._project_info()
        strategy = self._header("x-nuclio-delete-project-strategy")
        if strategy not in ("cascading", "restricted", "check"):
            strategy = "restricted"
        PLATFORM.delete_project(info["metadata"], strategy)
        self._send(204, b"", None)

    # functions (pkg/dashboard/resource/function.go)

    def _function_info(self):
        body = self._json_body()
        meta = body.get("metadata") or {}
        meta["namespace"] = meta.get("namespace") or DEFAULT_NAMESPACE
        project = self._header("x-nuclio-project-name")
        if project:
            meta["labels"] = dict(meta.get("labels") or {}, **{"nuclio.io/project-name": project})
        name = meta.get("name") or ""
        if not name:
            raise bad_request("Function name must be provided in metadata")
        if len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
            raise bad_request(
                "Function name doesn't conform to k8s naming convention. Errors: name part must "
                "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            )
        return {"metadata": meta, "spec": body.get("spec") or {}}

    def _functions(self):
        functions = PLATFORM.functions(
            self._function_namespace(),
            project=self._header("x-nuclio-project-name") or None,
            name=self._header("x-nuclio-function-name") or None,
        )
        self._send(200, {f["metadata"]["name"]: f for f in functions})

    def _function(self, name):
        found = PLATFORM.functions(
            self._function_namespace(),
            project=self._header("x-nuclio-project-name") or None,
            name=name,
        )
        if not found:
            raise not_found("Function not found").wrap("Failed to get get function")
        self._send(200, found[0])

    def _deploy(self, info, update):
        try:
            PLATFORM.create_function(info, update=update)
        except NuclioError as err:
            raise err.wrap(f"Failed to deploy function {info['metadata']['name']}") from None
        self._send(202, b"")

    def _create_function(self):
        info = self._function_info()
        # Nuclio looks for a name clash in the request's namespace, then deploys into the
        # body's metadata.namespace
        if PLATFORM.functions(self._function_namespace(), name=info["metadata"]["name"]):
            raise conflict("Cannot create two functions with the same name")
        self._deploy(info, update=False)

    def _update_function(self, _name):
        self._deploy(self._function_info(), update=True)

    def _patch_function(self, name):
        body = self._json_body()
        state = body.get("desiredState")
        if state is None:
            return self._send(204, b"", None)
        if state not in ("ready", "scaledToZero"):
            raise bad_request(f"Unsupported desired state in patch request: {state}")
        if state == "scaledToZero":
            raise bad_request("Scale to zero is not supported by the local platform")
        PLATFORM.redeploy_function(self._function_namespace(), name)
        self._send(202, b"")

    def _delete_function(self):
        info = self._function_info()
        ignore = self._header("x-nuclio-delete-function-ignore-state-validation").lower() == "true"
        PLATFORM.delete_function(info["metadata"], ignore_state=ignore)
        self._send(204, b"", None)

    # invocations (pkg/dashboard/resource/invocation.go)

    def _invoke_error(self, status, message, prefix=b""):
        # Nuclio formats this one by hand and swaps " for ' to keep it valid JSON
        body = prefix + ('{{"error": "{}"}}'.format(message.replace('"', "'"))).encode()
        self._send(status, body)

    def _invoke(self):
        name = self._header("x-nuclio-function-name")
        namespace = self._function_namespace()
        path = self._header("x-nuclio-path").lstrip("/")
        body = self._body()
        if not name:
            return self._invoke_error(400, "Function name must be provided")
        timeout = PLATFORM.settings.invocation_timeout
        prefix, forced_status = b"", None
        raw_timeout = self._header("x-nuclio-invoke-timeout")
        if raw_timeout:
            try:
                timeout = parse_duration(raw_timeout)
            except ValueError:
                # Nuclio writes the 400 and goes on invoking without a timeout: the status
                # stays 400 and the function's answer follows the error text
                prefix = b'{"error": "Invalid invoke timeout"}'
                forced_status, timeout = 400, 0
        try:
            _record, url = PLATFORM.resolve_invocation(
                namespace, name, self._header("x-nuclio-invoke-url")
            )
        except NuclioError as err:
            return self._invoke_error(
                forced_status or err.status, f"Failed to invoke function: {err.root}", prefix
            )
        try:
            status, headers, answer = self._forward(name, url, path, body, timeout)
        except NuclioError as err:
            return self._invoke_error(
                forced_status or err.status, f"Failed to invoke function: {err.root}", prefix
            )
        kept = {
            k: v
            for k, v in headers
            if not k.lower().startswith("x-nuclio")
            and k.lower() not in HOP_HEADERS | PROXY_OWN_HEADERS
        }
        content_type = kept.pop("Content-Type", None) or kept.pop("content-type", None)
        self._send(forced_status or status, prefix + answer, content_type, kept)

    def _forward(self, name, url, path, body, timeout):
        host, _, port = url.rpartition(":")
        full = f"http://{url}" + (f"/{path}" if path else "")
        op = self.command[:1] + self.command[1:].lower()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        headers["X-Nuclio-Target"] = name
        headers.setdefault("X-Nuclio-Log-Level", "")
        conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout or None)
        try:
            conn.request(
                self.command,
                "/" + path,
                body=None if self.command == "GET" else body,
                headers=headers,
            )
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except TimeoutError as exc:
            raise NuclioError(
                500,
                f'{op} "{full}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)",
            ) from exc
        except ConnectionRefusedError as exc:
            raise NuclioError(
                500, f'{op} "{full}": dial tcp {url}: connect: connection refused'
            ) from exc
        except OSError as exc:
            raise NuclioError(500, f'{op} "{full}": dial tcp {url}: {exc}') from exc
        finally:
            conn.close()


class HealthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        path = urlsplit(self.path).path
        status = 200 if path in ("/live", "/ready") else 404
        body = b"{}\n" if status == 200 else NOT_FOUND_TEXT
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


def _server(address, handler):
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    return ThreadingHTTPServer(address, handler)


def main():
    global PLATFORM
    PLATFORM = Platform(Settings.from_env())
    PLATFORM.start()
    api = _server(("0.0.0.0", 8070), DashboardHandler)
    # health only once the platform is up, like the real dashboard's /ready
    health = _server(("127.0.0.1", 8082), HealthHandler)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        for s in (api, health)
    ]
    for thread in threads:
        thread.start()
    _log("Dashboard twin listening", api=":8070", health="127.0.0.1:8082", version=VERSION["label"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    PLATFORM.stop()
    for server in (api, health):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
