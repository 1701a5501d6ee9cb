"""Raises: every call fails, as a handler bug would."""


def handler(context, event):
    raise ValueError("boom from the handler")
