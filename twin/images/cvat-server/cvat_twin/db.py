"""PostgreSQL access for the CVAT twin: one connection per unit of work (cvat_db, trust auth)."""

import contextlib
import datetime

import psycopg2
import psycopg2.extras

from . import settings


def connect(timeout=5):
    return psycopg2.connect(connect_timeout=timeout, options="-c timezone=UTC", **settings.POSTGRES)


@contextlib.contextmanager
def transaction():
    """A cursor returning dict rows inside one transaction (committed on success)."""
    conn = connect()
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            yield cur
    finally:
        conn.close()


def now():
    return datetime.datetime.now(datetime.UTC)


def iso(value):
    """DRF's DateTimeField output (UTC, 'Z' suffix)."""
    if value is None:
        return None
    value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def Json(value):
    return psycopg2.extras.Json(value)
