"""What CVAT 2.29.0's online call (POST /api/lambda/functions/<id>) answers for a detector's raw
answer, computed as its lambda manager computes it (cvat/apps/lambda_manager/views.py,
LambdaFunction.invoke): a default mapping from the function's spec labels onto the project's,
then a filter of the function's list.

    keeps = online_call_keeps(raw, parse_spec(annotations["spec"]), cvat.labels(project_id))
    keeps.status          # 200, or 500 where CVAT's filter raises on the answer
    keeps.items           # the list CVAT answers with (None on a 500)
    keeps.lost            # what the function answered that CVAT drops, and why

The rules, each proven by selftests/test_cvat_lambda_rules.py on a recorded exchange where one
shows it (selftests/data/contracts/cvat-2.29.0-lambda), else on the source:
- an item is kept only when its label is in the function's spec *and* the project has a label of
  that name with a compatible type (same type; `any` on either side but a skeleton; mask and
  polygon); its `label` is the project's;
- `attributes` keeps an entry only when both the spec label and the project label declare its
  name and the value passes the *project* attribute's type: number `str.isnumeric()`, checkbox
  "true"/"false", text anything, select/radio a substring of the values joined by newlines
  (Django's `.values()` gives them as stored, one string); an item without `attributes` gets [];
- a skeleton's elements are kept only when the spec and the project both have that sublabel
  (compatible types), their attributes filtered the same way against the sublabel's;
- every other key passes as the function sent it (a `mask` is not converted here);
- CVAT's filter calls `value.isnumeric()` (number) and `value in <str>` (select/radio) on the
  value as the function sent it: a JSON number, null or list there raises, and the view answers
  Django's HTML 500 page (recorded for a number attribute); so do a mapped attribute without
  `value`, an item without `label`, and `elements` on a label that is not a skeleton on both
  sides.

The source read is views.py at e4c12a27, the stored version nearest v2.29.0 (v2.29.0's own
commit, 0567afa, is not stored); where they differ the recordings win: a spec label without a
type reads "any" (the listing shows it), not "unknown".

    >>> spec = parse_spec('[{"name": "coral", "type": "polygon", "attributes": '
    ...     '[{"name": "confidence", "input_type": "number", "values": ["0", "100", "1"]}]}]')
    >>> label = Label(1, "coral", "polygon", attributes=(Attribute(2, "confidence", "number"),))
    >>> keeps = online_call_keeps([{"label": "coral", "attributes": [{"name": "confidence",
    ...     "value": "0.8"}]}, {"label": "sand"}], spec, (label,))
    >>> keeps.items
    [{'label': 'coral', 'attributes': []}]
    >>> [str(loss) for loss in keeps.lost]
    ["sand: not in the function's spec nor the project: CVAT drops the item"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.resources.cvat_facts import Attribute, Label

SERVER = "cvat_server"
# cvat.apps.engine.models.ShapeType.MASK and POLYGON: a function's mask label maps onto a
# project's polygon label (recorded: Porites, a mask in the spec, kept in a polygon project).
COMPATIBLE_TYPES = ({"mask", "polygon"},)
CHECKBOX_VALUES = ("true", "false")


@dataclass(frozen=True)
class SpecAttribute:
    name: str
    input_type: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpecLabel:
    """One label of a function's spec (metadata.annotations.spec), as CVAT parses it."""

    name: str
    type: str = "any"
    attributes: tuple[SpecAttribute, ...] = ()
    sublabels: tuple[SpecLabel, ...] = ()


def parse_spec(spec: str | None) -> tuple[SpecLabel, ...]:
    """metadata.annotations.spec (a JSON string) as CVAT parses it: `type` "any" when absent,
    sublabels read only for a skeleton. An empty or absent spec is no labels.

    >>> parse_spec('[{"name": "a"}, {"name": "s", "type": "skeleton", "sublabels": '
    ...     '[{"name": "1", "type": "points"}], "svg": ""}]')[1].sublabels
    (SpecLabel(name='1', type='points', attributes=(), sublabels=()),)
    """
    return _parse(json.loads(spec or "[]"))


def _parse(items: list[dict[str, Any]]) -> tuple[SpecLabel, ...]:
    return tuple(
        SpecLabel(
            item["name"],
            item.get("type", "any"),
            tuple(
                SpecAttribute(a["name"], a.get("input_type", ""), tuple(a.get("values") or ()))
                for a in item.get("attributes") or []
            ),
            _parse(item.get("sublabels") or []) if item.get("type") == "skeleton" else (),
        )
        for item in items
    )


