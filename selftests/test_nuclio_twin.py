"""Conformance of the Nuclio 1.13 dashboard twin and its function runtime, over HTTP.

pytest selftests/test_nuclio_twin.py -m nuclio_twin     # needs Docker and PyPI (image builds)

Builds the images, starts a private dashboard twin (see selftests/nuclio_twin.py for the
isolation rules) and walks Nuclio's API: projects, deployment, invocation, health, restart,
deletion. The tests share one dashboard and run in file order.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from selftests.nuclio_twin import (
    DASHBOARD,
    DASHBOARD_IMAGE,
    NAMESPACE,
    NETWORK,
    PROCESSOR_IMAGE,
    NuclioLab,
)

pytestmark = pytest.mark.nuclio_twin

RECORDING = (
    Path(__file__).parent
    / "data"
    / "contracts"
    / "cvat-2.29.0-lambda"
    / "nuclio_api_functions.json"
)
UHTTPC_HEALTHCHECK = [
    "CMD-SHELL",
    "/usr/local/bin/uhttpc --url http://127.0.0.1:8082/ready || exit 1",
]


@pytest.fixture(scope="module")
def lab():
    lab = NuclioLab()
    lab.cleanup()  # leftovers of an interrupted run, by the selftest's own names only
    try:
        lab.build()
        lab.start_dashboard()
        assert lab.create_project("cvat").status_code == 201
        yield lab
    finally:
        lab.cleanup()
        print(
            "\nnuclio twin timings (s): "
            + json.dumps({k: round(v, 2) for k, v in lab.timings.items()})
        )


@pytest.fixture(scope="module")
def echo(lab):
    start = time.monotonic()
    response = lab.deploy("echo")
    assert response.status_code == 202, response.text
    first = lab.function("echo")
    function = lab.wait_state("echo", "ready", "error")
    lab.timings["deploy echo to ready"] = time.monotonic() - start
    assert function["status"]["state"] == "ready", function["status"]
    return {"response": response, "first": first, "function": function}


def _exec(lab, container, *cmd):
    result = lab.docker.containers.get(container).exec_run(list(cmd))
    return result.exit_code, result.output.decode(errors="replace")


def _direct(function) -> str:
    return f"http://127.0.0.1:{function['status']['httpPort']}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# the dashboard image


def test_dashboard_image_has_no_python3_nor_curl_and_probes_with_uhttpc(lab):
    image = lab.docker.images.get(DASHBOARD_IMAGE)
    assert image.attrs["Config"]["Healthcheck"]["Test"] == UHTTPC_HEALTHCHECK
    for tool in ("python3", "python", "curl"):
        code, out = _exec(lab, DASHBOARD, "sh", "-c", f"command -v {tool}")
        assert code != 0, f"{tool} is on the PATH: {out}"
    code, out = _exec(lab, DASHBOARD, "sh", "-c", "ls /usr/bin/python3* 2>/dev/null")
    assert code != 0 and not out.strip(), out
    assert _exec(lab, DASHBOARD, "uhttpc", "--url", "http://127.0.0.1:8082/ready")[0] == 0
    assert _exec(lab, DASHBOARD, "uhttpc", "--url", "http://127.0.0.1:8082/live")[0] == 0
    assert _exec(lab, DASHBOARD, "uhttpc", "--url", "http://127.0.0.1:8082/nothing")[0] == 1
    deadline = time.monotonic() + 30
    while lab.container_health(DASHBOARD) != "healthy":
        assert time.monotonic() < deadline, lab.container_health(DASHBOARD)
        time.sleep(0.5)


def test_health_endpoints_listen_on_loopback_only(lab):
    probe = (
        "import socket; s = socket.socket(); "
        "s.connect((socket.gethostbyname(socket.gethostname()), {port}))"
    )
    runtime = "/opt/nuclio-twin/bin/nuclio-twin-runtime"
    assert _exec(lab, DASHBOARD, runtime, "-c", probe.format(port=8070))[0] == 0
    code, out = _exec(lab, DASHBOARD, runtime, "-c", probe.format(port=8082))
    assert code != 0 and "ConnectionRefusedError" in out


def test_versions(lab):
    response = lab.api.get("/api/versions")
    assert response.status_code == 200
    assert response.json() == {
        "dashboard": {
            "label": "1.13.0",
            "gitCommit": "c4422eb772781fb50fbf017698aae96199d81388",
            "os": "linux",
            "arch": "amd64",
        }
    }


def test_unknown_api_path_and_method_answer_like_chi(lab):
    response = lab.api.get("/api/healthz")
    assert (response.status_code, response.text) == (404, "404 page not found\n")
    response = lab.api.delete("/api/functions/echo")
    assert response.status_code == 405


# projects


def test_default_project_exists_at_start(lab):
    response = lab.api.get("/api/projects")  # no namespace header: "nuclio"
    assert response.status_code == 200
    projects = response.json()
    assert projects["default"]["metadata"] == {"name": "default", "namespace": "nuclio"}
    assert set(projects["default"]) == {"metadata", "spec", "status"}


def test_project_create_get_and_list(lab):
    headers = {"x-nuclio-project-namespace": NAMESPACE}
    response = lab.api.post(
        "/api/projects",
        json={"metadata": {"name": "scratch"}, "spec": {"description": "selftest"}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["metadata"] == {"name": "scratch", "namespace": "nuclio"}
    assert created["spec"] == {"description": "selftest"}
    assert created["status"]["updatedAt"].endswith("Z")
    # the body's namespace wins for creation (processProjectInfo), the header for reading
    response = lab.api.post(
        "/api/projects",
        json={"metadata": {"name": "scratch", "namespace": NAMESPACE}, "spec": {}},
        headers=headers,
    )
    assert response.status_code == 201
    listed = lab.api.get("/api/projects", headers=headers).json()
    assert {"cvat", "scratch"} <= set(listed)
    assert (
        lab.api.get("/api/projects/scratch", headers=headers).json()["metadata"]["name"]
        == "scratch"
    )
    missing = lab.api.get("/api/projects/absent", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == "Project not found"
    no_name = lab.api.post("/api/projects", json={"metadata": {}}, headers=headers)
    assert no_name.status_code == 400
    assert no_name.json()["error"] == "Project name must be provided in metadata"
    for namespace in ("nuclio", NAMESPACE):
        gone = lab.api.request(
            "DELETE",
            "/api/projects",
            json={"metadata": {"name": "scratch", "namespace": namespace}},
        )
        assert gone.status_code == 204, gone.text
    assert "scratch" not in lab.api.get("/api/projects", headers=headers).json()


def test_default_project_cannot_be_deleted(lab):
    response = lab.api.request("DELETE", "/api/projects", json={"metadata": {"name": "default"}})
    assert response.status_code == 412
    assert response.json()["error"] == "Cannot delete the default project"


# deployment


def test_deploy_into_missing_project_is_refused_like_nuclio(lab):
    response = lab.deploy("echo", project="does-not-exist")
    assert response.status_code == 412
    body = response.json()
    assert body["error"] == "Project does not exist"
    assert isinstance(body["errorStackTrace"], str)
    assert lab.api.get("/api/functions/echo").status_code == 404


def test_deploy_is_accepted_then_building_then_ready(lab, echo):
    assert echo["response"].status_code == 202
    assert echo["response"].content == b""
    assert echo["first"]["status"]["state"] in ("building", "ready")
    assert lab.timings["deploy echo to ready"] < 60


def test_deployed_container_is_set_up_like_the_local_platform(lab, echo):
    function = echo["function"]
    container = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo")
    attrs = container.attrs
    labels = attrs["Config"]["Labels"]
    assert labels["nuclio.io/platform"] == "local"
    assert labels["nuclio.io/namespace"] == NAMESPACE
    assert labels["nuclio.io/function-name"] == "echo"
    assert labels["nuclio.io/project-name"] == "cvat"
    assert json.loads(labels["nuclio.io/function-spec"]) == function["spec"]
    assert json.loads(labels["nuclio.io/annotations"]) == function["metadata"]["annotations"]
    assert attrs["Config"]["Healthcheck"]["Test"] == UHTTPC_HEALTHCHECK
    assert lab.container_health(container.name) == "healthy"
    assert set(attrs["NetworkSettings"]["Networks"]) == {NETWORK}
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert "ECHO_ENV=from-function-yaml" in attrs["Config"]["Env"]
    published = attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert int(published[0]["HostPort"]) == function["status"]["httpPort"]
    ip = attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    assert function["status"]["internalInvocationUrls"] == [f"{ip}:8080"]
    assert function["status"]["externalInvocationUrls"] == [
        f"0.0.0.0:{function['status']['httpPort']}"
    ]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    config_mount = mounts["/etc/nuclio/config/processor"]
    assert config_mount["Name"] == f"nuclio-{NAMESPACE}-echo" and config_mount["RW"] is False


def test_function_shape_matches_the_recorded_dashboard(lab, echo):
    recorded = next(iter(json.loads(RECORDING.read_text()).values()))
    ours = echo["function"]
    assert set(ours) == set(recorded)
    assert set(recorded["metadata"]) <= set(ours["metadata"])
    assert set(recorded["status"]) == set(ours["status"])
    for key, value in recorded["status"].items():
        assert type(ours["status"][key]) is type(value), key
    trigger = ours["spec"]["triggers"]["myHttpTrigger"]
    recorded_trigger = recorded["spec"]["triggers"]["myHttpTrigger"]
    assert {"class", "kind", "name", "maxWorkers", "attributes"} <= set(trigger)
    assert trigger["class"] == recorded_trigger["class"] == ""
    assert ours["metadata"]["labels"] == {"nuclio.io/project-name": "cvat"}
    assert isinstance(ours["metadata"]["annotations"]["spec"], str)


def test_function_list_is_keyed_by_name_and_filtered_by_headers(lab, echo):
    listed = lab.api.get("/api/functions").json()
    assert listed["echo"] == lab.function("echo")
    assert "echo" in lab.api.get("/api/functions", headers={"x-nuclio-project-name": "cvat"}).json()
    assert lab.api.get("/api/functions", headers={"x-nuclio-project-name": "other"}).json() == {}
    other_namespace = {"x-nuclio-function-namespace": "criobetest-elsewhere"}
    assert lab.api.get("/api/functions", headers=other_namespace).json() == {}
    assert lab.api.get("/api/functions/echo", headers=other_namespace).status_code == 404


def test_unknown_function_is_nuclios_404(lab):
    response = lab.api.get("/api/functions/pth-does-not-exist")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "Function not found"
    assert set(body) == {"error", "errorStackTrace"}


def test_duplicate_create_is_a_conflict(lab, echo):
    response = lab.deploy("echo")
    assert response.status_code == 409
    assert response.json()["error"] == "Cannot create two functions with the same name"


# the processor


def test_event_reaches_the_handler_as_the_python_wrapper_gives_it(lab, echo):
    url = _direct(echo["function"])
    seen = httpx.post(f"{url}/some/path?x=1", json={"image": "abc"}).json()
    assert seen["body"] == {"image": "abc"} and seen["body_type"] == "dict"
    assert seen["content_type"] == "application/json"
    assert (seen["method"], seen["path"], seen["fields"]) == ("POST", "/some/path", {"x": "1"})
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["trigger"] == {"kind": "http", "name": "myHttpTrigger"}
    assert seen["classes"] == {
        "context": "nuclio_sdk.context.Context",
        "event": "nuclio_sdk.event.Event",
        "logger": "nuclio_sdk.logger.Logger",
        "response": "nuclio_sdk.response.Response",
    }
    assert seen["user_data"] == {"greeting": "hello from init_context", "init_calls": 1}
    assert (seen["env"], seen["cwd"]) == ("from-function-yaml", "/opt/nuclio")
    raw = httpx.put(url, content=b"\xff\x00raw", headers={"content-type": "text/plain"}).json()
    assert raw["body_type"] == "bytes" and raw["body"] == {"bytes_b64": "/wByYXc="}
    # only an exact application/json is parsed, like the SDK's deserializer
    charset = httpx.post(
        url, content=b'{"a": 1}', headers={"content-type": "application/json; charset=utf-8"}
    ).json()
    assert charset["body_type"] == "bytes"
    assert httpx.get(url).json()["method"] == "GET"


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body"),
    [
        ("/str", 200, "text/plain", b"plain string"),
        ("/bytes", 200, "text/plain", b"\x00\x01binary"),
        ("/tuple", 201, "application/json", b'{"created": true}'),
        ("/tuple-str", 202, "text/plain", b"accepted"),
        ("/list", 200, "application/json", b"[1, 2, 3]"),
        ("/response", 418, "text/x-teapot", b"teapot"),
    ],
)
def test_return_values_become_responses_like_the_processor(
    lab, echo, path, status, content_type, body
):
    response = httpx.post(f"{_direct(echo['function'])}{path}")
    assert (response.status_code, response.headers["content-type"], response.content) == (
        status,
        content_type,
        body,
    )
    assert response.headers["server"] == "nuclio"
    if path == "/response":
        assert response.headers["x-custom"] == "yes"
        assert "x-int" not in response.headers  # non-string header values do not survive


def test_processor_health_and_image(lab, echo):
    container = f"nuclio-{NAMESPACE}-echo"
    for path in ("/live", "/ready"):
        assert _exec(lab, container, "uhttpc", "--url", f"http://127.0.0.1:8082{path}")[0] == 0
    code, out = _exec(
        lab,
        container,
        "python3",
        "-c",
        "import importlib.metadata as m, cv2, numpy; print(m.version('nuclio-sdk'))",
    )
    assert (code, out.strip()) == (0, "0.5.9")
    image = lab.docker.images.get(PROCESSOR_IMAGE)
    assert image.attrs["Config"]["Healthcheck"]["Test"] == UHTTPC_HEALTHCHECK


def test_handler_exception_is_a_500_with_its_text(lab):
    assert lab.deploy("raises").status_code == 202
    function = lab.wait_state("raises", "ready", "error")
    assert function["status"]["state"] == "ready"
    response = httpx.post(_direct(function), json={})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain"
    assert response.text.startswith(
        'Exception caught in handler - "boom from the handler": Traceback'
    )
    assert 'raise ValueError("boom from the handler")' in response.text


# invocation through the dashboard


def _invoke(lab, name, path="", timeout=None, **kwargs):
    headers = {"x-nuclio-function-name": name, "x-nuclio-path": path}
    if timeout:
        headers["x-nuclio-invoke-timeout"] = timeout
    headers.update(kwargs.pop("headers", {}))
    return lab.api.post("/api/function_invocations", headers=headers, **kwargs)


def test_invocation_goes_through_the_function_container(lab, echo):
    response = _invoke(lab, "echo", path="/via/dashboard?q=2", json={"k": "v"}, timeout="10s")
    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["path"], seen["fields"], seen["body"]) == (
        "/via/dashboard",
        {"q": "2"},
        {"k": "v"},
    )
    assert seen["headers"]["X-Nuclio-Target"] == "echo"
    assert response.headers["server"] == "nginx"
    teapot = _invoke(lab, "echo", path="response")
    assert (teapot.status_code, teapot.text, teapot.headers["x-custom"]) == (418, "teapot", "yes")
    assert not any(k.lower().startswith("x-nuclio") for k in teapot.headers)
    failing = _invoke(lab, "raises", json={})
    assert failing.status_code == 500 and "boom from the handler" in failing.text


def test_invocation_errors(lab, echo):
    missing = lab.api.post("/api/function_invocations")
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "Function name must be provided"},
    )
    unknown = _invoke(lab, "nope")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": f"Failed to invoke function: Function not found: nope @ {NAMESPACE}"
    }
    bad_url = _invoke(lab, "echo", headers={"x-nuclio-invoke-url": "10.0.0.1:1"})
    assert bad_url.status_code == 400
    assert bad_url.json() == {"error": "Failed to invoke function: Invalid function url 10.0.0.1:1"}


def test_slow_function_times_out_and_its_single_worker_is_busy(lab):
    assert lab.deploy("slow").status_code == 202
    function = lab.wait_state("slow", "ready", "error")
    assert function["status"]["state"] == "ready"
    timed_out = _invoke(lab, "slow", json={"seconds": 3}, timeout="1s")
    assert timed_out.status_code == 500
    assert "context deadline exceeded" in timed_out.json()["error"]
    url = _direct(function)
    # the timed-out call still holds the only worker until its 3 s sleep ends
    deadline = time.monotonic() + 10
    while httpx.post(url, json={"seconds": 0}, timeout=10).status_code == 503:
        assert time.monotonic() < deadline, "the worker never came free"
        time.sleep(0.3)
    busy = threading.Thread(
        target=httpx.post, args=(url,), kwargs={"json": {"seconds": 2}, "timeout": 10}
    )
    busy.start()
    time.sleep(0.3)
    # workerAvailabilityTimeoutMilliseconds is 500 in slow/function.yaml
    second = httpx.post(url, json={"seconds": 0}, timeout=10)
    busy.join()
    assert second.status_code == 503
    assert httpx.post(url, json={"seconds": 0}, timeout=10).json() == {"slept": 0.0}


# redeployment, ports, networks, failures


def test_put_redeploys_and_keeps_the_port(lab, echo):
    before = lab.function("echo")
    old_id = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo").id
    config = lab.config("echo", env=[{"name": "ECHO_ENV", "value": "redeployed"}])
    response = lab.api.put(
        "/api/functions/echo", json=config, headers={"x-nuclio-project-name": "cvat"}
    )
    assert response.status_code == 202, response.text
    assert lab.function("echo")["status"]["state"] == "building"
    after = lab.wait_state("echo", "ready", "error")
    assert after["status"]["state"] == "ready"
    assert after["status"]["httpPort"] == before["status"]["httpPort"]
    assert lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo").id != old_id
    assert httpx.get(_direct(after)).json()["env"] == "redeployed"
    patched = lab.api.patch("/api/functions/echo", json={"desiredState": "ready"})
    assert patched.status_code == 202
    assert lab.wait_state("echo", "ready", "error")["status"]["state"] == "ready"


def test_trigger_port_is_published_as_given(lab):
    port = _free_port()
    config = lab.config("echo")
    config["metadata"]["name"] = "echo-port"
    config["spec"]["triggers"]["myHttpTrigger"]["attributes"]["port"] = port
    assert lab.deploy("echo", config=config).status_code == 202
    function = lab.wait_state("echo-port", "ready", "error")
    assert function["status"]["httpPort"] == port
    assert httpx.get(f"http://127.0.0.1:{port}/str").text == "plain string"


def test_missing_network_attribute_means_the_default_bridge(lab):
    config = lab.config("echo")
    config["metadata"]["name"] = "echo-bridge"
    del config["spec"]["platform"]["attributes"]["network"]
    assert lab.deploy("echo", config=config).status_code == 202
    function = lab.wait_state("echo-bridge", "ready", "error")
    assert function["status"]["state"] == "ready"
    networks = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo-bridge").attrs[
        "NetworkSettings"
    ]["Networks"]
    assert set(networks) == {"bridge"}
    restart = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo-bridge").attrs["HostConfig"][
        "RestartPolicy"
    ]
    assert restart["Name"] == "always"  # from function.yaml's restartPolicy, kept


def test_spec_without_event_timeout_or_restart_policy_gets_nuclios_defaults(lab):
    """Nuclio 1.13 has no default eventTimeout (the dashboard lists "", the processor starts
    no timeout watcher) and no default restart policy on the local platform (Docker's "no")."""
    config = lab.config("echo")
    config["metadata"]["name"] = "echo-bare"
    del config["spec"]["eventTimeout"]
    del config["spec"]["platform"]["attributes"]["restartPolicy"]
    assert lab.deploy("echo", config=config).status_code == 202
    function = lab.wait_state("echo-bare", "ready", "error")
    assert function["status"]["state"] == "ready"
    assert function["spec"]["eventTimeout"] == ""
    listed = lab.api.get("/api/functions").json()["echo-bare"]
    assert listed["spec"]["eventTimeout"] == ""
    assert lab.function("echo")["spec"]["eventTimeout"] == "30s"
    attrs = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo-bare").attrs
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")


def test_restarted_container_publishes_a_new_port_until_redeployed(lab):
    """nuclio/nuclio#1668: a function container published on a random port (a first deploy)
    gets another one from Docker when it restarts; the dashboard keeps the old httpPort until
    a redeploy, which reuses the port the container publishes."""
    name = f"nuclio-{NAMESPACE}-echo-bare"
    before = lab.function("echo-bare")["status"]["httpPort"]
    container = lab.docker.containers.get(name)
    assert container.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == ""
    container.restart(timeout=1)
    container.reload()
    moved = int(container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    assert moved != before
    assert lab.function("echo-bare")["status"]["httpPort"] == before
    patched = lab.api.patch("/api/functions/echo-bare", json={"desiredState": "ready"})
    assert patched.status_code == 202
    redeployed = lab.wait_state("echo-bare", "ready", "error")
    assert redeployed["status"]["httpPort"] == moved
    assert httpx.get(_direct(redeployed) + "/str").text == "plain string"


def test_failures_end_in_error_with_a_message(lab):
    config = lab.config("echo")
    config["metadata"]["name"] = "no-image"
    config["spec"]["image"] = "criobe-selftest/does-not-exist:latest"
    assert lab.deploy("echo", config=config).status_code == 202
    no_image = lab.wait_state("no-image", "error", "ready")
    assert no_image["status"]["state"] == "error"
    assert "No such image" in no_image["status"]["message"]
    assert lab.deploy("crash").status_code == 202
    crash = lab.wait_state("crash", "error", "ready")
    assert crash["status"]["state"] == "error"
    assert "Container exited with status: 1" in crash["status"]["message"]
    assert "model weights not found" in crash["status"]["message"]


def test_dead_container_makes_the_function_unhealthy_and_back(lab, echo):
    container = lab.docker.containers.get(f"nuclio-{NAMESPACE}-echo")
    container.stop(timeout=1)
    unhealthy = lab.wait_state("echo", "unhealthy", timeout=30)
    assert unhealthy["status"]["message"] == "Function is not healthy"
    container.start()
    ready = lab.wait_state("echo", "ready", timeout=60)
    assert "message" not in ready["status"]


# the dashboard's own restarts


def test_dashboard_restart_keeps_functions_and_projects(lab, echo):
    before = {n: f["status"]["state"] for n, f in lab.api.get("/api/functions").json().items()}
    lab.restart_dashboard()
    after = {n: f["status"]["state"] for n, f in lab.api.get("/api/functions").json().items()}
    assert after == before
    projects = lab.api.get("/api/projects", headers={"x-nuclio-project-namespace": NAMESPACE})
    assert "cvat" in projects.json()


def test_recreated_dashboard_rediscovers_functions_from_container_labels(lab, echo):
    before = lab.function("echo")
    lab.recreate_dashboard()
    found = lab.function("echo")
    assert found["metadata"] == before["metadata"]
    assert found["spec"] == before["spec"]
    assert found["status"]["state"] == "ready"
    assert found["status"]["httpPort"] == before["status"]["httpPort"]
    # the twin keeps projects in its container's filesystem: a new container starts without
    assert lab.create_project("cvat").status_code == 201


# deletion


def test_project_with_functions_cannot_be_deleted(lab, echo):
    response = lab.api.request(
        "DELETE", "/api/projects", json={"metadata": {"name": "cvat", "namespace": NAMESPACE}}
    )
    assert response.status_code == 412
    assert response.json()["error"] == "Project contains functions"


def test_delete_function_removes_its_container_and_volume(lab, echo):
    for name in lab.api.get("/api/functions").json():
        response = lab.api.request(
            "DELETE", "/api/functions", json={"metadata": {"name": name, "namespace": NAMESPACE}}
        )
        assert response.status_code == 204, response.text
        assert not lab.docker.containers.list(
            all=True, filters={"name": f"^/nuclio-{NAMESPACE}-{name}$"}
        )
        assert not [v for v in lab.docker.volumes.list() if v.name == f"nuclio-{NAMESPACE}-{name}"]
        assert lab.api.get(f"/api/functions/{name}").status_code == 404
    again = lab.api.request(
        "DELETE", "/api/functions", json={"metadata": {"name": "echo", "namespace": NAMESPACE}}
    )
    assert again.status_code == 204
    assert lab.api.get("/api/functions").json() == {}
    gone = lab.api.request(
        "DELETE", "/api/projects", json={"metadata": {"name": "cvat", "namespace": NAMESPACE}}
    )
    assert gone.status_code == 204
    assert (
        lab.api.get(
            "/api/projects/cvat", headers={"x-nuclio-project-namespace": NAMESPACE}
        ).status_code
        == 404
    )
