"""criobe-verify twin of the CRIOBE bridge: the ASGI entry ``main:app`` (FastAPI, served by
uvicorn on 0.0.0.0:${BRIDGE_PORT:-8000}), configured from bridge/.env (env_file):

    python3 -m uvicorn main:app --host 0.0.0.0 --port 8000

Endpoints, settings and the twin's knobs: twin/bridge/README.md and criobe_bridge/app.py.
"""

from criobe_bridge.app import create_app

app = create_app()
