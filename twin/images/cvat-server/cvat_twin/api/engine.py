"""/api/projects, /api/labels, /api/tasks (+ data, annotations), /api/requests, /api/jobs
(cvat/apps/engine/views.py), persisted in cvat_db. Events go to cvat_twin.api.events."""

import email.parser
import email.policy
import hashlib
import json
import re
import struct
import threading
import time
from urllib.parse import parse_qs

from .. import db
from ..routing import route
from . import events
from .common import (
    ApiError,
    base_url,
    check_owner,
    in_context,
    is_admin,
    iso,
    json_body,
    load_user,
    now,
    org_context,
    paginate,
    require_privilege,
    require_user,
    respond,
    user_brief,
)

LABEL_TYPES = {"any", "cuboid", "ellipse", "mask", "points", "polygon", "polyline", "rectangle",
               "skeleton", "tag"}  # fmt: skip
SHAPE_TYPES = {"rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask",
               "skeleton"}  # fmt: skip
CHUNK_SIZE = 72


def _not_found():
    return ApiError(404, {"detail": "Not found."})


def _color(seed):
    return "#" + hashlib.sha1(seed.encode()).hexdigest()[:6]


# --- projects ------------------------------------------------------------------------------


def get_project(cur, project_id):
    cur.execute("SELECT * FROM twin_project WHERE id = %s", (project_id,))
    project = cur.fetchone()
    if project is None:
        raise _not_found()
    return project


def project_read(cur, base, project):
    cur.execute("SELECT count(*) AS n FROM twin_task WHERE project_id = %s", (project["id"],))
    count = cur.fetchone()["n"]
    cur.execute(
        "SELECT DISTINCT subset FROM twin_task WHERE project_id = %s AND subset <> ''"
        " ORDER BY subset",
        (project["id"],),
    )
    subsets = [r["subset"] for r in cur.fetchall()]
    cur.execute(
        "SELECT 1 FROM twin_task WHERE project_id = %s AND data_id IS NOT NULL LIMIT 1",
        (project["id"],),
    )
    dimension = "2d" if cur.fetchone() else None
    pid = project["id"]
    return {
        "url": f"{base}/api/projects/{pid}",
        "id": pid,
        "name": project["name"],
        "owner": user_brief(base, load_user(cur, project["owner_id"])),
        "assignee": user_brief(base, load_user(cur, project["assignee_id"])),
        "guide_id": None,
        "bug_tracker": project["bug_tracker"],
        "created_date": iso(project["created_date"]),
        "updated_date": iso(project["updated_date"]),
        "status": project["status"],
        "dimension": dimension,
        "organization": project.get("organization_id"),
        "target_storage": None,
        "source_storage": None,
        "tasks": {"count": count, "url": f"{base}/api/tasks?project_id={pid}"},
        "labels": {"url": f"{base}/api/labels?project_id={pid}"},
        "assignee_updated_date": None,
        "task_subsets": subsets,
    }


def _validate_labels(labels):
    if not isinstance(labels, list):
        raise ApiError(400, {"labels": ['Expected a list of items but got type "dict".']})
    names = set()
    for label in labels:
        if not isinstance(label, dict) or not label.get("name"):
            raise ApiError(400, {"labels": [{"name": ["This field is required."]}]})
        if label["name"] in names:
            raise ApiError(400, {"labels": [f"Label '{label['name']}' already exists"]})
        names.add(label["name"])
        if label.get("type", "any") not in LABEL_TYPES:
            raise ApiError(
                400, {"labels": [{"type": [f'"{label["type"]}" is not a valid choice.']}]}
            )


def _create_label(cur, spec, project_id=None, task_id=None, parent_id=None):
    cur.execute(
        "INSERT INTO twin_label (project_id, task_id, parent_id, name, color, type)"
        " VALUES (%s,%s,%s,%s,%s,%s) RETURNING id",
        (project_id, task_id, parent_id, spec["name"],
         spec.get("color") or _color(f"{spec['name']}/{parent_id}/{time.time()}"),
         spec.get("type", "any")),
    )  # fmt: skip
    label_id = cur.fetchone()["id"]
    for attr in spec.get("attributes") or []:
        cur.execute(
            'INSERT INTO twin_attribute (label_id, name, mutable, input_type, default_value, "values")'
            " VALUES (%s,%s,%s,%s,%s,%s)",
            (label_id, attr["name"], bool(attr.get("mutable", False)),
             attr.get("input_type", "text"), attr.get("default_value", ""),
             db.Json(attr.get("values") or [])),
        )  # fmt: skip
    sub_ids = {}
    for sub in spec.get("sublabels") or []:
        sub_ids[sub["name"]] = _create_label(cur, sub, project_id, task_id, label_id)
    svg = spec.get("svg")
    if spec.get("type") == "skeleton" and svg is not None:
        # cvat/apps/engine/serializers.py: data-label-name="<sublabel>" -> data-label-id="<id>"
        for name, sub_id in sub_ids.items():
            svg = svg.replace(f'data-label-name="{name}"', f'data-label-id="{sub_id}"')
        cur.execute("UPDATE twin_label SET svg = %s WHERE id = %s", (svg, label_id))
    return label_id


def _attributes(cur, label_id):
    cur.execute("SELECT * FROM twin_attribute WHERE label_id = %s ORDER BY id", (label_id,))
    return [
        {"id": a["id"], "name": a["name"], "mutable": a["mutable"], "input_type": a["input_type"],
         "default_value": a["default_value"], "values": a["values"]}
        for a in cur.fetchall()
    ]  # fmt: skip


def label_read(cur, label):
    cur.execute("SELECT * FROM twin_label WHERE parent_id = %s ORDER BY id", (label["id"],))
    subs = cur.fetchall()
    data = {
        "id": label["id"],
        "name": label["name"],
        "color": label["color"],
        "attributes": _attributes(cur, label["id"]),
        "type": label["type"],
        "sublabels": [
            {
                "id": s["id"],
                "name": s["name"],
                "color": s["color"],
                "attributes": _attributes(cur, s["id"]),
                "type": s["type"],
                "has_parent": True,
            }
            for s in subs
        ],
    }
    if label["project_id"] is not None:
        data["project_id"] = label["project_id"]
    else:
        data["task_id"] = label["task_id"]
    data["parent_id"] = label["parent_id"]
    data["has_parent"] = label["parent_id"] is not None
    if label["type"] == "skeleton":
        data["svg"] = label["svg"] or ""
    return data


def _label_owner_filter(cur, project_id=None, task_id=None):
    if task_id is not None:
        cur.execute("SELECT project_id FROM twin_task WHERE id = %s", (task_id,))
        row = cur.fetchone()
        if row is None:
            return None
        if row["project_id"] is not None:
            return ("project_id", row["project_id"])
        return ("task_id", task_id)
    return ("project_id", project_id)


