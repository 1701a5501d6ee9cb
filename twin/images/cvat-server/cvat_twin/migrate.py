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

# The engine's tables (users, tokens, sessions, projects, labels, tasks, data, jobs,
# annotations, webhooks, deliveries). Deletes cascade like CVAT's foreign keys.
_SCHEMA_0002 = """
CREATE TABLE twin_user (
    id serial PRIMARY KEY,
    username varchar(150) NOT NULL UNIQUE,
    email varchar(254) NOT NULL DEFAULT '',
    first_name varchar(150) NOT NULL DEFAULT '',
    last_name varchar(150) NOT NULL DEFAULT '',
    password varchar(128) NOT NULL,
    is_staff boolean NOT NULL DEFAULT false,
    is_superuser boolean NOT NULL DEFAULT false,
    is_active boolean NOT NULL DEFAULT true,
    last_login timestamptz NULL,
    date_joined timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE twin_token (
    key varchar(40) PRIMARY KEY,
    user_id integer NOT NULL UNIQUE REFERENCES twin_user(id) ON DELETE CASCADE,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE twin_session (
    key varchar(40) PRIMARY KEY,
    user_id integer NOT NULL REFERENCES twin_user(id) ON DELETE CASCADE,
    expire_date timestamptz NOT NULL
);
CREATE TABLE twin_project (
    id serial PRIMARY KEY,
    name varchar(256) NOT NULL,
    owner_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    assignee_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    bug_tracker varchar(2000) NOT NULL DEFAULT '',
    status varchar(32) NOT NULL DEFAULT 'annotation',
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
CREATE TABLE twin_task (
    id serial PRIMARY KEY,
    name varchar(256) NOT NULL,
    project_id integer NULL REFERENCES twin_project(id) ON DELETE CASCADE,
    owner_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    assignee_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    bug_tracker varchar(2000) NOT NULL DEFAULT '',
    mode varchar(32) NOT NULL DEFAULT '',
    overlap integer NULL,
    segment_size integer NOT NULL DEFAULT 0,
    status varchar(32) NOT NULL DEFAULT 'annotation',
    subset varchar(64) NOT NULL DEFAULT '',
    data_id integer NULL,
    size integer NULL,
    image_quality integer NULL,
    chunk_size integer NULL,
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
CREATE TABLE twin_label (
    id serial PRIMARY KEY,
    project_id integer NULL REFERENCES twin_project(id) ON DELETE CASCADE,
    task_id integer NULL REFERENCES twin_task(id) ON DELETE CASCADE,
    parent_id integer NULL REFERENCES twin_label(id) ON DELETE CASCADE,
    name varchar(64) NOT NULL,
    color varchar(8) NOT NULL DEFAULT '',
    type varchar(32) NOT NULL DEFAULT 'any',
    svg text NULL
);
CREATE TABLE twin_attribute (
    id serial PRIMARY KEY,
    label_id integer NOT NULL REFERENCES twin_label(id) ON DELETE CASCADE,
    name varchar(64) NOT NULL,
    mutable boolean NOT NULL DEFAULT false,
    input_type varchar(16) NOT NULL DEFAULT 'text',
    default_value varchar(128) NOT NULL DEFAULT '',
    "values" jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE twin_frame (
    task_id integer NOT NULL REFERENCES twin_task(id) ON DELETE CASCADE,
    frame integer NOT NULL,
    name varchar(1024) NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    mime varchar(64) NOT NULL,
    content bytea NOT NULL,
    PRIMARY KEY (task_id, frame)
);
CREATE TABLE twin_upload (
    id serial PRIMARY KEY,
    task_id integer NOT NULL REFERENCES twin_task(id) ON DELETE CASCADE,
    name varchar(1024) NOT NULL,
    content bytea NOT NULL
);
CREATE TABLE twin_request (
    id varchar(128) PRIMARY KEY,
    type varchar(64) NOT NULL,
    project_id integer NULL,
    task_id integer NULL,
    job_id integer NULL,
    owner_id integer NULL REFERENCES twin_user(id) ON DELETE CASCADE,
    status varchar(16) NOT NULL,
    message text NOT NULL DEFAULT '',
    created_date timestamptz NOT NULL,
    started_date timestamptz NULL,
    finished_date timestamptz NULL,
    expiry_date timestamptz NULL
);
CREATE TABLE twin_job (
    id serial PRIMARY KEY,
    task_id integer NOT NULL REFERENCES twin_task(id) ON DELETE CASCADE,
    assignee_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    stage varchar(32) NOT NULL DEFAULT 'annotation',
    state varchar(32) NOT NULL DEFAULT 'new',
    status varchar(32) NOT NULL DEFAULT 'annotation',
    type varchar(32) NOT NULL DEFAULT 'annotation',
    start_frame integer NOT NULL,
    stop_frame integer NOT NULL,
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
CREATE TABLE twin_shape (
    id serial PRIMARY KEY,
    job_id integer NOT NULL REFERENCES twin_job(id) ON DELETE CASCADE,
    parent_id integer NULL REFERENCES twin_shape(id) ON DELETE CASCADE,
    kind varchar(8) NOT NULL DEFAULT 'shape',
    type varchar(16) NOT NULL DEFAULT '',
    frame integer NOT NULL,
    label_id integer NOT NULL REFERENCES twin_label(id) ON DELETE CASCADE,
    group_id integer NOT NULL DEFAULT 0,
    source varchar(16) NOT NULL DEFAULT 'manual',
    occluded boolean NOT NULL DEFAULT false,
    outside boolean NOT NULL DEFAULT false,
    z_order integer NOT NULL DEFAULT 0,
    rotation double precision NOT NULL DEFAULT 0,
    points jsonb NOT NULL DEFAULT '[]',
    attributes jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE twin_webhook (
    id serial PRIMARY KEY,
    target_url varchar(8192) NOT NULL,
    description varchar(128) NOT NULL DEFAULT '',
    type varchar(16) NOT NULL,
    content_type varchar(64) NOT NULL DEFAULT 'application/json',
    secret varchar(64) NOT NULL DEFAULT '',
    is_active boolean NOT NULL DEFAULT true,
    enable_ssl boolean NOT NULL DEFAULT true,
    events jsonb NOT NULL DEFAULT '[]',
    owner_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    project_id integer NULL REFERENCES twin_project(id) ON DELETE CASCADE,
    last_status integer NULL,
    last_delivery_date timestamptz NULL,
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
CREATE TABLE twin_delivery (
    id serial PRIMARY KEY,
    webhook_id integer NOT NULL REFERENCES twin_webhook(id) ON DELETE CASCADE,
    event varchar(64) NOT NULL,
    status_code integer NULL,
    redelivery boolean NOT NULL DEFAULT false,
    changed_fields varchar(4096) NOT NULL DEFAULT '',
    request jsonb NOT NULL,
    response text NULL,
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
"""

