"""Bring a CRIOBE checkout up and down the way the install guide does.

    >>> stack = ComposeStack.for_twin()
    >>> " ".join(stack.command("up", "-d"))  # doctest: +ELLIPSIS
    'docker compose --project-directory .../twin -p cvat -f .../twin/docker-compose.yml ...'

The guide starts the stack in two steps with three files: first `up -d --build bridge
cvat_server cvat_worker_webhooks` (so the bridge overlay's SMOKESCREEN_OPTS and extra_hosts
are merged into CVAT's containers), then `up -d` for the rest. The twin adds the CI overlay
docker-compose.ci.yml last, which only swaps images for local builds.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from criobe_verify.paths import CI_OVERLAY, TWIN_DIR

log = logging.getLogger("criobe_verify")

GUIDE_FILES = (
    "docker-compose.yml",
    "bridge/docker-compose.bridge.yml",
    "components/serverless/docker-compose.serverless.yml",
)
FIRST_STEP_SERVICES = ("bridge", "cvat_server", "cvat_worker_webhooks")
# Containers that only one of the guide's overlays creates: a missing one usually means that
# file was left out of the -f list.
OVERLAY_OF = {
    "bridge": "bridge/docker-compose.bridge.yml",
    "nuclio": "components/serverless/docker-compose.serverless.yml",
}


class ComposeError(RuntimeError):
    pass


def host_extra_ca(directory: Path = Path("/usr/local/share/ca-certificates")) -> str:
    """The CAs this machine trusts beyond the distribution's (an HTTPS-intercepting proxy's):
    the twin's image builds fetch from PyPI and must trust them too; "" where there are none."""
    return "".join(p.read_text() for p in sorted(directory.glob("*.crt")) if p.is_file())


@dataclass
class ComposeStack:
    directory: Path
    files: tuple[Path, ...]
    project: str = "cvat"
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_checkout(cls, directory: str | Path, project: str = "cvat") -> ComposeStack:
        directory = Path(directory).resolve()
        missing = [f for f in GUIDE_FILES if not (directory / f).is_file()]
        if missing:
            raise ComposeError(
                f"{directory} is not a CRIOBE checkout: missing {', '.join(missing)} "
                "(clone with --recurse-submodules so bridge/ is there)"
            )
        return cls(directory, tuple(directory / f for f in GUIDE_FILES), project)

    @classmethod
    def for_twin(cls, extra_files: tuple[Path, ...] = ()) -> ComposeStack:
        stack = cls.for_checkout(TWIN_DIR)
        stack.files = (*stack.files, CI_OVERLAY, *extra_files)
        stack.env.setdefault("BASE_IMAGE", os.environ.get("BASE_IMAGE", "debian:bookworm-slim"))
        stack.env.setdefault("EXTRA_CA_CERT", os.environ.get("EXTRA_CA_CERT") or host_extra_ca())
        return stack

    def command(self, *args: str) -> list[str]:
        cmd = ["docker", "compose", "--project-directory", str(self.directory), "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(f)]
        return cmd + list(args)

    def run(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess:
        cmd = self.command(*args)
        log.info("$ %s", " ".join(cmd))
        proc = subprocess.run(
            cmd,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
            raise ComposeError(
                f"`docker compose {' '.join(args)}` exited {proc.returncode} in {self.directory}:\n"
                f"{tail}"
            )
        return proc

    def up_like_the_guide(self, build: bool = False, timeout: float = 1800) -> None:
        """The guide's two steps. `build` first builds every image (the twin's sources change)."""
        if build:
            self.run("build", timeout=timeout)
        self.run("up", "-d", "--build", *FIRST_STEP_SERVICES, timeout=timeout)
        self.run("up", "-d", timeout=timeout)

    def down(self, volumes: bool = False, timeout: float = 300) -> None:
        args = ["down", "--remove-orphans"]
        if volumes:
            args.append("--volumes")
        self.run(*args, timeout=timeout)


def guide_command(*args: str) -> str:
    """The guide's compose command line, for a failure message's Fix: part."""
    files = " ".join(f"-f {f}" for f in GUIDE_FILES)
    return f"docker compose {files} {' '.join(args)}"