def labels_of(cur, project_id=None, task_id=None):
    owner = _label_owner_filter(cur, project_id, task_id)
    if owner is None:
        return []
    cur.execute(
        f"SELECT * FROM twin_label WHERE {owner[0]} = %s AND parent_id IS NULL ORDER BY id",
        (owner[1],),
    )
    return cur.fetchall()


# --- label updates (LabelSerializer.update_labels / update_label) ---------------------------

# models.Label.save()/create() turn the unique-name IntegrityError into InvalidLabel, which the
# serializer answers as a bare ValidationError list.
NAMES_UNIQUE = "All label names must be unique"
SUBLABEL_PATCH = ("Sublabels cannot be modified this way. "
                  "Please send a PATCH request with updated parent label data instead.")  # fmt: skip
SUBLABEL_DELETE = ("Sublabels cannot be deleted this way. "
                   "Please send a PATCH request with updated parent label data instead.")  # fmt: skip
LOCAL_DELETE = ("Labels cannot be deleted by updating in this endpoint. "
                "Please use the DELETE method instead.")  # fmt: skip


def _label_item_errors(spec: object, *, local: bool = False) -> dict:
    """The field errors LabelSerializer gives one item before anything is written (the parent
    serializer is partial, so a missing name is no error: update_label keeps the old one)."""
    if not isinstance(spec, dict):
        return {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(spec).__name__}."]}  # fmt: skip
    if "type" in spec and spec["type"] not in LABEL_TYPES:
        return {"type": [f'"{spec["type"]}" is not a valid choice.']}
    if "attributes" in spec and not isinstance(spec["attributes"], list):
        return {"attributes": [f'Expected a list of items but got type "{type(spec["attributes"]).__name__}".']}  # fmt: skip
    if local and spec.get("deleted"):
        return {"non_field_errors": [LOCAL_DELETE]}
    if spec.get("deleted") and spec.get("id") is None:
        return {"non_field_errors": ["Deleted label must have an ID"]}
    if spec.get("id") is None and not spec.get("name"):
        # a new label needs a name: the twin has no NOT NULL violation to report it through
        return {"name": ["This field is required."]}
    return {}


def _validate_label_updates(specs: object) -> None:
    """ListSerializer errors: one entry per item, {} for the valid ones, under "labels"."""
    if not isinstance(specs, list):
        raise ApiError(400, {"labels": [f'Expected a list of items but got type "{type(specs).__name__}".']})  # fmt: skip
    errors = [_label_item_errors(spec) for spec in specs]
    if any(errors):
        raise ApiError(400, {"labels": errors})


def _check_name_free(
    cur, name: str, owner: tuple[str, int], parent_id: int | None, label_id: int | None = None
) -> None:
    """CVAT's unique constraints: a name once per project (or task) among the top-level
    labels, once per skeleton among its sublabels."""
    cur.execute(
        f"SELECT 1 FROM twin_label WHERE {owner[0]} = %s AND name = %s"
        " AND parent_id IS NOT DISTINCT FROM %s AND id IS DISTINCT FROM %s",
        (owner[1], name, parent_id, label_id),
    )
    if cur.fetchone():
        raise ApiError(400, [NAMES_UNIQUE])


def _update_attributes(cur, label_id: int, attributes: list[dict]) -> None:
    """By id (404 when not the label's), else get_or_create by name; an existing one takes the
    fields given. Attributes left out stay: CVAT removes none on update."""
    for attr in attributes:
        if attr.get("id") is not None:
            cur.execute("SELECT * FROM twin_attribute WHERE id = %s AND label_id = %s",
                        (attr["id"], label_id))  # fmt: skip
            row = cur.fetchone()
            if row is None:
                raise ApiError(404, {"detail": f"Attribute with id #{attr['id']} does not exist"})
        else:
            cur.execute("SELECT * FROM twin_attribute WHERE label_id = %s AND name = %s"
                        " ORDER BY id LIMIT 1", (label_id, attr.get("name")))  # fmt: skip
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    'INSERT INTO twin_attribute (label_id, name, mutable, input_type,'
                    ' default_value, "values") VALUES (%s,%s,%s,%s,%s,%s)',
                    (label_id, attr["name"], bool(attr.get("mutable", False)),
                     attr.get("input_type", "text"), attr.get("default_value", ""),
                     db.Json(attr.get("values") or [])),
                )  # fmt: skip
                continue
        cur.execute(
            'UPDATE twin_attribute SET name = %s, mutable = %s, input_type = %s,'
            ' default_value = %s, "values" = %s WHERE id = %s',
            (attr.get("name", row["name"]), bool(attr.get("mutable", row["mutable"])),
             attr.get("input_type", row["input_type"]),
             attr.get("default_value", row["default_value"]),
             db.Json(attr.get("values", row["values"])), row["id"]),
        )  # fmt: skip


