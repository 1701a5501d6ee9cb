"""Inference layer: each function on the sample quadrat, judged on its raw answer (CVAT pads
skeletons, replaces bad confidences and drops unknown labels, which would hide defects).

    pytest -m inference                                   # the committed synthetic sample
    pytest -m inference --sample-image q.jpg --ground-truth corners.json --ground-truth grid.json
    pytest -m inference --sample-image q1.jpg --sample-image q2.jpg --ground-truth exports/

Several photos: each check runs per function and photo (`inference/answers-sample[<function>@
<photo>]`); one photo keeps the function's name alone as the id.

Per function: it answers the image of its pipeline stage; its answer follows the output
contract (one quadrat_corner skeleton, elements 1-4 clockwise from the top-left; one grid
skeleton of 117; LaMa's image the size of its input; coral shapes over the 16 genera in the
profile's form; integer-percent confidences); it is accurate against the ground truth (policy:
the profile's thresholds; errors per element id, Hungarian pairing of coral colonies only); it
matches its golden answer (policy; `--update-golden` records it); and CVAT's own online call
answers what CVAT 2.29.0's rules make of the function's answer, dropping nothing it found. What an answer is and how it is judged is
criobe_verify/resources/answer.py's.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect
from criobe_verify.resources.cvat_lambda import online_call_keeps

pytestmark = [pytest.mark.inference, pytest.mark.guide("step-6")]


@check("inference/answers-sample")
def test_function_answers_the_sample(expected_function, answers, depends_on, report_answer):
    """The answer is kept in summary.json (and a baseline: the lab's golden, compared after
    an upgrade by criobe_verify/answer_drift.py)."""
    depends_on("functions/deployed-and-ready")
    answer = answers[expected_function]
    expect(answer.ok, answer.why_no_answer)
    report_answer(*answer.kept())


@check("inference/output-follows-contract")
def test_function_output_follows_the_contract(expected_function, answers, depends_on, report_image):
    depends_on("inference/answers-sample")
    answer = answers[expected_function]
    if overlay := answer.overlay():
        report_image(*overlay)
    problems = answer.contract_problems()
    expect(not problems, lambda: answer.why_breaks_contract(problems))


@check("inference/accurate-on-sample", policy=True)
def test_function_is_accurate_on_the_sample(measured_function, answers, depends_on, report_note):
    """For the functions whose answer the sample's ground truth can judge (not SAM's
    embedding)."""
    depends_on("inference/output-follows-contract")
    answer = answers[measured_function]
    answer.require_judgeable()
    problems, measured = answer.accuracy()
    report_note(f"{measured_function.name} on {answer.sample.name}: {measured}")
    expect(not problems, lambda: answer.why_inaccurate(problems))


@check("inference/matches-golden", policy=True)
def test_function_output_matches_its_golden(expected_function, answers, golden, depends_on):
    depends_on("inference/output-follows-contract")
    # An inaccurate answer is the accuracy check's finding, not also a drift; where accuracy
    # cannot be judged (a real model on the synthetic sample) the golden still runs.
    if expected_function.role != "interactor":
        depends_on("inference/accurate-on-sample", unless_skipped=True)
    answer = answers[expected_function]
    drift = answer.drift_from(golden.recorded(answer))
    expect(not drift, lambda: answer.why_drifted(drift, golden.path(expected_function)))


@check("inference/cvat-keeps-answer")
def test_cvat_keeps_what_the_function_returned(
    detector_function, answers, judged_sample, cvat_scratch, nuclio, depends_on
):
    """One online call through CVAT's lambda API (POST /api/lambda/functions/<id>) on a task
    holding the same image: CVAT answers what its lambda manager's rules make of the function's
    answer (criobe_verify/resources/cvat_lambda.py, from the function's spec and the project's
    labels), and those rules drop nothing the function found."""
    fn, cvat = detector_function, cvat_scratch.session
    depends_on("inference/output-follows-contract", "functions/cvat-lists-detector")
    project = cvat_scratch.criobe_project(fn.role)
    task, _ = cvat_scratch.task_with_one_job(
        project.id, image=judged_sample.stage_bytes(fn.role), name=f"{fn.role}.jpg"
    )
    keeps = online_call_keeps(
        answers[fn].data, nuclio.function(fn).cvat_spec, cvat.labels(project.id), fn.name
    )
    call = cvat.call_online(fn.name, task.id)
    expect(keeps.crash is None, lambda: keeps.why_cvat_fails(call.status))
    expect(call.status == 200, lambda: cvat.why_online_call_failed(call))
    expect(call.data == keeps.items, lambda: cvat.why_online_call_changed(call, keeps.items))
    expect(not keeps.lost, keeps.why_lost)
