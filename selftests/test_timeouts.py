"""Every HTTP call the suite makes has an explicit timeout, so that a lab's CVAT, Nuclio,
bridge or Docker engine that stops answering holds a run for a bounded time, never forever.

The suite's code (criobe_verify/, fixtures/, tests/) is read as Python syntax: each call that
opens an HTTP client or sends a request (httpx, requests, urllib, http.client, sockets, the
Docker SDK) passes `timeout=` and never `timeout=None`; cvat-sdk's Client, which sends its
requests without a timeout, is made only by criobe_verify/resources/cvat.py's sdk_client,
which puts one on every request (checked below by sending one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from selftests import PROJECT_ROOT

SOURCES = ("criobe_verify", "fixtures", "tests")
# module (as imported) -> the calls that open a connection or send a request
NEEDS_TIMEOUT = {
    "httpx": {"Client", "AsyncClient", "get", "post", "put", "patch", "delete", "head",
              "options", "request", "stream"},
    "requests": {"get", "post", "put", "patch", "delete", "head", "options", "request"},
    "urllib.request": {"urlopen"},
    "http.client": {"HTTPConnection", "HTTPSConnection"},
    "socket": {"create_connection"},
    "docker": {"from_env", "DockerClient", "APIClient"},
    "criobe_verify.http": {"http_client"},
}  # fmt: skip
SDK_CLIENT_MAKER = ("criobe_verify/resources/cvat.py", "sdk_client")


def _python_files() -> list[Path]:
    return sorted(p for d in SOURCES for p in (PROJECT_ROOT / d).rglob("*.py"))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _resolved(tree: ast.AST) -> dict[str, str]:
    """Local names -> what they were imported as (`from criobe_verify.http import
    http_client` makes http_client mean criobe_verify.http.http_client)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = _resolved(tree)
    where = path.relative_to(PROJECT_ROOT)
    found = []
    enclosing: dict[ast.AST, str] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(fn):
                enclosing.setdefault(inner, fn.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if (
                kw.arg == "timeout"
                and isinstance(kw.value, ast.Constant)
                and kw.value.value is None
            ):
                found.append(f"{where}:{node.lineno}: timeout=None")
        name = _dotted(node.func)
        if not name:
            continue
        head, _, rest = name.partition(".")
        full = names.get(head, head) + (f".{rest}" if rest else "")
        module, _, func = full.rpartition(".")
        if full == "cvat_sdk.Client" or full == "cvat_sdk.make_client":
            if (str(where), enclosing.get(node)) != SDK_CLIENT_MAKER:
                found.append(f"{where}:{node.lineno}: cvat-sdk {func} outside sdk_client")
            continue
        if func not in NEEDS_TIMEOUT.get(module, ()):
            continue
        passed = {kw.arg for kw in node.keywords}
        # http_client's own body passes the caller's timeout through
        if "timeout" not in passed:
            found.append(f"{where}:{node.lineno}: {full}(...) without timeout=")
    return found


def test_every_http_call_of_the_suite_has_a_timeout() -> None:
    files = _python_files()
    assert len(files) > 50, f"read only {len(files)} files: is the layout the same?"
    offences = [o for p in files for o in _offences(p)]
    assert not offences, "HTTP calls without an explicit timeout:\n" + "\n".join(offences)


def test_the_scan_sees_a_call_without_timeout(tmp_path, monkeypatch) -> None:
    """The scan itself: calls written as the suite writes them, with and without."""
    import selftests.test_timeouts as scan

    root = tmp_path
    (root / "criobe_verify").mkdir()
    path = root / "criobe_verify" / "x.py"
    path.write_text(
        "import httpx\nimport docker as d\nfrom criobe_verify.http import http_client\n"
        "from cvat_sdk import Client\n"
        "httpx.get('u')\nhttpx.get('u', timeout=3)\nd.from_env()\nhttp_client(base_url='u')\n"
        "http_client(timeout=None)\nClient('u')\n"
    )
    monkeypatch.setattr(scan, "PROJECT_ROOT", root)
    assert [o.split(": ", 1)[1] for o in scan._offences(path)] == [
        "httpx.get(...) without timeout=",
        "docker.from_env(...) without timeout=",
        "criobe_verify.http.http_client(...) without timeout=",
        "timeout=None",
        "cvat-sdk Client outside sdk_client",
    ]


def test_sdk_client_puts_a_timeout_on_every_request() -> None:
    """cvat-sdk's generated endpoints and uploads all go through rest_client.request, which
    sdk_client wraps: a request sent without one carries the suite's."""
    pytest.importorskip("cvat_sdk")
    from criobe_verify.resources.cvat import TIMEOUT_S, sdk_client

    client = sdk_client("http://localhost:9", "localhost", "token")
    seen = []
    rest = client.api_client.rest_client
    original = rest.request.__closure__  # the wrapped send, replaced below to catch the call
    assert original, "sdk_client no longer wraps rest_client.request"

    def spy(*args, _request_timeout=None, **kwargs):
        seen.append(_request_timeout)
        raise RuntimeError("not sent")

    for cell in original:
        if (
            callable(cell.cell_contents)
            and getattr(cell.cell_contents, "__name__", "") == "request"
        ):
            cell.cell_contents = spy
    with pytest.raises(RuntimeError, match="not sent"):
        client.api_client.users_api.retrieve_self()
    assert seen == [TIMEOUT_S]
