"""Settings read from the environment, with CVAT's names and defaults."""

import os


def env(name, default=""):
    return os.environ.get(name, default)


POSTGRES = {
    "host": env("CVAT_POSTGRES_HOST", "cvat_db"),
    "port": int(env("CVAT_POSTGRES_PORT", "5432") or 5432),
    "user": env("CVAT_POSTGRES_USER", "root"),
    "dbname": env("CVAT_POSTGRES_DBNAME", "cvat"),
    "password": env("CVAT_POSTGRES_PASSWORD", ""),
    "application_name": env("CVAT_POSTGRES_APPLICATION_NAME", "cvat"),
}

REDIS_INMEM_HOST = env("CVAT_REDIS_INMEM_HOST", "localhost")
REDIS_INMEM_PORT = int(env("CVAT_REDIS_INMEM_PORT", "6379") or 6379)
REDIS_INMEM_PASSWORD = env("CVAT_REDIS_INMEM_PASSWORD", "")


def redis_inmem_url():
    auth = f":{REDIS_INMEM_PASSWORD}@" if REDIS_INMEM_PASSWORD else ""
    return f"redis://{auth}{REDIS_INMEM_HOST}:{REDIS_INMEM_PORT}/0"


# cvat/settings/base.py: ALLOWED_HOSTS = os.environ.get('ALLOWED_HOSTS', 'localhost,127.0.0.1').split(',')
# (no stripping: "a, b" yields the pattern " b", which matches nothing, as in CVAT).
def allowed_hosts():
    return env("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")


SERVER_BIND = env("CVAT_TWIN_BIND", "0.0.0.0")
SERVER_PORT = int(env("CVAT_TWIN_PORT", "8080") or 8080)
