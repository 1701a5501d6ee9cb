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


def http_client(**kwargs: Any) -> httpx.Client:
    """httpx.Client(**kwargs) with the shared TLS context (unless `verify` is given)."""
    kwargs.setdefault("verify", tls_context())
    return httpx.Client(**kwargs)