# CVAT's privileges are django.contrib.auth groups (cvat/apps/iam: IAM_ROLES admin, user,
# worker), not the is_staff/is_superuser flags. The tables keep Django's names and auth_user
# is a view of twin_user (simple, so updatable), so SQL written against a real cvat_db, such
# as a fault taking a user out of `admin`, runs unchanged here. Users from before this
# migration get what CVAT's post_save signal gives at creation.
_SCHEMA_0003 = """
CREATE TABLE auth_group (
    id serial PRIMARY KEY,
    name varchar(150) NOT NULL UNIQUE
);
CREATE TABLE auth_user_groups (
    id bigserial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES twin_user(id) ON DELETE CASCADE,
    group_id integer NOT NULL REFERENCES auth_group(id) ON DELETE CASCADE,
    UNIQUE (user_id, group_id)
);
INSERT INTO auth_group (name) VALUES ('admin'), ('user'), ('worker');
INSERT INTO auth_user_groups (user_id, group_id)
    SELECT u.id, g.id FROM twin_user u JOIN auth_group g
    ON g.name = CASE WHEN u.is_superuser AND u.is_staff THEN 'admin' ELSE 'user' END;
CREATE VIEW auth_user AS SELECT * FROM twin_user;
"""

# CVAT's LabeledShape.group is nullable: auto-annotation writes null.
_SCHEMA_0004 = "ALTER TABLE twin_shape ALTER COLUMN group_id DROP NOT NULL;"

# Organizations (cvat/apps/organizations): an object made with an organization context
# (X-Organization, ?org=, ?org_id=) belongs to it, one made without lives in its owner's
# sandbox (NULL). A project's or task's organization is SET NULL when the organization goes,
# a webhook's cascades (CVAT's foreign keys).
_SCHEMA_0005 = """
CREATE TABLE twin_organization (
    id serial PRIMARY KEY,
    slug varchar(16) NOT NULL UNIQUE,
    name varchar(64) NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    contact jsonb NOT NULL DEFAULT '{}',
    owner_id integer NULL REFERENCES twin_user(id) ON DELETE SET NULL,
    created_date timestamptz NOT NULL,
    updated_date timestamptz NOT NULL
);
CREATE TABLE twin_membership (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES twin_user(id) ON DELETE CASCADE,
    organization_id integer NOT NULL REFERENCES twin_organization(id) ON DELETE CASCADE,
    role varchar(16) NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    joined_date timestamptz NULL,
    UNIQUE (user_id, organization_id)
);
ALTER TABLE twin_project ADD COLUMN organization_id integer NULL
    REFERENCES twin_organization(id) ON DELETE SET NULL;
ALTER TABLE twin_task ADD COLUMN organization_id integer NULL
    REFERENCES twin_organization(id) ON DELETE SET NULL;
ALTER TABLE twin_webhook ADD COLUMN organization_id integer NULL
    REFERENCES twin_organization(id) ON DELETE CASCADE;
"""

# (name, SQL). Append only; never edit an applied one.
MIGRATIONS = [
    ("0001_initial", "SELECT 1"),
    ("0002_engine", _SCHEMA_0002),
    ("0003_groups", _SCHEMA_0003),
    ("0004_shape_group_null", _SCHEMA_0004),
    ("0005_organizations", _SCHEMA_0005),
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
