"""criobe-verify twin of the CRIOBE bridge: CVAT webhooks -> Nuclio functions -> new tasks.

Modules: settings (env), app (routes), events (signatures, which events to act on), worker
(background queue), pipeline (detect, crop/warp, grid removal), cvat (cvat-sdk session),
functions (Nuclio dashboard and function calls, detector answers to shapes), warp (the
perspective warp), logs (stdout logging without secrets). main.py at the top of the image
holds the ASGI entry ``main:app``.
"""
