"""CVAT 2.29.0's online-call filter as the suite predicts it (criobe_verify/resources/
cvat_lambda.py), rule by rule: on the recorded exchanges of selftests/data/contracts/
cvat-2.29.0-lambda where one shows the rule, else on the source (cvat/apps/lambda_manager/
views.py at e4c12a27, the stored version nearest v2.29.0; LambdaFunction.invoke's
labels_compatible, make_default_mapping, check_attr_value, transform_attributes and the
detector filter after `response = self.gateway.invoke(self, payload)`).

The rule is written twice: once for the suite, once in the CVAT twin's lambda manager
(twin/images/cvat-server/cvat_twin/lambda_manager/function.py), which must not import the
suite, nor the suite it. test_the_twin_and_the_suite_agree runs every case here through both.
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
from typing import Any

import pytest

from criobe_verify.diagnosis import CheckFailed, expect
from criobe_verify.resources.cvat_facts import Label
from criobe_verify.resources.cvat_lambda import OnlineCallKeeps, online_call_keeps, parse_spec
from selftests import PROJECT_ROOT
from selftests.data import CONTRACTS

RECORDINGS = CONTRACTS / "cvat-2.29.0-lambda"
TWIN_CVAT = PROJECT_ROOT / "twin" / "images" / "cvat-server"


def recorded(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def recorded_spec(function: str) -> list[dict]:
    entry = recorded("nuclio_api_functions.json")[function]
    return json.loads(entry["metadata"]["annotations"]["spec"])


RECORDED_PROJECT = recorded("03_labels_list_by_project.json")["response"]["json"]["results"]

# -- building cases: a spec (as in function.yaml), the project's labels (as CVAT answers them) --

_ids = itertools.count(1000)


def attr(name: str, input_type: str, values: tuple[str, ...] = ()) -> dict:
    return {"name": name, "input_type": input_type, "values": list(values)}


def spec_label(name: str, type: str | None = "polygon", attributes=(), sublabels=()) -> dict:
    label: dict[str, Any] = {"name": name, "attributes": list(attributes)}
    if type is not None:
        label["type"] = type
    if type == "skeleton":
        label.update(sublabels=list(sublabels), svg="")
    return label


def project_label(name: str, type: str = "polygon", attributes=(), sublabels=()) -> dict:
    return {
        "id": next(_ids),
        "name": name,
        "type": type,
        "attributes": [dict(a, id=next(_ids)) for a in attributes],
        "sublabels": [dict(s, has_parent=True) for s in sublabels],
    }


def predict(raw: list, spec: list[dict], project: list[dict], fn: str = "fn") -> OnlineCallKeeps:
    labels = tuple(Label.from_answer(m) for m in project)
    return online_call_keeps(copy.deepcopy(raw), parse_spec(json.dumps(spec)), labels, fn)


CONFIDENCE = attr("confidence", "number", ("0", "100", "1"))

# -- recorded ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exchange",
    [
        "11_lambda_call_gridcorners_task_frame0.json",
        "12_lambda_call_gridcorners_job_threshold.json",
        "13_lambda_call_coralsegv4_task_frame0.json",
    ],
)
def test_a_recorded_online_call_answers_what_the_suite_predicts(exchange):
    """Recorded (11-13): items whose label is in the spec but not the project (Dendrophyllia)
    or in neither (Tubastrea) dropped; a spec mask label kept on a project polygon label
    (Porites); number values by str.isnumeric ("87" kept, "0.87" removed); skeleton elements'
    attributes emptied (the project's sublabels declare none); other keys untouched."""
    body = recorded(exchange)
    fn = body["request"]["path"].rstrip("/").rsplit("/", 1)[-1]
    raw = body["function_requests"][0]["answered"]["body"]
    keeps = predict(raw, recorded_spec(fn), RECORDED_PROJECT, fn)
    assert (keeps.status, keeps.items) == (body["response"]["status"], body["response"]["json"])


def test_a_recorded_call_names_what_cvat_dropped_and_why():
    """Recorded (13): Dendrophyllia is in coralsegv4's spec and not the project; Tubastrea in
    neither."""
    body = recorded("13_lambda_call_coralsegv4_task_frame0.json")
    raw = body["function_requests"][0]["answered"]["body"]
    keeps = predict(raw, recorded_spec("pth-yolo-coralsegv4"), RECORDED_PROJECT)
    assert [str(loss) for loss in keeps.lost] == [
        "Dendrophyllia: the function's spec declares it but the project has no such label: "
        "CVAT drops the item",
        "Tubastrea: not in the function's spec nor the project: CVAT drops the item",
    ]


def test_a_number_attribute_sent_as_a_json_number_is_cvats_500():
    """Recorded (61): the function answered confidence as the JSON number 87 and CVAT answered
    Django's HTML 500 page (views.py's check_attr_value calls value.isnumeric()). The check
    fails naming the function, the attribute and the fix, whatever CVAT answered."""
    body = recorded("61_lambda_call_coralsegv4_integer_attribute.json")
    raw = body["function_requests"][0]["answered"]["body"]
    keeps = predict(raw, recorded_spec("pth-yolo-coralsegv4"), RECORDED_PROJECT, "pth-coral")
    assert (keeps.status, keeps.items) == (body["response"]["status"], None) == (500, None)
    with pytest.raises(CheckFailed) as failed:
        expect(keeps.crash is None, lambda: keeps.why_cvat_fails(body["response"]["status"]))
    assert str(failed.value) == (
        "pth-coral: its answer makes CVAT 2.29.0's online call fail (500): Acropora attribute "
        "confidence is the JSON number 87. CVAT calls value.isnumeric() on a number "
        "attribute's value (cvat/apps/lambda_manager/views.py, LambdaFunction.invoke); CVAT "
        "answered 500 — expected attribute values as JSON strings, so every online call and "
        "every auto-annotation request with this function fails, and the bridge's detections "
        'with it. Fix: send confidence as a string (str(value), e.g. {"name": "confidence", '
        '"value": "87"}) in the function\'s main.py'
    )


def test_recorded_attribute_variants_are_kept_as_cvat_stored_them():
    """Recorded (57-60, a batch run, whose worker filters with the same invoke()): "100" and
    "250" kept (isnumeric: the range is not checked), "-5" and "87.0" removed (CVAT stored the
    default "100"), an attribute the spec does not declare ("score") removed."""
    raw = recorded("57_lambda_requests_create_coralsegv4_attribute_variants.json")
    raw = raw["function_requests"][0]["answered"]["body"]
    keeps = predict(raw, recorded_spec("pth-yolo-coralsegv4"), RECORDED_PROJECT)
    stored = recorded("60_jobs_annotations_get_after_coralsegv4_attribute_variants.json")
    default = {a["id"]: a["default_value"] for a in RECORDED_PROJECT[2]["attributes"]}
    assert RECORDED_PROJECT[2]["name"] == "Acropora"
    stored_values = [
        [a["value"] for a in shape["attributes"]] for shape in stored["response"]["json"]["shapes"]
    ]
    predicted = [
        [a["value"] for a in item["attributes"]] or list(default.values())
        for item in keeps.items or []
    ]
    assert predicted == stored_values == [["100"], ["250"], ["100"], ["100"], ["100"], ["100"]]


# -- from the source ---------------------------------------------------------------------------

CASES: dict[str, tuple[list, list[dict], list[dict]]] = {
    # make_default_mapping iterates the spec's labels: a project label the spec lacks is
    # never mapped.
    "label in the project, not in the spec": (
        [{"label": "Acropora", "type": "polygon", "points": [1, 2, 3, 4, 5, 6]},
         {"label": "Porites", "type": "polygon", "points": [1, 2, 3, 4, 5, 6]}],
        [spec_label("Acropora")],
        [project_label("Acropora"), project_label("Porites")],
    ),
    # labels_compatible: same type, `any` on either side but a skeleton, mask/polygon.
    "incompatible and `any` types": (
        [{"label": name, "type": "polygon", "points": [1, 2, 3, 4, 5, 6]}
         for name in ("points", "untyped", "untyped-skeleton", "any-project", "mask")],
        [spec_label("points", "points"), spec_label("untyped", None),
         spec_label("untyped-skeleton", None), spec_label("any-project", "polygon"),
         spec_label("mask", "mask")],
        [project_label("points", "polygon"), project_label("untyped", "polygon"),
         project_label("untyped-skeleton", "skeleton"), project_label("any-project", "any"),
         project_label("mask", "polygon")],
    ),
    # the filter keeps an element only when its label is in the skeletons' sublabel mapping.
    "skeleton element without a sublabel": (
        [{"label": "corner", "type": "skeleton", "elements": [
            {"label": "1", "type": "points", "points": [1, 1], "outside": 0},
            {"label": "5", "type": "points", "points": [2, 2], "outside": 0},
            {"label": "2", "type": "points", "points": [3, 3], "outside": 0}]}],
        [spec_label("corner", "skeleton", sublabels=[
            spec_label("1", "points"), spec_label("2", "points"), spec_label("5", "points")])],
        [project_label("corner", "skeleton", sublabels=[
            project_label("1", "points"), project_label("2", "rectangle")])],
    ),
    # check_attr_value, on the project attribute's type: checkbox "true"/"false"; text
    # anything (a JSON number too); select/radio a substring of the values joined by "\n"
    # (Django's .values() gives them as stored): "ef\nfl" and "low" (in "shallow") pass.
    "checkbox, text, select and radio values": (
        [{"label": "coral", "type": "polygon", "attributes": attrs}
         for attrs in (
            [{"name": "bleached", "value": "true"}, {"name": "note", "value": 7},
             {"name": "zone", "value": "reef"}, {"name": "depth", "value": "shallow"}],
            [{"name": "bleached", "value": "True"}, {"name": "note", "value": "x"},
             {"name": "zone", "value": "lagoon"}, {"name": "depth", "value": "deep"}],
            [{"name": "bleached", "value": 1}, {"name": "zone", "value": "ef\nfl"},
             {"name": "depth", "value": "low"}],
         )],
        [spec_label("coral", attributes=[
            attr("bleached", "checkbox"), attr("note", "text"), attr("zone", "select"),
            attr("depth", "radio")])],
        [project_label("coral", attributes=[
            attr("bleached", "checkbox", ("false",)), attr("note", "text"),
            attr("zone", "select", ("reef", "flat")), attr("depth", "radio", ("shallow",))])],
    ),
    # transform_attributes checks the value against the *project* attribute's type: a spec
    # number attribute on a project text attribute keeps "0.5".
    "the project's attribute type decides": (
        [{"label": "coral", "type": "polygon", "attributes": [
            {"name": "confidence", "value": "0.5"}, {"name": "only-in-spec", "value": "1"}]}],
        [spec_label("coral", attributes=[CONFIDENCE, attr("only-in-spec", "number")])],
        [project_label("coral", attributes=[attr("confidence", "text")])],
    ),
    # value.isnumeric() on a select's or a number's non-string value raises: Django's 500.
    "a select value sent as a JSON number": (
        [{"label": "coral", "type": "polygon", "attributes": [{"name": "zone", "value": 3}]}],
        [spec_label("coral", attributes=[attr("zone", "select")])],
        [project_label("coral", attributes=[attr("zone", "select", ("1", "2", "3"))])],
    ),
    "a number value sent as null": (
        [{"label": "coral", "type": "polygon", "attributes": [
            {"name": "confidence", "value": None}]}],
        [spec_label("coral", attributes=[CONFIDENCE])],
        [project_label("coral", attributes=[CONFIDENCE])],
    ),
    # a non-string value of an attribute that is not mapped is never looked at.
    "an unmapped attribute's JSON number": (
        [{"label": "coral", "type": "polygon", "attributes": [{"name": "score", "value": 3}]}],
        [spec_label("coral", attributes=[CONFIDENCE])],
        [project_label("coral", attributes=[CONFIDENCE, attr("score", "number")])],
    ),
    # mapping[item_label]["sublabels"] exists only between two skeletons: KeyError, a 500.
    "elements on a polygon label": (
        [{"label": "coral", "type": "polygon", "elements": []}],
        [spec_label("coral")],
        [project_label("coral")],
    ),
}  # fmt: skip

EXPECTED: dict[str, tuple[int, list | None, list[str]]] = {
    "label in the project, not in the spec": (
        200,
        [{"label": "Acropora", "type": "polygon", "points": [1, 2, 3, 4, 5, 6], "attributes": []}],
        ["Porites: the project has it but the function's spec does not declare it: "
         "CVAT drops the item"],
    ),
    "incompatible and `any` types": (
        200,
        [{"label": name, "type": "polygon", "points": [1, 2, 3, 4, 5, 6], "attributes": []}
         for name in ("untyped", "any-project", "mask")],
        [f"{name}: its type in the function's spec does not map onto the project label's: "
         "CVAT drops the item" for name in ("points", "untyped-skeleton")],
    ),
    "skeleton element without a sublabel": (
        200,
        [{"label": "corner", "type": "skeleton", "attributes": [], "elements": [
            {"label": "1", "type": "points", "points": [1, 1], "outside": 0,
             "attributes": []}]}],
        ["corner element 5: no sublabel of that name (and a compatible type) in both the "
         "function's spec and the project: CVAT drops the element",
         "corner element 2: no sublabel of that name (and a compatible type) in both the "
         "function's spec and the project: CVAT drops the element"],
    ),
    "checkbox, text, select and radio values": (
        200,
        [{"label": "coral", "type": "polygon", "attributes": attrs} for attrs in (
            [{"name": "bleached", "value": "true"}, {"name": "note", "value": 7},
             {"name": "zone", "value": "reef"}, {"name": "depth", "value": "shallow"}],
            [{"name": "note", "value": "x"}],
            [{"name": "zone", "value": "ef\nfl"}, {"name": "depth", "value": "low"}],
        )],
        [],
    ),
    "the project's attribute type decides": (
        200,
        [{"label": "coral", "type": "polygon", "attributes": [
            {"name": "confidence", "value": "0.5"}]}],
        [],
    ),
    "a select value sent as a JSON number": (500, None, []),
    "a number value sent as null": (500, None, []),
    "an unmapped attribute's JSON number": (
        200, [{"label": "coral", "type": "polygon", "attributes": []}], [],
    ),
    "elements on a polygon label": (500, None, []),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_cvats_rule_from_the_source(case):
    """From the source (views.py e4c12a27, LambdaFunction.invoke): each CASES entry's comment
    names the function of invoke() it follows."""
    keeps = predict(*CASES[case])
    assert (keeps.status, keeps.items, [str(loss) for loss in keeps.lost]) == EXPECTED[case]


def test_a_crash_names_the_attribute_and_the_fix():
    keeps = predict(*CASES["a select value sent as a JSON number"], fn="pth-x")
    message = str(keeps.why_cvat_fails(500))
    assert "pth-x: its answer makes CVAT 2.29.0's online call fail (500): coral attribute " in (
        message
    )
    assert "zone is the JSON number 3" in message and "`value in <the values" in message
    assert 'Fix: send zone as a string (str(value), e.g. {"name": "zone", "value": "3"})' in (
        message
    )


def test_losses_fail_naming_the_spec_fix():
    keeps = predict(*CASES["label in the project, not in the spec"], fn="pth-x")
    message = str(keeps.why_lost())
    assert message.startswith("pth-x: CVAT 2.29.0 drops 1 part(s) of its answer: Porites: ")
    assert "metadata.annotations.spec" in message


# -- the twin follows the same rules -----------------------------------------------------------


def _twin_function():
    if str(TWIN_CVAT) not in sys.path:
        sys.path.insert(0, str(TWIN_CVAT))
    from cvat_twin.lambda_manager import function

    return function


def twin_answer(raw: list, spec: list[dict], project: list[dict]) -> tuple[int, list | None]:
    """The twin's online call filter on the same case: (status, items); any exception out of
    the filter is the view's 500 page (cvat_twin/api/lambda_api.py)."""
    function = _twin_function()
    model = function._parse_labels("fn", spec)
    mapping = function.resolve_mapping(function.default_mapping(model, project), model, project)
    try:
        return 200, function.filter_detections(copy.deepcopy(raw), mapping)
    except Exception:  # Django answers every uncaught exception with its 500 page
        return 500, None


def _recorded_cases() -> dict[str, tuple[list, list[dict], list[dict]]]:
    cases = {}
    for name, fn in (
        ("11_lambda_call_gridcorners_task_frame0.json", "pth-yolo-gridcorners"),
        ("13_lambda_call_coralsegv4_task_frame0.json", "pth-yolo-coralsegv4"),
        ("57_lambda_requests_create_coralsegv4_attribute_variants.json", "pth-yolo-coralsegv4"),
        ("61_lambda_call_coralsegv4_integer_attribute.json", "pth-yolo-coralsegv4"),
    ):
        raw = recorded(name)["function_requests"][0]["answered"]["body"]
        cases[name] = (raw, recorded_spec(fn), RECORDED_PROJECT)
    return cases


@pytest.mark.parametrize("case", list(CASES) + list(_recorded_cases()))
def test_the_twin_and_the_suite_agree(case):
    """Every case above, through the twin's lambda manager and the suite's prediction."""
    raw, spec, project = {**CASES, **_recorded_cases()}[case]
    keeps = predict(raw, spec, project)
    assert twin_answer(raw, spec, project) == (keeps.status, keeps.items)
