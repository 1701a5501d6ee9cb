"""/api/lambda/functions[/<id>] and /api/lambda/requests[/<id>] (cvat/apps/lambda_manager/views.py:
FunctionViewSet, RequestViewSet), on cvat_twin.lambda_manager.

    GET  /api/lambda/functions                  the dashboard's detectors, interactors, ...
    GET  /api/lambda/functions/<id>             asks the dashboard for that one function again
    POST /api/lambda/functions/<id>             online call from cvat_server; writes nothing
    POST /api/lambda/requests                   200 FunctionCall, run by cvat_worker_annotation
    GET  /api/lambda/requests[/<id>], DELETE /api/lambda/requests/<id>

Errors are answered as CVAT's return_response does: the text as a JSON string, with the
upstream status for an HTTP error, 503 for a connection error, 504 for a timeout, the
ValidationError's code (400 by default), 400 for a missing object. Anything else escapes as
Django's 500 page (a function's attribute value given as a JSON number, recorded).
"""

import requests

from .. import db
from ..lambda_manager import gateway, queue
from ..lambda_manager.frames import load_target
from ..lambda_manager.function import FrameError, LambdaError
from ..routing import route
from . import engine
from .common import (
    ApiError,
    base_url,
    check_owner,
    is_admin,
    json_body,
    require_user,
    respond,
    user_brief,
)


class ObjectMissing(Exception):
    """django.core.exceptions.ObjectDoesNotExist ("Task matching query does not exist.")."""


def _answer(view, success=200):
    """return_response: the view's result, or the error's text with its status."""
    try:
        data = view()
    except requests.ConnectionError as err:
        return _error(503, str(err))
    except requests.HTTPError as err:
        return _error(err.response.status_code, str(err))
    except requests.Timeout as err:
        return _error(504, str(err))
    except requests.RequestException as err:
        return _error(500, str(err))
    except LambdaError as err:
        return _error(err.code or 400, err.message)
    except ObjectMissing as err:
        return _error(400, str(err))
    except FrameError as err:
        # DRF's own ValidationError: its handler answers the detail as a list
        raise ApiError(400, [str(err)]) from None
    return respond(data, success)


def _error(status, text):
    # Recorded: these answers' Vary has no Cookie.
    return respond(text, status=status, vary="Origin")


def _user(request):
    with db.transaction() as cur:
        return require_user(cur, request)


def _target(cur, user, task_id, job_id=None):
    task, target = load_target(cur, task_id, job_id)
    check_owner(user, *engine._task_owners(cur, task))
    return target


# -- functions --------------------------------------------------------------------------------


@route(r"^/api/lambda/functions/?$", allow="GET, HEAD, OPTIONS")
def list_functions(request):
    _user(request)
    return _answer(lambda: [f.to_dict() for f in gateway.list_functions()])


@route(
    r"^/api/lambda/functions/(?P<func_id>[a-zA-Z0-9_.-]+)/?$",
    methods=("GET", "POST"),
    allow="GET, POST, HEAD, OPTIONS",
)
def function_detail(request):
    user = _user(request)
    func_id = request.params["func_id"]
    if request.method == "GET":
        return _answer(lambda: gateway.get_function(func_id).to_dict())
    data = json_body(request)
    return _answer(lambda: _call_online(user, func_id, data if isinstance(data, dict) else {}))


def _call_online(user, func_id, data):
    def wrong_arguments(err):
        return LambdaError(f"`{func_id}` lambda function was run with wrong arguments ({err})")

    with db.transaction() as cur:
        job_id = data.get("job")
        try:
            if job_id is not None:
                cur.execute("SELECT * FROM twin_job WHERE id = %s", (job_id,))
                job = cur.fetchone()
                if job is None:
                    raise wrong_arguments("Job matching query does not exist.")
                task_id = job["task_id"]
            else:
                task_id = data["task"]
        except KeyError as err:
            raise wrong_arguments(str(err)) from None
        cur.execute("SELECT id FROM twin_task WHERE id = %s", (task_id,))
        if cur.fetchone() is None:
            raise wrong_arguments("Task matching query does not exist.")
        target = _target(cur, user, task_id, job_id)
    function = gateway.get_function(func_id)
    return function.invoke(target, data)


# -- requests ---------------------------------------------------------------------------------

