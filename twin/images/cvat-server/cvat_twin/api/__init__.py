"""Endpoint modules of the CVAT API twin; importing this package registers them on
cvat_twin.server.ROUTER. Add new modules to the import list."""

from . import engine, iam, lambda_api, organizations, server_info, webhooks_api  # noqa: F401
