"""cvat-sdk 2.29.0 against the CVAT twin: the flow the CRIOBE tools use.

make_client -> project from the CRIOBE label configurations (svg fixed up as
criobe_verify/data/criobe-labels/README.md says) -> task from a generated JPEG ->
job PATCH -> skeleton + polygon annotations round trip -> webhook create + ping
(read with _parse_response=False: the delivery's `response` is text, which the typed model
rejects). Everything created is deleted at the end.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from criobe_verify.labels import FILES, project_labels

HERE = Path(__file__).resolve().parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


replay = _load("cvat_replay")
conformance = _load("test_cvat_conformance")

pytestmark = pytest.mark.twin


def fixed_labels(filename: str) -> list[dict]:
    """The README's fix-up: unescape the svg, data-label-id="<id>" -> data-label-name="<k>"."""
    kind = next(k for k, f in FILES.items() if f == filename)
    return project_labels(kind)


@pytest.fixture
def client():
    from cvat_sdk import make_client

    conformance.ensure_admin()
    with make_client(
        "http://localhost", port=8080, credentials=("admin", conformance.ADMIN_PASSWORD)
    ) as c:
        yield c


def test_sdk_flow(client, tmp_path):
    from cvat_sdk import models
    from cvat_sdk.core.proxies.tasks import ResourceType

    corner = fixed_labels("corner_annotation_example.json")
    genera = fixed_labels("finegained_seg_example.json")[:3]
    project = client.projects.create({"name": "sdk flow", "labels": corner + genera})
    try:
        labels = {label.name: label for label in project.get_labels()}
        skeleton = labels["quadrat_corner"]
        assert skeleton.type == "skeleton"
        assert [s.name for s in skeleton.sublabels] == ["1", "2", "3", "4"]
        assert all(s.has_parent for s in skeleton.sublabels)
        assert "data-label-name" not in skeleton.svg
        for sub in skeleton.sublabels:
            assert f'data-label-id="{sub.id}"' in skeleton.svg
        polygon = labels[genera[0]["name"]]
        confidence = polygon.attributes[0]
        assert (confidence.name, confidence.input_type.value, confidence.values) == (
            "confidence", "number", ["0", "100", "1"],
        )  # fmt: skip

        image = tmp_path / "quadrat.jpg"
        image.write_bytes(replay.jpeg(640, 480))
        task = client.tasks.create_from_data(
            spec={"name": "sdk task", "project_id": project.id},
            resources=[image],
            resource_type=ResourceType.LOCAL,
            data_params={"image_quality": 100},
        )
        assert task.size == 1
        meta = task.get_meta()
        assert (meta.frames[0].width, meta.frames[0].height) == (640, 480)
        frame = task.get_frame(0).read()
        assert frame == image.read_bytes()

        (job,) = task.get_jobs()
        assert (job.stage, job.state, job.status) == ("annotation", "new", "annotation")
        job.update(models.PatchedJobWriteRequest(stage="acceptance", state="completed"))
        job.fetch()
        assert (job.stage, job.state, job.status) == ("acceptance", "completed", "completed")
        task.fetch()
        assert task.status == "completed"

        corners = [(10.0, 10.0), (600.0, 12.0), (610.0, 470.0), (8.0, 460.0)]
        elements = [
            models.SubLabeledShapeRequest(
                type="points", frame=0, label_id=sub.id, points=list(point)
            )
            for sub, point in zip(skeleton.sublabels, corners, strict=True)
        ]
        job.set_annotations(
            models.LabeledDataRequest(
                shapes=[
                    models.LabeledShapeRequest(
                        type="skeleton", frame=0, label_id=skeleton.id, points=[],
                        elements=elements,
                    ),
                    models.LabeledShapeRequest(
                        type="polygon", frame=0, label_id=polygon.id,
                        points=[50.0, 50.0, 200.0, 60.0, 180.0, 220.0],
                        attributes=[models.AttributeValRequest(spec_id=confidence.id, value="87")],
                    ),
                ]
            )
        )  # fmt: skip
        saved = task.get_annotations()
        by_type = {s.type.value: s for s in saved.shapes}
        assert set(by_type) == {"skeleton", "polygon"}
        got = sorted((e.label_id, tuple(e.points)) for e in by_type["skeleton"].elements)
        assert got == sorted(
            (sub.id, point) for sub, point in zip(skeleton.sublabels, corners, strict=True)
        )
        assert by_type["skeleton"].points == []
        assert by_type["polygon"].points == [50.0, 50.0, 200.0, 60.0, 180.0, 220.0]
        assert by_type["polygon"].attributes[0].value == "87"

        with replay.Receiver() as receiver:
            webhooks_api = client.api_client.webhooks_api
            webhook, _ = webhooks_api.create(
                models.WebhookWriteRequest(
                    target_url=f"http://bridge.gateway:{receiver.port}/hook",
                    type=models.WebhookType("project"),
                    events=[models.EventsEnum("update:job"), models.EventsEnum("update:task")],
                    project_id=project.id,
                    content_type=models.WebhookContentType("application/json"),
                    secret=replay.WEBHOOK_SECRET,
                    enable_ssl=False,
                )
            )
            _, response = webhooks_api.create_ping(webhook.id, _parse_response=False)
            delivery = json.loads(response.data)
            assert delivery["status_code"] == 200
            assert json.loads(delivery["response"]) == {"status": "received"}
            (received,) = receiver.take(1)
            assert json.loads(received.body)["event"] == "ping"
            assert dict(received.headers)["User-Agent"] == replay.RECORDED_USER_AGENT
    finally:
        project.remove()
    from cvat_sdk.api_client.exceptions import NotFoundException

    with pytest.raises(NotFoundException):
        client.api_client.tasks_api.retrieve(task.id)
