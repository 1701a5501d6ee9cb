"""What the twin's images offer a check, beside a running twin: the stand-ins for Alpine or
distroless images (traefik, cvat_ui, postgres, redis, opa) have no python3 and no curl on the
PATH, as the real ones; the bridge image has cvat-sdk 2.29.0, an older one for a PYTHONPATH
fault, and a GET-only /health knob.

    .venv/bin/python -m pytest -p no:cacheprovider selftests/test_twin_images_tools.py -m twin_images
"""

from __future__ import annotations

import json

import pytest

from selftests.twin_images import wait_for

pytestmark = pytest.mark.twin_images

STAND_INS = ("traefik", "cvat-ui", "postgres", "redis", "opa")


@pytest.mark.parametrize("image", STAND_INS)
@pytest.mark.parametrize("tool", ["python3", "curl"])
def test_stand_in_has_no_tool_the_real_image_lacks(lab, image, tool):
    # An idle container (sleep is in every stand-in) so that `docker exec` meets the image's
    # own PATH, as a check exec'ing into the running service would.
    name = f"{image}-{tool}"
    lab.run(name, lab.build(image), "3600", entrypoint="sleep")
    result = lab.exec(lab.name(name), tool, "--version")
    assert result.returncode != 0
    assert f'exec: "{tool}": executable file not found in $PATH' in result.stdout + result.stderr


def test_opa_still_serves_health_without_python3_on_the_path(lab):
    name = lab.run("opa", lab.build("opa"), "run", "--server", "--log-level=error")
    probe = (
        "import urllib.request; "
        "print(urllib.request.urlopen('http://127.0.0.1:8181/health', timeout=2).read().decode())"
    )

    def healthy():
        result = lab.exec(name, "/opt/opa-twin/bin/opa-python", "-c", probe)
        return result.stdout.strip() if result.returncode == 0 else None

    assert wait_for(healthy, 30, what="OPA twin /health") == "{}"


@pytest.fixture(scope="module")
def bridge_image(lab):
    return lab.build("bridge")


def test_bridge_has_cvat_sdk_2_29_0_and_the_old_one_aside(lab, bridge_image):
    name = lab.run("bridge-sdk", bridge_image, "3600", entrypoint="sleep")
    show = (
        "import cvat_sdk; from cvat_sdk.core.client import Client; "
        "print(cvat_sdk.__version__, [str(v) for v in Client.SUPPORTED_SERVER_VERSIONS])"
    )
    current = lab.exec(name, "python3", "-c", show)
    assert current.stdout.split(" ", 1) == ["2.29.0", "['2.29', '2.30']\n"], current.stderr
    old = lab.exec(name, "python3", "-c", show, env={"PYTHONPATH": "/opt/cvat-sdk-old"})
    version, window = old.stdout.split(" ", 1)
    assert version == "2.22.0", old.stderr
    assert "'2.29'" not in window
    plain = lab.exec(
        name,
        "python3",
        "-c",
        "import cvat_sdk; print(cvat_sdk.__version__)",
        env={"PYTHONPATH": "/opt/cvat-sdk-old"},
    )
    assert plain.stdout == "2.22.0\n"


def _request(lab, name, method):
    script = (
        "import sys, urllib.request, urllib.error\n"
        "r = urllib.request.Request('http://127.0.0.1:8000/health', method=sys.argv[1],"
        " data=b'{}' if sys.argv[1] == 'POST' else None,"
        " headers={'Content-Type': 'application/json'})\n"
        "try:\n"
        "    resp = urllib.request.urlopen(r, timeout=5)\n"
        "    print(resp.status, resp.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
    )
    result = lab.exec(name, "python3", "-c", script, method)
    if result.returncode != 0:
        return None
    code, body = result.stdout.strip().split(" ", 1)
    return int(code), json.loads(body)


@pytest.mark.parametrize(
    ("methods", "post"),
    [
        (None, (200, {"status": "healthy"})),
        ("GET", (405, {"detail": "Method Not Allowed"})),
    ],
)
def test_bridge_health_methods_knob(lab, bridge_image, methods, post):
    env = {"BRIDGE_TWIN_HEALTH_METHODS": methods} if methods else {}
    name = lab.run(f"bridge-health-{methods or 'default'}".lower(), bridge_image, env=env)
    assert wait_for(lambda: _request(lab, name, "GET"), 30, what="bridge /health") == (
        200,
        {"status": "healthy"},
    )
    assert _request(lab, name, "POST") == post
