"""A folder laid out like a CRIOBE checkout, enough for --stack up to get past its input checks
(the install guide's three compose files, bridge/.env), with nothing to start in it."""

from __future__ import annotations

from pathlib import Path

from criobe_verify.compose import GUIDE_FILES

CREDENTIALS = "CVAT_USER=admin\nCVAT_PWD=Coral-Reef-2024!\n"


def fake_checkout(root: Path, bridge_env: str | None = CREDENTIALS) -> Path:
    """The checkout at root; bridge_env: bridge/.env's text (None: no bridge/.env)."""
    for name in GUIDE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("services: {}\n")
    if bridge_env is not None:
        (root / "bridge" / ".env").write_text(bridge_env)
    return root
