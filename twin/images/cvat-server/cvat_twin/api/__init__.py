"""Endpoint modules of the CVAT API twin; importing this package registers them on
cvat_twin.server.ROUTER. Add new modules to the import list."""

from . import server_info  # noqa: F401
