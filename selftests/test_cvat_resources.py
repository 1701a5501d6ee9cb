"""The CVAT resources without a stack: facts parsed from CVAT 2.29.0's recorded answers (as
JSON and as cvat-sdk 2.29.0's typed models alike), and cvat-sdk loaded only by the layers
that talk to CVAT."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from criobe_verify.diagnosis import CheckFailed
from criobe_verify.resources.cvat import answering
from criobe_verify.resources.cvat_facts import Job, Label, Shape, label_names
from criobe_verify.resources.webhook import Delivery
from selftests import PROJECT_ROOT

RECORDED = PROJECT_ROOT / "selftests/data/contracts/cvat-2.29.0"


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())["response"]["json"]


def typed(body: dict, model: str):
    """The recorded JSON as cvat-sdk 2.29.0 deserialises it."""
    import urllib3
    from cvat_sdk import models
    from cvat_sdk.api_client import ApiClient

    answer = urllib3.HTTPResponse(
        body=json.dumps(body).encode(), status=200, headers={"Content-Type": "application/json"}
    )
    with ApiClient() as client:
        return client.deserialize(answer, (getattr(models, model),), _check_type=True)


def test_labels_read_alike_from_json_and_from_the_sdk_model():
    body = recorded("05_labels_list_by_project.json")
    from_json = tuple(Label.from_answer(m) for m in body["results"])
    from_model = tuple(Label.from_answer(m) for m in typed(body, "PaginatedLabelList").results)
    assert from_json == from_model
    skeleton = next(label for label in from_json if label.type == "skeleton")
    assert [s.name for s in skeleton.sublabels] == ["1", "2", "3", "4"]
    names = label_names(from_json)
    assert all(names[s.id] == s.name for s in skeleton.sublabels)


def test_shapes_read_alike_from_json_and_from_the_sdk_model():
    body = recorded("19_jobs_annotations_get.json")
    from_json = tuple(Shape.from_answer(s) for s in body["shapes"])
    from_model = tuple(Shape.from_answer(s) for s in typed(body, "LabeledData").shapes)
    assert from_json == from_model and from_json
    skeleton = next(s for s in from_json if s.type == "skeleton")
    answer = skeleton.as_answer({e.label_id: f"e{e.label_id}" for e in skeleton.elements})
    assert [e["points"] for e in answer["elements"]] == [list(e.points) for e in skeleton.elements]


def test_a_job_reads_alike_from_json_and_from_the_sdk_model():
    body = recorded("11_jobs_list_by_task.json")
    from_json = Job.from_answer(body["results"][0])
    assert from_json == Job.from_answer(typed(body, "PaginatedJobReadList").results[0])
    assert (from_json.state, from_json.stage) == ("new", "annotation")


def test_deliveries_keep_the_response_text_the_sdk_model_would_reject():
    found = [Delivery.from_json(d) for d in recorded("21_webhooks_deliveries_list.json")["results"]]
    assert found and all(isinstance(d.response, str) for d in found)
    assert found[0].describe(20).startswith(f"{found[0].status_code} ")


def test_an_sdk_error_fails_the_check_naming_the_request_and_cvats_answer():
    import urllib3
    from cvat_sdk.api_client.exceptions import ForbiddenException

    answer = urllib3.HTTPResponse(body=b'{"detail":"You do not have permission"}', status=403)
    with pytest.raises(CheckFailed) as err, answering("POST /api/projects", "201"):
        raise ForbiddenException(http_resp=answer)
    assert str(err.value) == (
        "cvat_server: POST /api/projects answered 403: "
        """'{"detail":"You do not have permission"}' — expected 201."""
    )
    assert err.value.__suppress_context__  # not the SDK's headers and traceback


CVAT_SDK_LOADED = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import criobe_verify.plugin
    import criobe_verify.fixtures, criobe_verify.tests, criobe_verify.resources
    for package in (criobe_verify.fixtures, criobe_verify.tests, criobe_verify.resources):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    imported = "cvat_sdk" in sys.modules
    from criobe_verify.cli import main
    code = main(sys.argv[1:])
    print(json.dumps({"import": imported, "run": "cvat_sdk" in sys.modules, "code": code}))
    """
)


def test_cvat_sdk_is_loaded_neither_by_importing_the_suite_nor_by_a_lower_layers_verdict(tmp_path):
    """Every plugin, fixture, resource and check module imports without cvat-sdk, and a run
    of the layers below services (here against an engine that does not answer, so it ends
    fast with a verdict) never loads it: only the layers that talk to CVAT pay for it."""
    lower = [f"--layer={name}" for name in ("host", "containers", "ports", "network", "gateway")]
    proc = subprocess.run(
        [sys.executable, "-c", CVAT_SDK_LOADED, "--reports", str(tmp_path), *lower],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 1, proc.stdout[-2000:]  # the engine check fails: a verdict
    assert result == {"import": False, "run": False, "code": 1}