def _update_label(cur, spec: dict, owner: tuple[str, int], parent_id: int | None = None) -> None:
    """LabelSerializer.update_label: an item with an id edits that label of the project (or
    task), one without is created, `deleted: true` removes it. Errors roll the whole write
    back (the caller's transaction), as CVAT's transaction.atomic does."""
    attributes = spec.get("attributes") or []
    names = [a.get("name") for a in attributes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ApiError(400, [f"Duplicate attribute with name '{name}' exists"])
    if spec.get("id") is None:
        _check_name_free(cur, spec["name"], owner, parent_id)
        subs = [s.get("name") for s in spec.get("sublabels") or []]
        if len(subs) != len(set(subs)):
            raise ApiError(400, [NAMES_UNIQUE])
        _create_label(cur, spec, **{owner[0]: owner[1]}, parent_id=parent_id)
        return
    # Label.objects.get(id=..., project=...): any label of the owner, sublabels included
    cur.execute(f"SELECT * FROM twin_label WHERE id = %s AND {owner[0]} = %s",
                (spec["id"], owner[1]))  # fmt: skip
    label = cur.fetchone()
    if label is None:
        raise ApiError(404, {"detail": f"Not found label with id #{spec['id']} to change"})
    if spec.get("deleted"):
        cur.execute("DELETE FROM twin_label WHERE id = %s", (label["id"],))
        return
    # CVAT never turns a label into a skeleton or back (it logs a warning and keeps the type);
    # sublabels and svg of an existing label are not touched either.
    new_type = spec.get("type") or label["type"]
    if "skeleton" in (label["type"], new_type):
        new_type = label["type"]
    name = spec.get("name") or label["name"]
    if name != label["name"]:
        _check_name_free(cur, name, owner, label["parent_id"], label["id"])
    # CVAT recomputes a color left out from the name (get_label_color, deterministic for one
    # name): the twin keeps it while the name stays and draws a new one for a new name.
    color = spec.get("color") or (
        label["color"] if name == label["name"] else _color(f"{name}/{label['parent_id']}/{time.time()}")
    )  # fmt: skip
    cur.execute("UPDATE twin_label SET name = %s, type = %s, color = %s WHERE id = %s",
                (name, new_type, color, label["id"]))  # fmt: skip
    _update_attributes(cur, label["id"], attributes)


def _update_labels(cur, specs: list[dict], owner: tuple[str, int]) -> None:
    for spec in specs:
        _update_label(cur, spec, owner)


@route(r"^/api/projects/?$", methods=("GET", "POST"), allow="GET, POST, HEAD, OPTIONS")
def projects(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        org = org_context(cur, request)
        if request.method == "GET":
            if is_admin(user):
                cur.execute("SELECT * FROM twin_project ORDER BY id DESC")
            else:
                cur.execute(
                    "SELECT * FROM twin_project WHERE owner_id = %s OR assignee_id = %s"
                    " ORDER BY id DESC",
                    (user["id"], user["id"]),
                )
            items = [project_read(cur, base, p) for p in in_context(cur.fetchall(), org)]
            return respond(paginate(request, items))
        require_privilege(user)  # CVAT checks permissions before validating
        data = json_body(request)
        if not data.get("name"):
            raise ApiError(400, {"name": ["This field is required."]})
        labels = data.get("labels") or []
        _validate_labels(labels)
        stamp = now()
        cur.execute(
            "INSERT INTO twin_project (name, owner_id, assignee_id, bug_tracker, created_date,"
            " updated_date, organization_id) VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING *",
            (data["name"], data.get("owner_id") or user["id"], data.get("assignee_id"),
             data.get("bug_tracker") or "", stamp, stamp, org and org["id"]),
        )  # fmt: skip
        project = cur.fetchone()
        for spec in labels:
            _create_label(cur, spec, project_id=project["id"])
        body = project_read(cur, base, project)
        # Only an organization webhook can watch create:project (not a project event).
        queued = [events.Event("create:project", project["id"], "project", body, None)]
        events.resolve(cur, queued, user_brief(base, user))
    events.flush(queued)
    return respond(body, 201, headers={"Location": body["url"]})


@route(
    r"^/api/projects/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def project_detail(request):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        project = get_project(cur, int(request.params["id"]))
        check_owner(user, project["owner_id"], project["assignee_id"])
        before = project_read(cur, base, project)
        if request.method == "GET":
            return respond(before)
        if request.method == "DELETE":
            queued.append(events.Event("delete:project", project["id"], "project", before, None))
            cur.execute("DELETE FROM twin_project WHERE id = %s", (project["id"],))
            sender = user_brief(base, user)
            events.resolve(cur, queued, sender)
            body, status = None, 204
        else:
            data = json_body(request)
            for field in ("name", "bug_tracker", "assignee_id", "owner_id"):
                if field in data:
                    cur.execute(
                        f"UPDATE twin_project SET {field} = %s WHERE id = %s",
                        (data[field], project["id"]),
                    )
            if "labels" in data:
                _validate_label_updates(data["labels"])
                _update_labels(cur, data["labels"], ("project_id", project["id"]))
            cur.execute("UPDATE twin_project SET updated_date = %s WHERE id = %s RETURNING *",
                        (now(), project["id"]))  # fmt: skip
            body = project_read(cur, base, cur.fetchone())
            queued.append(events.Event("update:project", project["id"], "project", body,
                                       events.changed(before, body)))  # fmt: skip
            events.resolve(cur, queued, user_brief(base, user))
            status = 200
    events.flush(queued)
    return respond(body, status)


@route(r"^/api/labels/?$", allow="GET, HEAD, OPTIONS")
def labels_list(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        project_id = request.query_param("project_id")
        task_id = request.query_param("task_id")
        job_id = request.query_param("job_id")
        if job_id is not None:
            cur.execute("SELECT task_id FROM twin_job WHERE id = %s", (int(job_id),))
            row = cur.fetchone()
            task_id = row["task_id"] if row else -1
        if task_id is not None:
            task = _task_or_none(cur, int(task_id))
            if task is not None:
                check_owner(user, *_task_owners(cur, task))
            labels = labels_of(cur, task_id=int(task_id))
        elif project_id is not None:
            cur.execute("SELECT * FROM twin_project WHERE id = %s", (int(project_id),))
            project = cur.fetchone()
            if project is not None:
                check_owner(user, project["owner_id"], project["assignee_id"])
            labels = labels_of(cur, project_id=int(project_id))
        else:
            cur.execute("SELECT * FROM twin_label WHERE parent_id IS NULL ORDER BY id")
            labels = cur.fetchall()
        items = [label_read(cur, label) for label in labels]
    return respond(paginate(request, items))


@route(
    r"^/api/labels/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def label_detail(request):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        cur.execute("SELECT * FROM twin_label WHERE id = %s", (int(request.params["id"]),))
        label = cur.fetchone()
        if label is None:
            raise _not_found()
        if request.method == "GET":
            return respond(label_read(cur, label))
        if label["project_id"] is not None:
            parent = get_project(cur, label["project_id"])
            check_owner(user, parent["owner_id"], parent["assignee_id"])
        else:
            parent = get_task(cur, label["task_id"])
            check_owner(user, *_task_owners(cur, parent))
        # LabelViewSet.perform_update/perform_destroy: a skeleton's points are edited through
        # the skeleton, never alone
        if label["parent_id"] is not None:
            raise ApiError(400, [SUBLABEL_DELETE if request.method == "DELETE" else SUBLABEL_PATCH])
        if request.method == "DELETE":
            cur.execute("DELETE FROM twin_label WHERE id = %s", (label["id"],))
            return respond(None, 204)
        data = json_body(request)
        # LabelSerializer.update (local): the item goes through the project's (or task's)
        # PATCH as {"labels": [data]}, with the label's id and, when left out, its name
        spec = dict(data, id=label["id"]) if isinstance(data, dict) else data
        errors = _label_item_errors(spec, local=True)
        if errors:
            raise ApiError(400, errors)
        spec.setdefault("name", label["name"])
        if label["project_id"] is not None:
            before = project_read(cur, base, parent)
            _update_labels(cur, [spec], ("project_id", parent["id"]))
            # the project is saved (updated_date) and its webhooks hear update:project
            cur.execute("UPDATE twin_project SET updated_date = %s WHERE id = %s RETURNING *",
                        (now(), parent["id"]))  # fmt: skip
            after = project_read(cur, base, cur.fetchone())
            queued.append(events.Event("update:project", parent["id"], "project", after,
                                       events.changed(before, after)))  # fmt: skip
            events.resolve(cur, queued, user_brief(base, user))
        else:
            _update_labels(cur, [spec], ("task_id", parent["id"]))
            cur.execute("UPDATE twin_task SET updated_date = %s WHERE id = %s",
                        (now(), parent["id"]))  # fmt: skip
        cur.execute("SELECT * FROM twin_label WHERE id = %s", (label["id"],))
        body = label_read(cur, cur.fetchone())
    events.flush(queued)
    return respond(body)


# --- tasks ---------------------------------------------------------------------------------


def _task_or_none(cur, task_id):
    cur.execute("SELECT * FROM twin_task WHERE id = %s", (task_id,))
    return cur.fetchone()


def get_task(cur, task_id):
    task = _task_or_none(cur, task_id)
    if task is None:
        raise _not_found()
    return task


def _task_owners(cur, task):
    owners = [task["owner_id"], task["assignee_id"]]
    if task["project_id"] is not None:
        cur.execute("SELECT owner_id, assignee_id FROM twin_project WHERE id = %s",
                    (task["project_id"],))  # fmt: skip
        row = cur.fetchone()
        if row:
            owners += [row["owner_id"], row["assignee_id"]]
    cur.execute("SELECT assignee_id FROM twin_job WHERE task_id = %s", (task["id"],))
    owners += [r["assignee_id"] for r in cur.fetchall()]
    return owners


def job_counts(cur, task_id):
    cur.execute(
        "SELECT count(*) AS count,"
        " count(*) FILTER (WHERE stage = 'acceptance' AND state = 'completed') AS completed,"
        " count(*) FILTER (WHERE stage = 'validation') AS validation"
        " FROM twin_job WHERE task_id = %s",
        (task_id,),
    )
    return cur.fetchone()


def task_read(cur, base, task, stale_jobs=False):
    tid = task["id"]
    if stale_jobs:
        # The serializer's annotated counts are missing on an instance saved by a signal.
        jobs = {"count": 0, "completed": None, "validation": None}
    else:
        counts = job_counts(cur, tid)
        jobs = {"count": counts["count"], "completed": counts["completed"],
                "validation": counts["validation"]}  # fmt: skip
    jobs["url"] = f"{base}/api/jobs?task_id={tid}"
    data = {
        "url": f"{base}/api/tasks/{tid}",
        "id": tid,
        "name": task["name"],
        "project_id": task["project_id"],
        "mode": task["mode"],
        "owner": user_brief(base, load_user(cur, task["owner_id"])),
        "assignee": user_brief(base, load_user(cur, task["assignee_id"])),
        "bug_tracker": task["bug_tracker"],
        "created_date": iso(task["created_date"]),
        "updated_date": iso(task["updated_date"]),
        "overlap": task["overlap"],
        "segment_size": task["segment_size"],
        "status": task["status"],
    }
    if task["data_id"] is not None:
        data.update(
            data_chunk_size=task["chunk_size"],
            data_compressed_chunk_type="imageset",
            guide_id=None,
            data_original_chunk_type="imageset",
            size=task["size"],
            image_quality=task["image_quality"],
            data=task["data_id"],
        )
    else:
        data["guide_id"] = None
    data.update(
        dimension="2d",
        subset=task["subset"],
        organization=task.get("organization_id"),
        target_storage=None,
        source_storage=None,
        jobs=jobs,
        labels={"url": f"{base}/api/labels?task_id={tid}"},
        assignee_updated_date=None,
        validation_mode=None,
        consensus_enabled=False,
    )
    return data


@route(r"^/api/tasks/?$", methods=("GET", "POST"), allow="GET, POST, HEAD, OPTIONS")
def tasks(request):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        org = org_context(cur, request)
        if request.method == "GET":
            cur.execute("SELECT * FROM twin_task ORDER BY id DESC")
            rows = in_context(cur.fetchall(), org)
            project_id = request.query_param("project_id")
            if project_id is not None:
                rows = [t for t in rows if str(t["project_id"]) == project_id]
            if not is_admin(user):
                rows = [t for t in rows if user["id"] in _task_owners(cur, t)]
            return respond(paginate(request, [task_read(cur, base, t) for t in rows]))
        require_privilege(user)  # CVAT checks permissions before validating
        data = json_body(request)
        if not data.get("name"):
            raise ApiError(400, {"name": ["This field is required."]})
        project_id = data.get("project_id")
        if project_id is not None:
            cur.execute("SELECT * FROM twin_project WHERE id = %s", (project_id,))
            project = cur.fetchone()
            if project is None:
                raise ApiError(
                    400, {"project_id": [f"The specified project #{project_id} does not exist."]}
                )
            check_owner(user, project["owner_id"], project["assignee_id"])
            if data.get("labels"):
                raise ApiError(400, {"labels": ["Labels can't be set together with project_id"]})
            # TaskWriteSerializer.create: the task takes the request's organization.
            if project["organization_id"] != (org and org["id"]):
                raise ApiError(
                    400, ["The task and its project should be in the same organization."]
                )
        elif not data.get("labels"):
            raise ApiError(400, {"label_set": ["Label set must not be empty"]})
        stamp = now()
        cur.execute(
            "INSERT INTO twin_task (name, project_id, owner_id, assignee_id, bug_tracker,"
            " segment_size, overlap, subset, created_date, updated_date, organization_id)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
            (data["name"], project_id, data.get("owner_id") or user["id"],
             data.get("assignee_id"), data.get("bug_tracker") or "",
             data.get("segment_size") or 0, data.get("overlap"), data.get("subset") or "",
             stamp, stamp, org and org["id"]),
        )  # fmt: skip
        task = cur.fetchone()
        for spec in data.get("labels") or []:
            _create_label(cur, spec, task_id=task["id"])
        body = task_read(cur, base, task)
        queued.append(events.Event("create:task", project_id, "task", body, None))
        events.resolve(cur, queued, user_brief(base, user))
    events.flush(queued)
    return respond(body, 201, headers={"Location": body["url"]})


@route(
    r"^/api/tasks/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def task_detail(request):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        task = get_task(cur, int(request.params["id"]))
        check_owner(user, *_task_owners(cur, task))
        if request.method == "GET":
            return respond(task_read(cur, base, task))
        sender = user_brief(base, user)
        if request.method == "DELETE":
            body = task_read(cur, base, task)
            cur.execute("DELETE FROM twin_task WHERE id = %s", (task["id"],))
            queued.append(events.Event("delete:task", task["project_id"], "task", body, None))
            events.resolve(cur, queued, sender)
            status, body = 204, None
        else:
            before = task_read(cur, base, task, stale_jobs=True)
            data = json_body(request)
            for field in ("name", "bug_tracker", "assignee_id", "owner_id", "subset"):
                if field in data:
                    cur.execute(
                        f"UPDATE twin_task SET {field} = %s WHERE id = %s",
                        (data[field], task["id"]),
                    )
            if "project_id" in data and data["project_id"] != task["project_id"]:
                cur.execute("UPDATE twin_task SET project_id = %s WHERE id = %s",
                            (data["project_id"], task["id"]))  # fmt: skip
            if "labels" in data:
                _validate_label_updates(data["labels"])
                # TaskWriteSerializer.update: a task in a project has the project's labels and
                # ignores these (CVAT does too; edit them through the project)
                if task["project_id"] is None:
                    _update_labels(cur, data["labels"], ("task_id", task["id"]))
            cur.execute("UPDATE twin_task SET updated_date = %s WHERE id = %s RETURNING *",
                        (now(), task["id"]))  # fmt: skip
            task = cur.fetchone()
            body = task_read(cur, base, task)
            if _watchable(task):
                queued.append(events.Event("update:task", task["project_id"], "task", body,
                                           events.changed(before, body)))  # fmt: skip
                events.resolve(cur, queued, sender)
            status = 200
    events.flush(queued)
    return respond(body, status)


# --- data ----------------------------------------------------------------------------------


def image_size(content):
    """(width, height, mime) of a PNG, JPEG, GIF, BMP or WebP image, else raise ValueError."""
    if content[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", content[16:24])
        return width, height, "image/png"
    if content[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(content):
            if content[i] != 0xFF:
                i += 1
                continue
            marker = content[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", content[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF):  # fmt: skip
                height, width = struct.unpack(">HH", content[i + 5 : i + 9])
                return width, height, "image/jpeg"
            i += 2 + length
        raise ValueError("no JPEG frame header")
    if content[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", content[6:10])
        return width, height, "image/gif"
    if content[:2] == b"BM":
        width, height = struct.unpack("<ii", content[18:26])
        return width, abs(height), "image/bmp"
    raise ValueError("unsupported image format")


def parse_form(request):
    """Multipart or urlencoded form -> (fields {name: str}, files [(field, filename, bytes)])."""
    ctype = request.header("Content-Type") or ""
    fields, files = {}, []
    if ctype.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files.append((name, filename, payload))
            else:
                fields[name] = payload.decode("utf-8")
    elif ctype.startswith("application/json"):
        data = json_body(request) or {}
        fields = {k: v for k, v in data.items()}
    elif request.body:
        fields = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8")).items()}
    return fields, files


def request_read(base, req):
    return {
        "status": req["status"],
        "message": req["message"],
        "id": req["id"],
        "operation": {
            "type": req["type"],
            "target": req["type"].split(":", 1)[1].split("-")[0] if ":" in req["type"] else "",
            "project_id": req["project_id"],
            "task_id": req["task_id"],
            "job_id": req["job_id"],
            "format": None,
            "function_id": None,
        },
        "progress": 0.0,
        "created_date": iso(req["created_date"]),
        "started_date": iso(req["started_date"]),
        "finished_date": iso(req["finished_date"]),
        "expiry_date": iso(req["expiry_date"]),
        "owner": {"id": req["owner_id"], "username": req["username"]},
        "result_url": None,
        "result_id": None,
    }


def _start_task_creation(cur, task, user, fields, base):
    rq_id = f"create:task-{task['id']}"
    cur.execute("DELETE FROM twin_request WHERE id = %s", (rq_id,))
    cur.execute(
        "INSERT INTO twin_request (id, type, project_id, task_id, owner_id, status, created_date)"
        " VALUES (%s, 'create:task', %s, %s, %s, 'queued', %s)",
        (rq_id, task["project_id"], task["id"], user["id"], now()),
    )
    quality = int(fields.get("image_quality") or 70)
    sender = user_brief(base, user)
    thread = threading.Thread(
        target=_create_task_data,
        args=(rq_id, task["id"], quality, fields, base, sender),
        daemon=True,
    )
    return rq_id, thread


def _create_task_data(rq_id, task_id, quality, fields, base, sender):
    """The task creation job (cvat/apps/engine/task.py: _create_thread), run after commit."""
    time.sleep(0.3)
    queued = []
    try:
        with db.transaction() as cur:
            cur.execute(
                "UPDATE twin_request SET status = 'started', started_date = %s WHERE id = %s",
                (now(), rq_id),
            )
        with db.transaction() as cur:
            task = get_task(cur, task_id)
            cur.execute("SELECT * FROM twin_upload WHERE task_id = %s ORDER BY id", (task_id,))
            uploads = cur.fetchall()
            if not uploads:
                raise ValueError("No media data found")
            order = fields.get("upload_file_order")
            if str(fields.get("sorting_method", "lexicographical")) == "lexicographical":
                uploads.sort(key=lambda u: u["name"])
            elif order:
                names = order if isinstance(order, list) else [order]
                uploads.sort(key=lambda u: names.index(u["name"]) if u["name"] in names else 0)
            for frame, upload in enumerate(uploads):
                content = bytes(upload["content"])
                width, height, mime = image_size(content)
                cur.execute(
                    "INSERT INTO twin_frame (task_id, frame, name, width, height, mime, content)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (task_id, frame, upload["name"], width, height, mime, content),
                )
            cur.execute("DELETE FROM twin_upload WHERE task_id = %s", (task_id,))
            size = len(uploads)
            segment = task["segment_size"] or size
            overlap = task["overlap"] or 0
            created_jobs = []
            start = 0
            while start < size:
                stop = min(start + segment - 1, size - 1)
                stamp = now()
                cur.execute(
                    "INSERT INTO twin_job (task_id, start_frame, stop_frame, created_date,"
                    " updated_date) VALUES (%s,%s,%s,%s,%s) RETURNING *",
                    (task_id, start, stop, stamp, stamp),
                )
                created_jobs.append(cur.fetchone())
                if stop == size - 1:
                    break
                start = stop + 1 - overlap
            chunk = int(fields.get("chunk_size") or CHUNK_SIZE)
            cur.execute(
                "UPDATE twin_task SET mode = 'annotation', overlap = %s, segment_size = %s,"
                " size = %s, image_quality = %s, data_id = %s, chunk_size = %s,"
                " updated_date = %s WHERE id = %s RETURNING *",
                (overlap, segment, size, quality, task_id, chunk, now(), task_id),
            )
            task = cur.fetchone()
            for job in created_jobs:
                queued.append(events.Event("create:job", task["project_id"], "job",
                                           job_read(cur, base, job), None))  # fmt: skip
            events.resolve(cur, queued, sender)
        with db.transaction() as cur:
            stamp = now()
            cur.execute(
                "UPDATE twin_request SET status = 'finished', finished_date = %s,"
                " expiry_date = %s WHERE id = %s",
                (stamp, stamp + __import__("datetime").timedelta(seconds=500), rq_id),
            )
    except Exception as exc:  # the request fails with the error text, like CVAT's RQ job
        with db.transaction() as cur:
            cur.execute(
                "UPDATE twin_request SET status = 'failed', message = %s, finished_date = %s"
                " WHERE id = %s",
                (str(exc), now(), rq_id),
            )
        return
    events.flush(queued)


@route(
    r"^/api/tasks/(?P<id>\d+)/data/?$", methods=("GET", "POST"), allow="GET, POST, HEAD, OPTIONS"
)
def task_data(request):
    base = base_url(request)
    thread = None
    with db.transaction() as cur:
        user = require_user(cur, request)
        task = get_task(cur, int(request.params["id"]))
        check_owner(user, *_task_owners(cur, task))
        if request.method == "GET":
            return _frame(cur, request, task, 0, (task["size"] or 1) - 1)
        fields, files = parse_form(request)
        for _field, filename, content in files:
            cur.execute(
                "INSERT INTO twin_upload (task_id, name, content) VALUES (%s, %s, %s)",
                (task["id"], filename.rsplit("/", 1)[-1], content),
            )
        if request.header("Upload-Start") is not None:
            return respond(None, 202)
        if request.header("Upload-Multiple") is not None:
            return respond(None, 200)
        if task["data_id"] is not None:
            raise ApiError(400, {"detail": "Adding more data is not supported"})
        if "image_quality" not in fields and request.header("Upload-Finish") is None:
            raise ApiError(400, {"image_quality": ["This field is required."]})
        rq_id, thread = _start_task_creation(cur, task, user, fields, base)
    thread.start()
    return respond({"rq_id": rq_id}, 202, vary="Origin, Cookie")


def _frame(cur, request, task, start, stop):
    kind = request.query_param("type", "frame")
    number = int(request.query_param("number", str(start)) or start)
    if kind == "frame":
        frame = number
        if not start <= frame <= stop:
            raise ApiError(
                400, {"detail": f"The frame number should be in the [{start}, {stop}] range"}
            )
        cur.execute(
            "SELECT * FROM twin_frame WHERE task_id = %s AND frame = %s", (task["id"], frame)
        )
        row = cur.fetchone()
        if row is None:
            raise _not_found()
        from ..httpd import Response

        return Response(bytes(row["content"]), 200, content_type=row["mime"])
    raise ApiError(400, {"detail": f"Unsupported data type: {kind}"})


def _meta(cur, task, start, stop):
    cur.execute(
        "SELECT frame, name, width, height FROM twin_frame WHERE task_id = %s"
        " AND frame BETWEEN %s AND %s ORDER BY frame",
        (task["id"], start, stop),
    )
    frames = [
        {"width": f["width"], "height": f["height"], "name": f["name"], "related_files": 0,
         "has_related_context": False}
        for f in cur.fetchall()
    ]  # fmt: skip
    return {
        "chunks_updated_date": iso(task["updated_date"]),
        "chunk_size": task["chunk_size"],
        "size": stop - start + 1 if task["size"] else 0,
        "image_quality": task["image_quality"],
        "start_frame": start,
        "stop_frame": stop,
        "frame_filter": "",
        "frames": frames,
        "deleted_frames": [],
        "included_frames": None,
    }


@route(r"^/api/tasks/(?P<id>\d+)/data/meta/?$", methods=("GET",), allow="GET, PATCH, HEAD, OPTIONS")
def task_data_meta(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        task = get_task(cur, int(request.params["id"]))
        check_owner(user, *_task_owners(cur, task))
        return respond(_meta(cur, task, 0, max((task["size"] or 0) - 1, 0)))


@route(r"^/api/requests/(?P<id>[^/]+)/?$", methods=("GET",), allow="GET, HEAD, OPTIONS")
def requests_detail(request):
    from urllib.parse import unquote

    rq_id = unquote(request.params["id"])
    with db.transaction() as cur:
        user = require_user(cur, request)
        cur.execute(
            "SELECT r.*, u.username FROM twin_request r JOIN twin_user u ON u.id = r.owner_id"
            " WHERE r.id = %s",
            (rq_id,),
        )
        req = cur.fetchone()
        if req is None:
            raise _not_found()
        check_owner(user, req["owner_id"])
        return respond(request_read(base_url(request), req))


@route(r"^/api/requests/?$", methods=("GET",), allow="GET, HEAD, OPTIONS")
def requests_list(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        cur.execute(
            "SELECT r.*, u.username FROM twin_request r JOIN twin_user u ON u.id = r.owner_id"
            " ORDER BY r.created_date DESC"
        )
        rows = [r for r in cur.fetchall() if is_admin(user) or r["owner_id"] == user["id"]]
        return respond(paginate(request, [request_read(base_url(request), r) for r in rows]))


# --- jobs ----------------------------------------------------------------------------------


def job_status(stage, state):
    if stage == "acceptance" and state == "completed":
        return "completed"
    if stage == "annotation":
        return "annotation"
    return "validation"


def job_read(cur, base, job, task=None):
    task = task or get_task(cur, job["task_id"])
    jid = job["id"]
    return {
        "url": f"{base}/api/jobs/{jid}",
        "id": jid,
        "task_id": job["task_id"],
        "project_id": task["project_id"],
        "assignee": user_brief(base, load_user(cur, job["assignee_id"])),
        "guide_id": None,
        "dimension": "2d",
        "bug_tracker": task["bug_tracker"],
        "status": job["status"],
        "stage": job["stage"],
        "state": job["state"],
        "mode": task["mode"],
        "frame_count": job["stop_frame"] - job["start_frame"] + 1,
        "start_frame": job["start_frame"],
        "stop_frame": job["stop_frame"],
        "data_chunk_size": task["chunk_size"],
        "data_compressed_chunk_type": "imageset",
        "data_original_chunk_type": "imageset",
        "created_date": iso(job["created_date"]),
        "updated_date": iso(job["updated_date"]),
        "issues": {"url": f"{base}/api/issues?job_id={jid}", "count": 0},
        "labels": {"url": f"{base}/api/labels?job_id={jid}"},
        "type": job["type"],
        "organization": task.get("organization_id"),
        "target_storage": None,
        "source_storage": None,
        "assignee_updated_date": None,
        "parent_job_id": None,
        "consensus_replicas": 0,
    }


def get_job(cur, job_id):
    cur.execute("SELECT * FROM twin_job WHERE id = %s", (job_id,))
    job = cur.fetchone()
    if job is None:
        raise _not_found()
    return job


def _job_owners(cur, job, task):
    return [*_task_owners(cur, task), job["assignee_id"]]


@route(r"^/api/jobs/?$", methods=("GET",), allow="GET, POST, HEAD, OPTIONS")
def jobs(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        cur.execute("SELECT * FROM twin_job ORDER BY id DESC")
        rows = cur.fetchall()
        filters = {k: request.query_param(k) for k in ("task_id", "state", "stage", "project_id")}
        items = []
        for job in rows:
            task = get_task(cur, job["task_id"])
            if not is_admin(user) and user["id"] not in _job_owners(cur, job, task):
                continue
            data = job_read(cur, base, job, task)
            if any(v is not None and str(data[k]) != v for k, v in filters.items()):
                continue
            items.append(data)
    return respond(paginate(request, items))


def save_job(cur, base, job, task, changes, sender, queued):
    """JobWriteSerializer.update + the post-save signal recomputing the task status."""
    before = job_read(cur, base, job, task)
    stage = changes.get("stage", job["stage"])
    state = changes.get("state", job["state"])
    if "stage" in changes and "state" not in changes:
        state = "new"
    assignee = changes.get("assignee", job["assignee_id"])
    cur.execute(
        "UPDATE twin_job SET stage = %s, state = %s, status = %s, assignee_id = %s,"
        " updated_date = %s WHERE id = %s RETURNING *",
        (stage, state, job_status(stage, state), assignee, now(), job["id"]),
    )
    job = cur.fetchone()
    touch_task(cur, base, task, sender, queued, status_only=True)
    task = get_task(cur, task["id"])
    after = job_read(cur, base, job, task)
    if _watchable(task):
        queued.append(events.Event("update:job", task["project_id"], "job", after,
                                   events.changed(before, after)))  # fmt: skip
    return job, after


def _watchable(task):
    """Only a project's or an organization's webhooks receive an object's events."""
    return task["project_id"] is not None or task.get("organization_id") is not None


def touch_task(cur, base, task, sender, queued, status_only=False):
    """Recompute the task status after a job save; save the task (update:task) when the
    status changed, or always when status_only is False (annotation saves)."""
    cur.execute("SELECT status FROM twin_job WHERE task_id = %s", (task["id"],))
    statuses = [r["status"] for r in cur.fetchall()]
    if "annotation" in statuses:
        status = "annotation"
    elif "validation" in statuses:
        status = "validation"
    else:
        status = "completed"
    if status_only and status == task["status"]:
        return
    before = task_read(cur, base, task, stale_jobs=True)
    cur.execute(
        "UPDATE twin_task SET status = %s, updated_date = %s WHERE id = %s RETURNING *",
        (status, now(), task["id"]),
    )
    task = cur.fetchone()
    after = task_read(cur, base, task, stale_jobs=True)
    if _watchable(task):
        queued.append(events.Event("update:task", task["project_id"], "task", after,
                                   events.changed(before, after)))  # fmt: skip


@route(
    r"^/api/jobs/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def job_detail(request):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        job = get_job(cur, int(request.params["id"]))
        task = get_task(cur, job["task_id"])
        check_owner(user, *_job_owners(cur, job, task))
        if request.method == "GET":
            return respond(job_read(cur, base, job, task))
        if request.method == "DELETE":
            raise ApiError(405, {"detail": 'Method "DELETE" not allowed.'})
        data = json_body(request)
        changes = {}
        for field, choices in (("stage", ("annotation", "validation", "acceptance")),
                               ("state", ("new", "in progress", "completed", "rejected"))):  # fmt: skip
            if field in data:
                if data[field] not in choices:
                    raise ApiError(400, {field: [f'"{data[field]}" is not a valid choice.']})
                changes[field] = data[field]
        if "assignee" in data:
            changes["assignee"] = data["assignee"]
        sender = user_brief(base, user)
        _job, body = save_job(cur, base, job, task, changes, sender, queued)
        events.resolve(cur, queued, sender)
    events.flush(queued)
    return respond(body)


@route(r"^/api/jobs/(?P<id>\d+)/data/meta/?$", methods=("GET",), allow="GET, PATCH, HEAD, OPTIONS")
def job_data_meta(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        job = get_job(cur, int(request.params["id"]))
        task = get_task(cur, job["task_id"])
        check_owner(user, *_job_owners(cur, job, task))
        return respond(_meta(cur, task, job["start_frame"], job["stop_frame"]))


@route(r"^/api/jobs/(?P<id>\d+)/data/?$", methods=("GET",), allow="GET, HEAD, OPTIONS")
def job_data(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        job = get_job(cur, int(request.params["id"]))
        task = get_task(cur, job["task_id"])
        check_owner(user, *_job_owners(cur, job, task))
        return _frame(cur, request, task, job["start_frame"], job["stop_frame"])


# --- annotations ---------------------------------------------------------------------------

SHAPE_KEYS = ("type", "occluded", "outside", "z_order", "rotation", "points", "id", "frame",
              "label_id", "group", "source", "attributes", "elements")  # fmt: skip
GET_KEYS = ("id", "label_id", "type", "frame", "group", "source", "occluded", "outside",
            "z_order", "rotation", "points", "attributes", "elements")  # fmt: skip


def _points(values, as_float):
    return [float(v) for v in values] if as_float else list(values)


def _shape_out(row, elements, as_float, keys):
    data = {
        "type": row["type"],
        "occluded": row["occluded"],
        "outside": row["outside"],
        "z_order": row["z_order"],
        "rotation": float(row["rotation"]),
        "points": _points(row["points"], as_float),
        "id": row["id"],
        "frame": row["frame"],
        "label_id": row["label_id"],
        "group": row["group_id"],
        "source": row["source"],
        # jsonb keeps keys shortest first; the serializer's order is spec_id, value
        "attributes": _attribute_values(row["attributes"]),
    }
    if elements is not None:
        data["elements"] = elements
    return {k: data[k] for k in keys if k in data}


def _attribute_values(attributes):
    return [{"spec_id": a["spec_id"], "value": a["value"]} for a in attributes]


def insert_shape(cur, job_id, shape, parent_id=None, kind="shape", keep_id=False):
    """Insert a shape (and its elements); keep_id: an update keeps the client's ids. An
    explicit "group": null is kept (auto-annotation writes it so)."""
    cur.execute(
        "INSERT INTO twin_shape (id, job_id, parent_id, kind, type, frame, label_id, group_id,"
        " source, occluded, outside, z_order, rotation, points, attributes)"
        " VALUES (COALESCE(%s, nextval(pg_get_serial_sequence('twin_shape', 'id'))),"
        " %s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
        (shape.get("id") if keep_id else None, job_id, parent_id, kind, shape.get("type", ""), int(shape.get("frame", 0)),
         shape["label_id"], shape.get("group", 0), shape.get("source") or "manual",
         bool(shape.get("occluded", False)), bool(shape.get("outside", False)),
         int(shape.get("z_order") or 0), float(shape.get("rotation") or 0.0),
         db.Json(shape.get("points") or []), db.Json(_attrs(shape.get("attributes")))),
    )  # fmt: skip
    row = cur.fetchone()
    elements = []
    for element in shape.get("elements") or []:
        elements.append(insert_shape(cur, job_id, element, row["id"], kind, keep_id))
    return row, elements


def _attrs(attributes):
    return [{"spec_id": a["spec_id"], "value": str(a.get("value", ""))} for a in attributes or []]


def _validate_shapes(cur, shapes, label_ids):
    for shape in shapes:
        if not isinstance(shape, dict) or "label_id" not in shape or "frame" not in shape:
            raise ApiError(400, {"shapes": ["Invalid shape: label_id and frame are required"]})
        if shape.get("type") and shape["type"] not in SHAPE_TYPES and shape["type"] != "":
            raise ApiError(
                400, {"shapes": [{"type": [f'"{shape["type"]}" is not a valid choice.']}]}
            )
        if shape["label_id"] not in label_ids:
            raise ApiError(400, {"detail": f"Label id {shape['label_id']} is not valid"})
        _validate_shapes(cur, shape.get("elements") or [], label_ids)


def _label_ids(cur, task_id):
    ids = set()
    for label in labels_of(cur, task_id=task_id):
        ids.add(label["id"])
        cur.execute("SELECT id FROM twin_label WHERE parent_id = %s", (label["id"],))
        ids.update(r["id"] for r in cur.fetchall())
    return ids


def _write_out(row, elements, nested=False):
    out = _shape_out(row, [_write_out(r, e, True) for r, e in elements], False, SHAPE_KEYS)
    if nested:
        out.pop("elements", None)
    return out


def _attribute_defaults(cur, label_ids):
    """label id -> [(spec_id, default_value)] in spec order."""
    cur.execute(
        "SELECT id, label_id, default_value FROM twin_attribute WHERE label_id = ANY(%s)"
        " ORDER BY id",
        (list(label_ids),),
    )
    defaults = {}
    for row in cur.fetchall():
        defaults.setdefault(row["label_id"], []).append((row["id"], row["default_value"]))
    return defaults


def _extend_attributes(attributes, defaults):
    # CVAT fills an attribute a shape has no value for with its default when it reads them
    # (dataset_manager/task.py, JobAnnotation._extend_attributes), whatever wrote the shape.
    present = {a["spec_id"] for a in attributes}
    return attributes + [
        {"spec_id": spec_id, "value": value}
        for spec_id, value in defaults
        if spec_id not in present
    ]


def annotations_read(cur, job_ids):
    cur.execute("SELECT * FROM twin_shape WHERE job_id = ANY(%s) ORDER BY id", (list(job_ids),))
    rows = cur.fetchall()
    defaults = _attribute_defaults(cur, {r["label_id"] for r in rows})
    for row in rows:
        row["attributes"] = _extend_attributes(row["attributes"], defaults.get(row["label_id"], []))
    children = {}
    for row in rows:
        if row["parent_id"] is not None:
            children.setdefault(row["parent_id"], []).append(row)
    shapes, tags = [], []
    for row in rows:
        if row["parent_id"] is not None:
            continue
        if row["kind"] == "tag":
            tags.append({"id": row["id"], "frame": row["frame"], "label_id": row["label_id"],
                         "group": row["group_id"], "source": row["source"],
                         "attributes": _attribute_values(row["attributes"])})  # fmt: skip
            continue
        elements = [_shape_out(c, None, True, GET_KEYS) for c in children.get(row["id"], [])]
        for element in elements:
            element.pop("elements", None)
        shapes.append(_shape_out(row, elements, True, GET_KEYS))
    return {"version": 0, "tags": tags, "shapes": shapes, "tracks": []}


def touch_after_annotations(cur, base, job_ids, task, sender, queued):
    """Saving annotations touches the job, then the task (update:job, then update:task)."""
    for jid in job_ids:
        current = get_job(cur, jid)
        before = job_read(cur, base, current, task)
        cur.execute("UPDATE twin_job SET updated_date = %s WHERE id = %s RETURNING *",
                    (now(), jid))  # fmt: skip
        after = job_read(cur, base, cur.fetchone(), task)
        if _watchable(task):
            queued.append(events.Event("update:job", task["project_id"], "job", after,
                                       events.changed(before, after)))  # fmt: skip
    touch_task(cur, base, get_task(cur, task["id"]), sender, queued)


def _annotations(request, job_ids, task, job=None):
    base = base_url(request)
    queued = []
    with db.transaction() as cur:
        user = require_user(cur, request)
        if job is not None:
            check_owner(user, *_job_owners(cur, job, task))
        else:
            check_owner(user, *_task_owners(cur, task))
        if request.method == "GET":
            return respond(annotations_read(cur, job_ids))
        if request.method == "DELETE":
            cur.execute("DELETE FROM twin_shape WHERE job_id = ANY(%s)", (list(job_ids),))
            body, status = None, 204
        else:
            data = json_body(request)
            action = request.query_param("action")
            if request.method == "PATCH" and action not in ("create", "update", "delete"):
                raise ApiError(400, {"detail": "Please specify a correct 'action' for the request"})
            shapes = data.get("shapes") or []
            tags = data.get("tags") or []
            label_ids = _label_ids(cur, task["id"])
            _validate_shapes(cur, shapes + tags, label_ids)
            target_job = job_ids[0] if job_ids else None

            def job_for(frame):
                cur.execute(
                    "SELECT id FROM twin_job WHERE task_id = %s AND %s BETWEEN start_frame"
                    " AND stop_frame ORDER BY id LIMIT 1",
                    (task["id"], frame),
                )
                row = cur.fetchone()
                return row["id"] if row else target_job

            if request.method == "PUT":
                cur.execute("DELETE FROM twin_shape WHERE job_id = ANY(%s)", (list(job_ids),))
            if action in ("update", "delete"):
                for item in shapes + tags:
                    if item.get("id") is not None:
                        cur.execute("DELETE FROM twin_shape WHERE id = %s AND job_id = ANY(%s)",
                                    (item["id"], list(job_ids)))  # fmt: skip
            out_shapes, out_tags = [], []
            if action != "delete":
                for shape in shapes:
                    row, elements = insert_shape(
                        cur, job_for(int(shape["frame"])), shape, keep_id=action == "update"
                    )
                    out_shapes.append(_write_out(row, elements))
                for tag in tags:
                    row, _ = insert_shape(
                        cur, job_for(int(tag["frame"])), tag, kind="tag", keep_id=action == "update"
                    )
                    out_tags.append({"id": row["id"], "frame": row["frame"],
                                     "label_id": row["label_id"], "group": row["group_id"],
                                     "source": row["source"],
                                     "attributes": _attribute_values(row["attributes"])})  # fmt: skip
            body = {"version": 0, "tags": out_tags if action != "delete" else tags,
                    "shapes": out_shapes if action != "delete" else shapes, "tracks": []}  # fmt: skip
            status = 200
        sender = user_brief(base, user)
        touch_after_annotations(cur, base, job_ids, task, sender, queued)
        events.resolve(cur, queued, sender)
    events.flush(queued)
    return respond(body, status)


@route(
    r"^/api/jobs/(?P<id>\d+)/annotations/?$",
    methods=("GET", "PUT", "PATCH", "DELETE"),
    allow="GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
)
def job_annotations(request):
    with db.transaction() as cur:
        require_user(cur, request)
        job = get_job(cur, int(request.params["id"]))
        task = get_task(cur, job["task_id"])
    return _annotations(request, [job["id"]], task, job)


@route(
    r"^/api/tasks/(?P<id>\d+)/annotations/?$",
    methods=("GET", "PUT", "PATCH", "DELETE"),
    allow="GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
)
def task_annotations(request):
    with db.transaction() as cur:
        require_user(cur, request)
        task = get_task(cur, int(request.params["id"]))
        cur.execute("SELECT id FROM twin_job WHERE task_id = %s ORDER BY id", (task["id"],))
        job_ids = [r["id"] for r in cur.fetchall()]
    return _annotations(request, job_ids, task)


_ = re  # kept for future path parsing
_ = json
