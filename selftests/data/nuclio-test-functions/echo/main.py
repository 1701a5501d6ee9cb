"""Echo: tells what the processor handed to the handler; some paths return other types."""

import base64
import os


def init_context(context):
    context.user_data.greeting = "hello from init_context"
    context.user_data.init_calls = getattr(context.user_data, "init_calls", 0) + 1


def _qualname(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def handler(context, event):
    returns = {
        "/str": lambda: "plain string",
        "/bytes": lambda: b"\x00\x01binary",
        "/tuple": lambda: (201, {"created": True}),
        "/tuple-str": lambda: (202, "accepted"),
        "/list": lambda: [1, 2, 3],
        "/response": lambda: context.Response(
            body="teapot",
            headers={"X-Custom": "yes", "X-Int": 5},
            content_type="text/x-teapot",
            status_code=418,
        ),
    }
    if event.path in returns:
        return returns[event.path]()
    body = event.body
    if isinstance(body, bytes):
        body = {"bytes_b64": base64.b64encode(body).decode()}
    return {
        "body": body,
        "body_type": type(event.body).__name__,
        "content_type": event.content_type,
        "method": event.method,
        "path": event.path,
        "fields": event.fields,
        "headers": dict(event.headers),
        "trigger": {"kind": event.trigger.kind, "name": event.trigger.name},
        "classes": {
            "context": _qualname(context),
            "event": _qualname(event),
            "logger": _qualname(context.logger),
            "response": f"{context.Response.__module__}.{context.Response.__qualname__}",
        },
        "user_data": {
            "greeting": context.user_data.greeting,
            "init_calls": context.user_data.init_calls,
        },
        "env": os.environ.get("ECHO_ENV"),
        "cwd": os.getcwd(),
    }
