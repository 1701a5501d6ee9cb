"""LambdaFunction (cvat/apps/lambda_manager/views.py): a dashboard entry as CVAT reads it, and
one invocation with CVAT's label mapping and filtering.

    function = LambdaFunction(entry)          # entry: one value of GET /api/functions
    function.to_dict()                        # what /api/lambda/functions lists
    function.invoke(target, {"frame": 0})     # target: TaskTarget (labels, frames, job range)

Only metadata.name, metadata.annotations, spec.description and status.httpPort are read;
status.state is not checked (recorded). A label without a type reads "any" (recorded).
"""

import base64
import json
from copy import deepcopy

from . import gateway

KINDS = ("detector", "interactor", "reid", "tracker")
FRAME_PARAMETERS = (("frame", "frame"), ("frame0", "start frame"), ("frame1", "end frame"))
# ShapeType.MASK and POLYGON: a function's mask label maps onto a project's polygon label.
COMPATIBLE_TYPES = ({"mask", "polygon"},)


class InvalidFunctionMetadataError(Exception):
    pass


class LambdaError(Exception):
    """django.core.exceptions.ValidationError(message, code=<HTTP status>): the views answer
    the message as a JSON string with that status (400 when no code)."""

    def __init__(self, message, code=400):
        super().__init__(message)
        self.message = message
        self.code = code


class FrameError(Exception):
    """rest_framework.exceptions.ValidationError from the frame provider: 400 ["<text>"]."""


class TaskTarget:
    """What invoke() needs from the database: the task's (or its project's) labels as
    cvat_twin.api.engine.label_read gives them, its frame count, an optional job's range, and a
    reader of the original bytes of a frame."""

    def __init__(self, task_id, labels, size, read_frame, job=None):
        self.task_id = task_id
        self.labels = labels
        self.size = size
        self.read_frame = read_frame
        self.job = job  # {"id", "start_frame", "stop_frame"} or None


def _parse_attributes(function_id, specs):
    parsed = [
        {"name": a["name"], "input_type": a["input_type"], "values": a["values"]} for a in specs
    ]
    if len(parsed) != len({a["name"] for a in specs}):
        raise InvalidFunctionMetadataError(
            f"{function_id} lambda function has non-unique attributes"
        )
    return parsed


def _parse_labels(function_id, spec):
    labels = []
    for label in spec:
        item = {
            "name": label["name"],
            "type": label.get("type", "any"),
            "attributes": _parse_attributes(function_id, label.get("attributes", [])),
        }
        if item["type"] == "skeleton":
            item["sublabels"] = _parse_labels(function_id, label["sublabels"])
            item["svg"] = label["svg"]
        labels.append(item)
    if len(labels) != len({label["name"] for label in spec}):
        raise InvalidFunctionMetadataError(f"{function_id} lambda function has non-unique labels")
    return labels


