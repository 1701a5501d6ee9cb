"""criobe-verify: checks that a CRIOBE annotation stack (CVAT 2.29.0, Nuclio, bridge) works."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
