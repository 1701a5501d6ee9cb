"""Reachability layer: the calls the pipeline makes between containers, made from inside
those containers. From the bridge: the Nuclio dashboard (NUCLIO_HOST/NUCLIO_PORT where set)
and every function's trigger at nuclio-nuclio-<fn>:8080 (the bridge's path); from cvat_server
(online calls) and cvat_worker_annotation (batch requests): every function at
host.docker.internal:<httpPort>, the path CVAT's lambda manager takes.

    pytest -m reachability

Any HTTP answer counts: a handler that needs a body may answer an empty request with 500,
which is the inference layer's business; only "no answer" fails here.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = pytest.mark.reachability


@check("reachability/bridge-reaches-dashboard", guide="step-7")
def test_bridge_reaches_the_nuclio_dashboard(bridge_to_dashboard):
    answer = bridge_to_dashboard.answer
    expect(answer.status == 200, lambda: bridge_to_dashboard.why_no_dashboard(answer))


@check("reachability/bridge-reaches-function", guide="step-7")
def test_bridge_reaches_the_function(bridge_to_function):
    bridge_to_function.require_deployed()
    answer = bridge_to_function.answer
    expect(answer.ok, lambda: bridge_to_function.why_no_answer(answer))


@check("reachability/cvat-reaches-function", guide="step-6")
def test_cvat_reaches_the_function_as_its_lambda_manager_does(cvat_to_function_call):
    call = cvat_to_function_call
    call.require_deployed()
    expect(call.answer.ok, lambda: call.why_no_answer(call.answer))
