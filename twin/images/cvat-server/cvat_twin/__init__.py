"""criobe-verify twin of the CVAT v2.29.0 backend (server API subset, entrypoint helpers)."""

import os

# CVAT_TWIN_VERSION lets a fault pretend an upgraded server (about, the sender's User-Agent).
CVAT_VERSION = os.environ.get("CVAT_TWIN_VERSION") or "2.29.0"
