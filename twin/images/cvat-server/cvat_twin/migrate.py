"""The twin's stand-in for Django migrations, kept in the real cvat_db.

    python3 -m cvat_twin.migrate wait [--timeout S]   wait until the database accepts connections
    python3 -m cvat_twin.migrate apply                apply pending migrations (cvat_server's `init`)
    python3 -m cvat_twin.migrate check                exit 0 only when none is pending
    python3 -m cvat_twin.migrate ping                 one connection attempt

Migrations are recorded in a `django_migrations` table like Django's. Later work appends to
MIGRATIONS; `run <conf>` waits until every one of them is applied.
"""

import argparse
import sys
import time

import psycopg2

from . import settings

APP = "cvat_twin"

# (name, SQL). Append only; never edit an applied one.
MIGRATIONS = [
    ("0001_initial", "SELECT 1"),
]

_ADVISORY_LOCK = 0x63766174  # "cvat"


def log(msg):
    print(f"[cvat_twin.migrate] {msg}", file=sys.stderr, flush=True)


def connect(timeout=3):
    return psycopg2.connect(connect_timeout=timeout, **settings.POSTGRES)


def _ensure_table(cur):
    cur.execute(
        """
        CREATE TABLE IF NOT EXISTS django_migrations (
            id serial PRIMARY KEY,
            app varchar(255) NOT NULL,
            name varchar(255) NOT NULL,
            applied timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def _applied(cur):
    cur.execute("SELECT to_regclass('public.django_migrations')")
    if cur.fetchone()[0] is None:
        return set()
    cur.execute("SELECT name FROM django_migrations WHERE app = %s", (APP,))
    return {row[0] for row in cur.fetchall()}


def cmd_wait(timeout):
    target = f"{settings.POSTGRES['host']}:{settings.POSTGRES['port']}"
    deadline = time.monotonic() + timeout
    last_log = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            connect(timeout=2).close()
            log(f"{target} accepts connections (attempt {attempt})")
            return 0
        except psycopg2.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            now = time.monotonic()
            if now >= deadline:
                log(f"gave up waiting for {target} after {timeout:.0f} s: {reason}")
                return 1
            if now - last_log >= 5 or attempt == 1:
                log(f"waiting for {target}: {reason}")
                last_log = now
            time.sleep(1)


def cmd_apply():
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
            _ensure_table(cur)
            done = _applied(cur)
            pending = [(n, sql) for n, sql in MIGRATIONS if n not in done]
            if not pending:
                log("No migrations to apply.")
            for name, sql in pending:
                log(f"Applying {APP}.{name}...")
                cur.execute(sql)
                cur.execute(
                    "INSERT INTO django_migrations (app, name) VALUES (%s, %s)", (APP, name)
                )
    finally:
        conn.close()
    return 0


def cmd_check():
    try:
        conn = connect()
    except psycopg2.OperationalError as exc:
        log(
            f"database unavailable: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
        )
        return 1
    try:
        with conn.cursor() as cur:
            done = _applied(cur)
    finally:
        conn.close()
    pending = [n for n, _ in MIGRATIONS if n not in done]
    if pending:
        log(f"unapplied migrations: {', '.join(pending)}")
        return 1
    return 0


def cmd_ping():
    try:
        connect().close()
    except psycopg2.OperationalError as exc:
        log(f"database unavailable: {exc}")
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cvat_twin.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    p_wait = sub.add_parser("wait")
    p_wait.add_argument("--timeout", type=float, default=120.0)
    sub.add_parser("apply")
    sub.add_parser("check")
    sub.add_parser("ping")
    args = parser.parse_args(argv)
    if args.command == "wait":
        return cmd_wait(args.timeout)
    return {"apply": cmd_apply, "check": cmd_check, "ping": cmd_ping}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
