"""The project's own tests. They run from the checkout, so they may read it as such."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