def labels_compatible(model_type: str, db_type: str) -> bool:
    """LambdaFunction.invoke's labels_compatible: a spec label's type against a project's."""
    return (
        model_type == db_type
        or (db_type == "any" and model_type != "skeleton")
        or (model_type == "any" and db_type != "skeleton")
        or any(model_type in c and db_type in c for c in COMPATIBLE_TYPES)
    )


@dataclass(frozen=True)
class Mapped:
    """One spec label mapped onto a project label: the attributes both declare (by name, the
    project's spec of each), and for two skeletons their sublabels' mapping."""

    label: Label
    attributes: Mapping[str, Attribute]
    sublabels: Mapping[str, Mapped] | None = None


def default_mapping(spec: tuple[SpecLabel, ...], labels: tuple[Label, ...]) -> dict[str, Mapped]:
    """make_default_mapping: same name and a compatible type; attributes whose name both
    declare; sublabels mapped the same way when both are skeletons."""
    mapping = {}
    for model in spec:
        for db in labels:
            if db.name != model.name or not labels_compatible(model.type, db.type):
                continue
            declared = {a.name: a for a in db.attributes}
            mapping[model.name] = Mapped(
                db,
                {a.name: declared[a.name] for a in model.attributes if a.name in declared},
                default_mapping(model.sublabels, db.sublabels)
                if model.type == "skeleton" and db.type == "skeleton"
                else None,
            )
    return mapping


@dataclass(frozen=True)
class Lost:
    """Something the function answered that CVAT's filter drops."""

    where: str  # "Acropora", "quadrat_corner element 5"
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


@dataclass(frozen=True)
class Crash:
    """Where CVAT's filter raises on the answer: the view answers Django's HTML 500 page."""

    where: str  # "Acropora attribute confidence"
    observed: str  # "the JSON number 87"
    why: str  # "CVAT calls value.isnumeric() on a number attribute's value"
    fix: str


class _Raises(Exception):
    def __init__(self, crash: Crash) -> None:
        super().__init__(str(crash))
        self.crash = crash


@dataclass(frozen=True)
class OnlineCallKeeps:
    """What CVAT 2.29.0 answers to an online call, predicted from the function's raw answer."""

    function: str
    items: list | None
    crash: Crash | None = None
    lost: tuple[Lost, ...] = field(default=())

    @property
    def status(self) -> int:
        return 500 if self.crash else 200

    def why_cvat_fails(self, observed_status: int) -> Diagnosis:
        crash = self.crash
        if crash is None:
            raise ValueError("why_cvat_fails() without a predicted crash")
        return Diagnosis(
            self.function,
            f"its answer makes CVAT 2.29.0's online call fail (500): {crash.where} is "
            f"{crash.observed}",
            why=f"{crash.why} (cvat/apps/lambda_manager/views.py, LambdaFunction.invoke); "
            f"CVAT answered {observed_status}",
            expected="attribute values as JSON strings",
            consequence="every online call and every auto-annotation request with this "
            "function fails, and the bridge's detections with it",
            fix=crash.fix,
        )

    def why_lost(self) -> Diagnosis:
        return Diagnosis(
            self.function,
            f"CVAT 2.29.0 drops {len(self.lost)} part(s) of its answer",
            observed="; ".join(str(loss) for loss in self.lost[:6])
            + ("; …" if len(self.lost) > 6 else ""),
            expected="every label it answers in both its function.yaml spec and the "
            "project, with compatible types, and every skeleton element a sublabel of both",
            consequence="the model's predictions never reach CVAT's annotations",
            fix="declare the labels (and a skeleton's sublabels) in metadata.annotations.spec "
            "of its function.yaml as the project has them, then redeploy it",
        )


def online_call_keeps(
    raw: list, spec: tuple[SpecLabel, ...], labels: tuple[Label, ...], function: str = ""
) -> OnlineCallKeeps:
    """CVAT 2.29.0's answer to an online call of a detector that answered `raw`, for a function
    whose spec is `spec` on a task of a project with `labels` (top-level, sublabels inside)."""
    mapping = default_mapping(spec, labels)
    in_spec = {s.name for s in spec}
    in_project = {label.name for label in labels}
    lost: list[Lost] = []
    try:
        items = [
            _keep_item(item, mapping, in_spec, in_project, lost)
            for item in raw
            if _mapped(item, mapping, in_spec, in_project, lost)
        ]
    except _Raises as raised:
        return OnlineCallKeeps(function, None, raised.crash, tuple(lost))
    return OnlineCallKeeps(function, items, None, tuple(lost))


