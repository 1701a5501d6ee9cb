"""HTTP clients for the stack's APIs, sharing one TLS context per process: httpx builds a
context for every client it makes (it reads the whole CA bundle, ≈30 ms a client), and a run
makes a dozen.

    with http_client(base_url="http://localhost:8080", timeout=30) as client:
        client.get("/api/server/about")
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(*, timeout: float | httpx.Timeout, **kwargs: Any) -> httpx.Client:
    """httpx.Client(**kwargs) with the shared TLS context (unless `verify` is given) and the
    caller's timeout, which must be said: httpx's silent default (5 s) is no bound a lab
    can read (selftests/test_timeouts.py holds every HTTP call of the suite to one)."""
    if timeout is None:
        raise ValueError("http_client needs a timeout")
    kwargs.setdefault("verify", tls_context())
    return httpx.Client(timeout=timeout, **kwargs)
