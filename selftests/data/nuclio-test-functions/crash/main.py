"""Crash: init_context fails, so the processor exits before it is ever ready."""


def init_context(context):
    raise RuntimeError("model weights not found")


def handler(context, event):
    return "unreachable"