_FIELDS = (  # FunctionCallRequestSerializer, in declaration order
    ("function", "str", True, "function"),
    ("task", "int", True, "task"),
    ("job", "int", False, "job"),
    ("max_distance", "int", False, "max_distance"),
    ("threshold", "float", False, "threshold"),
    ("cleanup", "bool", False, "cleanup"),
    ("convMaskToPoly", "bool", False, "conv_mask_to_poly"),
    ("conv_mask_to_poly", "bool", False, "conv_mask_to_poly"),
    ("mapping", "dict", False, "mapping"),
)
# DRF's BooleanField (True == 1 and False == 0 in a set)
_TRUE = {True, "1", "true", "True", "TRUE", "yes", "on", "y", "t"}
_FALSE = {False, "0", "false", "False", "FALSE", "no", "off", "n", "f"}


def _convert(kind, value):
    if kind == "str":
        if isinstance(value, (dict, list, bool)) or value is None:
            raise ValueError("Not a valid string.")
        return str(value)
    if kind == "int":
        if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
            raise ValueError("A valid integer is required.")
        return int(value)
    if kind == "float":
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("A valid number is required.") from None
    if kind == "bool":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError("Must be a valid boolean.")
    if not isinstance(value, dict):
        raise ValueError(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    return value


def _validated(data):
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    validated, errors = {"cleanup": False}, {}
    for name, kind, required, source in _FIELDS:
        if name not in data:
            if required:
                errors[name] = ["This field is required."]
            continue
        try:
            validated[source] = _convert(kind, data[name])
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise ApiError(400, errors)
    return validated


@route(r"^/api/lambda/requests/?$", methods=("GET", "POST"), allow="GET, POST, HEAD, OPTIONS")
def requests_collection(request):
    user = _user(request)
    if request.method == "GET":
        return _answer(lambda: _visible_calls(user))
    data = _validated(json_body(request))
    base = base_url(request)
    return _answer(lambda: _create(user, data, base))


def _visible_calls(user):
    calls = []
    with db.transaction() as cur:
        for rq_job in queue.get_jobs():
            task = engine._task_or_none(cur, rq_job.kwargs.get("task"))
            if task is None:
                continue
            if is_admin(user) or user["id"] in engine._task_owners(cur, task):
                calls.append(queue.call_dict(rq_job))
    return calls


def _create(user, data, base):
    function = gateway.get_function(data["function"])
    task_id, job_id = data["task"], data.get("job")
    with db.transaction() as cur:
        task = engine._task_or_none(cur, task_id)
        if task is not None:
            check_owner(user, *engine._task_owners(cur, task))
        rq_job = queue.enqueue(
            function,
            threshold=data.get("threshold"),
            task=task_id,
            mapping=data.get("mapping"),
            cleanup=data["cleanup"],
            conv_mask_to_poly=data.get("conv_mask_to_poly", False),
            max_distance=data.get("max_distance"),
            job=job_id,
            meta=lambda: _meta(cur, user, base, task, task_id, job_id),
        )
    return queue.call_dict(rq_job)


def _meta(cur, user, base, task, task_id, job_id):
    # get_rq_job_meta(request, db_obj=Job or Task): a missing object fails the request (400)
    # after the 409 check, as CVAT's enqueue does.
    if job_id is not None:
        cur.execute("SELECT id FROM twin_job WHERE id = %s", (job_id,))
        if cur.fetchone() is None:
            raise ObjectMissing("Job matching query does not exist.")
    if task is None:
        raise ObjectMissing("Task matching query does not exist.")
    return {
        "user": {"id": user["id"], "username": user["username"], "email": user["email"]},
        "project_id": task["project_id"],
        "task_id": task_id,
        "job_id": job_id,
        # what the worker's webhook payloads are built with
        "base_url": base,
        "sender": user_brief(base, user),
    }


@route(r"^/api/lambda/requests/(?P<id>[^/]+)/?$", methods=("GET", "DELETE"),
       allow="GET, DELETE, HEAD, OPTIONS")  # fmt: skip
def request_detail(request):
    from urllib.parse import unquote

    user = _user(request)
    pk = unquote(request.params["id"])

    def visible():
        rq_job = queue.fetch(pk)
        with db.transaction() as cur:
            task = engine._task_or_none(cur, rq_job.kwargs.get("task"))
            if task is not None:
                check_owner(user, *engine._task_owners(cur, task))
        return rq_job

    if request.method == "DELETE":
        return _answer(lambda: visible().delete(), success=204)
    return _answer(lambda: queue.call_dict(visible()))