class LambdaFunction:
    def __init__(self, data):
        self.id = data["metadata"]["name"]
        meta = data["metadata"]["annotations"]
        self.kind = meta.get("type")
        if self.kind not in KINDS:
            raise InvalidFunctionMetadataError(
                f"{self.id} lambda function has unknown type: {self.kind!r}"
            )
        self.labels = _parse_labels(self.id, json.loads(meta.get("spec") or "[]"))
        # A KeyError here (no spec.description) is not caught by the views: a 500.
        self.description = data["spec"]["description"]
        self.port = data["status"].get("httpPort")
        self.name = meta.get("name", self.id)
        self.min_pos_points = int(meta.get("min_pos_points", 1))
        self.min_neg_points = int(meta.get("min_neg_points", -1))
        self.startswith_box = bool(meta.get("startswith_box", False))
        self.startswith_box_optional = bool(meta.get("startswith_box_optional", False))
        self.animated_gif = meta.get("animated_gif", "")
        self.version = int(meta.get("version", "1"))
        self.help_message = meta.get("help_message", "")

    def to_dict(self):
        response = {
            "id": self.id,
            "kind": self.kind,
            "labels_v2": self.labels,
            "description": self.description,
            "name": self.name,
            "version": self.version,
        }
        if self.kind == "interactor":
            response.update(
                min_pos_points=self.min_pos_points,
                min_neg_points=self.min_neg_points,
                startswith_box=self.startswith_box,
                startswith_box_optional=self.startswith_box_optional,
                help_message=self.help_message,
                animated_gif=self.animated_gif,
            )
        return response

    # -- one invocation ------------------------------------------------------------------------

    def invoke(self, target, data):
        data = {k: v for k, v in data.items() if v is not None}

        def mandatory_arg(name):
            try:
                return data[name]
            except KeyError:
                raise LambdaError(
                    f"`{self.id}` lambda function was called without mandatory argument: {name}"
                ) from None

        payload = {}
        threshold = data.get("threshold")
        if threshold:  # a threshold of 0 is not sent either
            payload["threshold"] = threshold
        mapping = data.get("mapping") or {}
        if not mapping:
            mapping = default_mapping(self.labels, target.labels)
        else:
            validate_mapping(mapping, self.labels, target.labels)
        mapping = resolve_mapping(mapping, self.labels, target.labels)

        if target.job is not None:
            for key, desc in FRAME_PARAMETERS:
                if key in data and not (
                    target.job["start_frame"] <= data[key] <= target.job["stop_frame"]
                ):
                    raise LambdaError(f"The {desc} is outside the job range")

        def image(frame):
            return base64.b64encode(read_original(target, frame)).decode("utf-8")

        if self.kind == "detector":
            payload["image"] = image(mandatory_arg("frame"))
        elif self.kind == "interactor":
            payload.update(
                image=image(mandatory_arg("frame")),
                pos_points=mandatory_arg("pos_points"),
                neg_points=mandatory_arg("neg_points"),
                obj_bbox=data.get("obj_bbox"),
            )
        elif self.kind == "reid":
            payload.update(
                image0=image(mandatory_arg("frame0")),
                image1=image(mandatory_arg("frame1")),
                boxes0=mandatory_arg("boxes0"),
                boxes1=mandatory_arg("boxes1"),
            )
            if data.get("max_distance"):
                payload["max_distance"] = data["max_distance"]
        else:  # tracker
            payload.update(
                image=image(mandatory_arg("frame")),
                shapes=data.get("shapes", []),
                states=data.get("states", []),
            )

        response = gateway.invoke(self, payload)
        if self.kind == "detector":
            response = filter_detections(response, mapping)
        return response


def read_original(target, frame):
    """TaskFrameProvider.get_frame(frame) at its default (original) quality: the bytes as
    uploaded, not a re-encoded chunk frame."""
    if not (isinstance(frame, int) and 0 <= frame < target.size):
        raise FrameError(
            f"Invalid frame '{frame}'. The frame number should be in the "
            f"[0, {target.size - 1}] range"
        )
    return target.read_frame(frame)


# -- label mapping ----------------------------------------------------------------------------


def labels_compatible(model_label, db_label):
    model_type, db_type = model_label["type"], db_label["type"]
    return (
        model_type == db_type
        or (db_type == "any" and model_type != "skeleton")
        or (model_type == "any" and db_type != "skeleton")
        or any(model_type in c and db_type in c for c in COMPATIBLE_TYPES)
    )


def default_mapping(model_labels, db_labels):
    """Same name and a compatible type; attributes whose name both declare."""
    mapping = {}
    for model_label in model_labels:
        for db_label in db_labels:
            if db_label["name"] != model_label["name"] or not labels_compatible(
                model_label, db_label
            ):
                continue
            attributes = {}
            for model_attr in model_label.get("attributes", []):
                for db_attr in db_label["attributes"]:
                    if db_attr["name"] == model_attr["name"]:
                        attributes[model_attr["name"]] = db_attr["name"]
            mapping[model_label["name"]] = {"name": db_label["name"], "attributes": attributes}
            if model_label["type"] == "skeleton" and db_label["type"] == "skeleton":
                mapping[model_label["name"]]["sublabels"] = default_mapping(
                    model_label["sublabels"], db_label["sublabels"]
                )
    return mapping


