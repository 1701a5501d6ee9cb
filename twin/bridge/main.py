"""criobe-verify twin of the CRIOBE bridge (FastAPI, `main:app`).

Documented endpoints so far: GET /health (and POST /health, which a CVAT webhook ping sends)
-> 200 {"status": "healthy"}; FastAPI's own /docs and /openapi.json. The webhook endpoints
come later.

Configuration comes from bridge/.env (env_file). Both documented variable sets are read:
set A (CVAT_USER, CVAT_PWD) and set B (CVAT_USERNAME, CVAT_PASSWORD). Secrets are never logged.

Twin knob (not a CRIOBE setting), for faults: BRIDGE_TWIN_HEALTH_METHODS, the comma-separated
methods /health answers (default "GET,POST"). With "GET" a POST (what a CVAT webhook ping
sends) gets FastAPI's own 405 {"detail": "Method Not Allowed"}, as a GET-only route would:

    docker run -e BRIDGE_TWIN_HEALTH_METHODS=GET ... criobe-twin/bridge
"""

import logging
import os

from fastapi import FastAPI

log = logging.getLogger("bridge")


class Settings:
    def __init__(self, env=os.environ):
        self.cvat_url = env.get("CVAT_URL", "http://cvat-server:8080")
        self.cvat_user = env.get("CVAT_USER") or env.get("CVAT_USERNAME") or ""
        self.cvat_password = env.get("CVAT_PWD") or env.get("CVAT_PASSWORD") or ""
        self.webhook_secret = env.get("WEBHOOK_SECRET", "")
        self.cache_dir = env.get("CACHE_DIR", "/tmp/cvat_cache")
        self.auto_ann_timeout = int(env.get("AUTO_ANN_TIMEOUT", "900") or 900)
        self.nuclio_host = env.get("NUCLIO_HOST", "nuclio")
        self.nuclio_port = int(env.get("NUCLIO_PORT", "8070") or 8070)

    def describe(self):
        return (
            f"CVAT_URL={self.cvat_url} user={self.cvat_user or '(unset)'} "
            f"password={'(set)' if self.cvat_password else '(unset)'} "
            f"webhook_secret={'(set)' if self.webhook_secret else '(empty)'} "
            f"cache_dir={self.cache_dir} auto_ann_timeout={self.auto_ann_timeout}"
        )


settings = Settings()
app = FastAPI(title="CRIOBE bridge", description="CVAT webhooks -> Nuclio functions (twin)")


@app.on_event("startup")
def _startup():
    os.makedirs(settings.cache_dir, exist_ok=True)
    logging.getLogger("uvicorn.error").info("bridge settings: %s", settings.describe())


def health_methods(env=os.environ):
    """>>> health_methods({"BRIDGE_TWIN_HEALTH_METHODS": " get, POST ,"})
    ['GET', 'POST']
    """
    value = env.get("BRIDGE_TWIN_HEALTH_METHODS", "GET,POST")
    return [m.strip().upper() for m in value.split(",") if m.strip()] or ["GET", "POST"]


# Registered as an ordinary route with only these methods, so anything else is answered by
# FastAPI's router itself (405 with an Allow header), not by code of the twin.
@app.api_route("/health", methods=health_methods())
def health():
    return {"status": "healthy"}
