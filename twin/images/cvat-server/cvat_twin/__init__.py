"""criobe-verify twin of the CVAT v2.29.0 backend (server API subset, entrypoint helpers)."""

CVAT_VERSION = "2.29.0"
