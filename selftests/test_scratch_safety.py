"""The suite's scratch objects set off none of the lab's webhooks (criobe_verify/resources/
scratch.py): the lab's webhooks are read before the first creation, and a scratch project that
CVAT put in an organization with webhooks watching it is deleted at once, after which nothing
more is created and every later creation fails with the same reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from criobe_verify.diagnosis import CheckFailed
from criobe_verify.resources.scratch import Placement, Scratch

LAB_HOOK = {
    "id": 12, "type": "organization", "organization": 3, "project_id": None, "is_active": True,
    "target_url": "http://lab-pipeline.example:9000/quadrat", "events": ["create:task"],
}  # fmt: skip


class FakeSession:
    """The calls Scratch makes of a CvatSession before anything is uploaded."""

    def __init__(self, organization: int | None, hooks: list[dict]) -> None:
        self.hooks, self.calls, self.destroyed = hooks, [], []
        self.profile = SimpleNamespace(cvat_url="http://localhost:8080")
        created = iter(range(100, 200))

        def create(spec: dict) -> SimpleNamespace:
            self.calls.append(("POST /api/projects", spec["name"]))
            return SimpleNamespace(id=next(created), name=spec["name"], organization=organization)

        self.sdk = SimpleNamespace(
            projects=SimpleNamespace(create=create),
            api_client=SimpleNamespace(
                projects_api=SimpleNamespace(destroy=lambda pid: self.destroyed.append(pid))
            ),
        )

    def webhooks(self) -> list[dict]:
        self.calls.append(("GET /api/webhooks", None))
        return self.hooks


def test_sandbox_projects_go_ahead_whatever_the_organizations_watch() -> None:
    session = FakeSession(organization=None, hooks=[LAB_HOOK])
    scratch = Scratch(session, "criobe-verify-20261207050000-abcdef")
    first, second = scratch.project(), scratch.project()
    assert [c[0] for c in session.calls] == ["GET /api/webhooks", *["POST /api/projects"] * 2]
    assert scratch.projects == [first.id, second.id] and session.destroyed == []


def test_a_project_put_in_a_watched_organization_stops_the_run() -> None:
    session = FakeSession(organization=3, hooks=[LAB_HOOK])
    scratch = Scratch(session, "criobe-verify-20261207050000-abcdef")
    with pytest.raises(CheckFailed) as stopped:
        scratch.project()
    assert session.destroyed == [100] and scratch.projects == []
    message = str(stopped.value)
    assert "organization 3" in message and "webhook 12" in message, message
    with pytest.raises(CheckFailed) as again:
        scratch.webhook(100, "http://bridge.gateway:8000/x", ["update:job"])
    assert str(again.value) == message
    assert [c[0] for c in session.calls] == ["GET /api/webhooks", "POST /api/projects"]


def test_an_organization_nobody_watches_goes_ahead() -> None:
    inactive = {**LAB_HOOK, "is_active": False}
    other = {**LAB_HOOK, "id": 13, "organization": 4}
    session = FakeSession(organization=3, hooks=[inactive, other])
    scratch = Scratch(session, "criobe-verify-20261207050000-abcdef")
    scratch.project()
    assert session.destroyed == [] and scratch.projects == [100]


def test_placement_says_where_the_first_project_went() -> None:
    sandbox = Scratch(FakeSession(organization=None, hooks=[LAB_HOOK]), "criobe-verify-x")
    assert sandbox.placement() == Placement(100, None, ())
    assert sandbox.placement() == Placement(100, None, ())  # made once
    watched = Scratch(FakeSession(organization=3, hooks=[LAB_HOOK]), "criobe-verify-x")
    assert watched.placement() == Placement(100, 3, (12,))
    assert watched.stopped is not None and "organization 3" in watched.stopped.what
