"""Entry point of the CVAT API twin (supervisor program `server`)."""

import sys

from cvat_twin.server import main

if __name__ == "__main__":
    sys.exit(main())
