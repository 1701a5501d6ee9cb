"""A repeated corner detection is named as a run that did not happen exactly once, whichever
moment it is first seen: at the corner contract (the repeat was stored before the watch began)
or in the exactly-once watch. CI saw the fault bridge-redetects-on-every-update caught either
way; its token must hold both times. A function that itself answers two skeletons stays a
contract break."""

from __future__ import annotations

from types import SimpleNamespace

from criobe_verify.resources.cvat_facts import Label, Shape
from criobe_verify.resources.pipeline import REPEATED, Run

CORNER = Label(7, "quadrat_corner", "skeleton")


def _run(answer: list[dict]) -> SimpleNamespace:
    """What Run._corner_problems reads: the corners project's labels, the function's answer,
    the sample's size and the profile's shape source."""
    pipeline = SimpleNamespace(
        functions=SimpleNamespace(answer=lambda name, request, image="": SimpleNamespace(data=answer)),
        sample=SimpleNamespace(request=lambda kind: {}, key="q.jpg", truth=SimpleNamespace(photo_size=(100, 100))),
        profile=SimpleNamespace(e2e=SimpleNamespace(shape_source="auto")),
    )  # fmt: skip
    run = SimpleNamespace(pipeline=pipeline, workflow="two-stage", labels=lambda kind: [CORNER])
    run.why_not_exactly_once = lambda problems: Run.why_not_exactly_once(run, problems)
    return run


def _skeleton() -> Shape:
    return Shape(CORNER.id, "skeleton", source="auto")


def test_two_stored_skeletons_for_one_answered_are_a_repeat_not_a_contract_break():
    run = _run([{"label": "quadrat_corner", "type": "skeleton", "attributes": []}])
    problems = Run._corner_problems(run, CORNER, [_skeleton(), _skeleton()])
    assert problems == [
        f"{REPEATED} 2 times (2 quadrat_corner skeletons stored, pth-yolo-gridcorners answers 1)"
    ]
    diagnosis = Run.why_corners_break_contract(run, problems)
    assert "did not happen exactly once" in diagnosis.what, diagnosis.what
    assert "2 quadrat_corner skeletons stored" in diagnosis.observed


def test_two_skeletons_the_function_answered_break_the_contract():
    answered = {"label": "quadrat_corner", "type": "skeleton", "attributes": []}
    run = _run([answered, answered])
    problems = Run._corner_problems(run, CORNER, [_skeleton(), _skeleton()])
    assert problems and not problems[0].startswith(REPEATED), problems
    assert "2 quadrat_corner skeletons, expected exactly 1" in problems
    diagnosis = Run.why_corners_break_contract(run, problems)
    assert diagnosis.what == "the corners it stored break the contract"