def _mapped(
    item: Any,
    mapping: Mapping[str, Mapped],
    in_spec: set[str],
    in_project: set[str],
    lost: list[Lost],
) -> bool:
    if not isinstance(item, dict) or "label" not in item:
        raise _Raises(
            Crash(
                "an item of its answer",
                f"{json.dumps(item)[:80]}, without a label",
                "CVAT reads item['label'] of every item",
                "answer a list of objects, each with a label",
            )
        )
    name = item["label"]
    if name in mapping:
        return True
    if name in in_spec and name in in_project:
        why = "its type in the function's spec does not map onto the project label's"
    elif name in in_project:
        why = "the project has it but the function's spec does not declare it"
    elif name in in_spec:
        why = "the function's spec declares it but the project has no such label"
    else:
        why = "not in the function's spec nor the project"
    lost.append(Lost(str(name), f"{why}: CVAT drops the item"))
    return False


def _keep_item(
    item: dict,
    mapping: Mapping[str, Mapped],
    in_spec: set[str],
    in_project: set[str],
    lost: list[Lost],
) -> dict:
    entry = mapping[item["label"]]
    out = dict(item, label=entry.label.name)
    out["attributes"] = _attributes(item, entry, item["label"])
    if "elements" in item:
        if entry.sublabels is None:
            raise _Raises(
                Crash(
                    f"{item['label']} (type {item.get('type')!r})",
                    "an item with elements",
                    "CVAT maps elements only between two skeleton labels, and raises "
                    "(KeyError 'sublabels') on elements of any other",
                    "send elements only on skeleton labels, and declare the label a skeleton "
                    "in metadata.annotations.spec",
                )
            )
        elements = []
        for element in item["elements"]:
            if not isinstance(element, dict) or "label" not in element:
                raise _Raises(
                    Crash(
                        f"an element of {item['label']}",
                        "an element without a label",
                        "CVAT reads element['label'] of every element",
                        "give every skeleton element its sublabel's name",
                    )
                )
            sub = entry.sublabels.get(element["label"])
            if sub is None:
                lost.append(
                    Lost(
                        f"{item['label']} element {element['label']}",
                        "no sublabel of that name (and a compatible type) in both the "
                        "function's spec and the project: CVAT drops the element",
                    )
                )
                continue
            elements.append(
                dict(
                    element,
                    label=sub.label.name,
                    attributes=_attributes(
                        element, sub, f"{item['label']} element {element['label']}"
                    ),
                )
            )
        out["elements"] = elements
    return out


def _attributes(item: dict, entry: Mapped, where: str) -> list[dict[str, Any]]:
    """transform_attributes: mapped names only, values checked against the project's type."""
    kept = []
    for attr in item.get("attributes") or []:
        if not isinstance(attr, dict) or "name" not in attr:
            raise _Raises(
                Crash(
                    f"an attribute of {where}",
                    f"{json.dumps(attr)[:80]}, without a name",
                    "CVAT reads attr['name'] of every attribute of a kept item",
                    "send each attribute as {'name': ..., 'value': '<string>'}",
                )
            )
        if attr["name"] not in entry.attributes:
            continue
        db = entry.attributes[attr["name"]]
        if "value" not in attr:
            raise _Raises(
                Crash(
                    f"{where} attribute {attr['name']}",
                    "an attribute without a value",
                    "CVAT reads attr['value'] of every mapped attribute",
                    f"send {attr['name']} as {{'name': ..., 'value': '<string>'}}",
                )
            )
        if _value_passes(attr["value"], db, f"{where} attribute {attr['name']}"):
            kept.append({"name": db.name, "value": attr["value"]})
    return kept


def _value_passes(value: Any, db: Attribute, where: str) -> bool:
    """check_attr_value, on the value as the function sent it."""
    if db.input_type in ("number", "select", "radio") and not isinstance(value, str):
        raise _Raises(
            Crash(
                where,
                f"the JSON {_json_kind(value)} {json.dumps(value)}",
                "CVAT calls value.isnumeric() on a number attribute's value"
                if db.input_type == "number"
                else f"CVAT tests `value in <the values as one string>` on a {db.input_type} "
                "attribute's value",
                f"send {db.name} as a string (str(value), e.g. "
                f'{{"name": "{db.name}", "value": "{value}"}}) in the function\'s main.py',
            )
        )
    if db.input_type == "number":
        return value.isnumeric()
    if db.input_type == "checkbox":
        return value in CHECKBOX_VALUES
    if db.input_type == "text":
        return True
    if db.input_type in ("select", "radio"):
        return value in "\n".join(db.values)
    return False


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"
