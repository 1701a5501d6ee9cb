"""E2E layer: the guide's webhook-to-annotation run on the sample quadrat, as a lab runs it,
each stage timed and bounded, and everything exactly once, as observed in CVAT.

    pytest -m e2e                                        # the profile's workflows
    pytest -m e2e --sample-image q.jpg --ground-truth corners.json ...

Two-stage (the tutorial): a corners project and a corals project with the exported CRIOBE
labels, the documented webhooks (detect gridcorners on job, crop to the corals project on
task + job; detect coralsegv4 with conv_mask_to_poly on the corals project), a task from the
sample, its job set "in progress" → corners detected → the job completed as CVAT completes it
→ the warped task appears in the corals project → its job goes "in progress" → coral polygons
appear. Three-stage adds the grid project between them: gridpose, then grid removal through
pth-lama into the corals project. Afterwards: one quadrat_corner skeleton of 4 elements, none
outside, in bounds, clockwise, with the confidences the function returned; one derived task
per completed task; every delivery answered 200; nothing happening again while watched.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.e2e, pytest.mark.guide("post-install")]


def _corals_then_exactly_once(run) -> None:
    """Both workflows end alike: the warped or grid-free task in the corals project, coral
    polygons on it, the run's report, then nothing happening twice while watched."""
    run.task_derived("corals")
    corals = run.shapes_detected("corals")
    expect(all(s.type == "polygon" for s in corals), lambda: run.why_corals_not_polygons(corals))
    run.report()
    twice = run.not_exactly_once()
    expect(not twice, lambda: run.why_not_exactly_once(twice))


@check("e2e/two-stage-exactly-once")
def test_two_stage_run_annotates_the_quadrat_exactly_once(pipeline):
    run = pipeline.start("two-stage")
    wrong = run.corners_detected()
    expect(not wrong, lambda: run.why_corners_break_contract(wrong))
    _corals_then_exactly_once(run)


@check("e2e/three-stage-exactly-once")
def test_three_stage_run_annotates_the_quadrat_exactly_once(pipeline):
    run = pipeline.start("three-stage")
    wrong = run.corners_detected()
    expect(not wrong, lambda: run.why_corners_break_contract(wrong))
    run.task_derived("grid")
    run.shapes_detected("grid")
    _corals_then_exactly_once(run)