def validate_mapping(mapping, model_labels, db_labels):
    for model_name, item in mapping.items():
        md_label = next((x for x in model_labels if x["name"] == model_name), None)
        if md_label is None:
            raise LambdaError(f'Invalid mapping. Unknown model label "{model_name}"')
        db_label = next((x for x in db_labels if x["name"] == item["name"]), None)
        if db_label is None:
            raise LambdaError(f'Invalid mapping. Unknown db label "{item["name"]}"')
        if not labels_compatible(md_label, db_label):
            raise LambdaError(
                f'Invalid mapping. Model label "{model_name}" and'
                f' database label "{item["name"]}" are not compatible'
            )
        model_attrs = [a["name"] for a in md_label["attributes"]]
        db_attrs = [a["name"] for a in db_label["attributes"]]
        for model_attr, db_attr in item.get("attributes", {}).items():
            if model_attr not in model_attrs:
                raise LambdaError(f'Invalid mapping. Unknown model attribute "{model_attr}"')
            if db_attr not in db_attrs:
                raise LambdaError(f'Invalid mapping. Unknown db attribute "{db_attr}"')
        if md_label["type"] == "skeleton" and db_label["type"] == "skeleton":
            if "sublabels" not in item:
                raise LambdaError(
                    f'Mapping for elements was not specified in skeleton "{model_name}" '
                )
            validate_mapping(item["sublabels"], md_label["sublabels"], db_label["sublabels"])


def resolve_mapping(mapping, model_labels, db_labels):
    resolved = deepcopy(mapping)
    for model_name, item in resolved.items():
        md_label = next(x for x in model_labels if x["name"] == model_name)
        db_label = next(x for x in db_labels if x["name"] == item["name"])
        item.setdefault("attributes", {})
        item["md_label"] = md_label
        item["db_label"] = db_label
        if md_label["type"] == "skeleton" and db_label["type"] == "skeleton":
            item["sublabels"] = resolve_mapping(
                item["sublabels"], md_label["sublabels"], db_label["sublabels"]
            )
    return resolved


# -- the function's answer --------------------------------------------------------------------


def check_attr_value(value, db_attr):
    # Called on the value as the function sent it: a JSON number has no isnumeric() and the
    # AttributeError escapes (recorded: an online call answers Django's 500 page).
    kind = db_attr["input_type"]
    if kind == "number":
        return value.isnumeric()
    if kind == "checkbox":
        return value in ["true", "false"]
    if kind == "text":
        return True
    if kind in ("select", "radio"):
        # attributespec_set.values() gives `values` as CVAT stores it, one string joined by
        # newlines, so this is a substring test there.
        return value in "\n".join(db_attr["values"])
    return False


def transform_attributes(input_attributes, attr_mapping, db_attributes):
    attributes = []
    for attr in input_attributes:
        if attr["name"] not in attr_mapping:
            continue
        db_name = attr_mapping[attr["name"]]
        db_attr = next((a for a in db_attributes if a["name"] == db_name), None)
        if db_attr is not None and check_attr_value(attr["value"], db_attr):
            attributes.append({"name": db_attr["name"], "value": attr["value"]})
    return attributes


def filter_detections(response, mapping):
    """Drop items of unmapped labels and unmapped skeleton elements, rename labels, keep only
    valid mapped attributes; every other key passes through (a mask stays a mask here)."""
    kept = []
    for item in response:
        if item["label"] not in mapping:
            continue
        entry = mapping[item["label"]]
        item["label"] = entry["db_label"]["name"]
        item["attributes"] = transform_attributes(
            item.get("attributes", {}), entry["attributes"], entry["db_label"]["attributes"]
        )
        if "elements" in item:
            sublabels = entry["sublabels"]
            item["elements"] = [x for x in item["elements"] if x["label"] in sublabels]
            for element in item["elements"]:
                sub = sublabels[element["label"]]
                element["label"] = sub["db_label"]["name"]
                element["attributes"] = transform_attributes(
                    element.get("attributes", {}), sub["attributes"], sub["db_label"]["attributes"]
                )
        kept.append(item)
    return kept
