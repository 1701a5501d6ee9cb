"""Entry point of the CVAT API twin (supervisord program `uvicorn` in supervisord/server.conf)."""

import sys

from cvat_twin.server import main

if __name__ == "__main__":
    sys.exit(main())
