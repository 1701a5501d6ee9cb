"""The guide's Step 6 done by the bring-up: the Nuclio project `cvat` and the profile's
functions deployed on cvat_cvat, bounded waits with progress, and undone by the teardown.

    deployed = deploy_functions(profile, checkout, twin=True)   # builds the twin's images first
    ...
    undeploy(profile, deployed)

With `[nuclio] deploy = "dashboard"` (the guide's Windows path) each function.yaml is posted
to the dashboard with its prebuilt `spec.image`; with `deploy = "nuctl"` the guide's own
`nuctl deploy --project-name cvat --path <dir> --platform local` runs, when nuctl is on PATH.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from criobe_verify.compose import ComposeError, host_extra_ca
from criobe_verify.nuclio import Dashboard, DashboardError, function_config
from criobe_verify.paths import TWIN_DIR
from criobe_verify.profile import Profile
from criobe_verify.waiting import WaitTimeout

log = logging.getLogger("criobe_verify")
TWIN_BUILD = TWIN_DIR / "serverless" / "build.sh"


def _function_dir(checkout: Path, path: str, name: str) -> Path:
    directory = checkout / path
    if not (directory / "function.yaml").is_file():
        raise ComposeError(
            f"function {name}: no function.yaml in {directory} (profile [[functions]] path)"
        )
    return directory


def build_twin_image(directory: Path) -> str:
    """The twin's function image from its directory (twin/serverless/build.sh)."""
    env = {**os.environ}
    env.setdefault("EXTRA_CA_CERT", host_extra_ca())
    proc = subprocess.run(
        ["bash", str(TWIN_BUILD), str(directory)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if proc.returncode != 0:
        raise ComposeError(
            f"building the twin's function image from {directory} failed: "
            f"{(proc.stderr or proc.stdout).strip()[-1500:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


def _runs_image(container: str, image: str) -> bool:
    import docker

    client = docker.from_env(timeout=30)
    try:
        return client.containers.get(container).image.id == client.images.get(image).id
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


def _nuctl(directory: Path, project: str) -> None:
    if not shutil.which("nuctl"):
        raise ComposeError(
            'the profile deploys with nuctl ([nuclio] deploy = "nuctl") but nuctl is not on '
            'PATH; install nuctl 1.13.0 (it must match the dashboard) or deploy = "dashboard"'
        )
    cmd = ["nuctl", "deploy", "--project-name", project, "--path", str(directory),
           "--platform", "local"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise ComposeError(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr[-1500:]}")


def deploy_functions(profile: Profile, checkout: Path, twin: bool) -> dict[str, Any]:
    """Create the project and deploy every profile function that is not deployed yet."""
    if not profile.functions:
        return {"project_created": False, "deployed": []}
    dashboard = Dashboard(profile.nuclio_url)
    project = profile.nuclio.project
    result: dict[str, Any] = {"project_created": False, "deployed": []}
    try:
        result["project_created"] = dashboard.ensure_project(project)
        present = dashboard.functions(project)
        for fn in profile.functions:
            directory = _function_dir(checkout, fn.path, fn.name)
            ready = (present.get(fn.name, {}).get("status") or {}).get("state") == "ready"
            if twin:
                image = build_twin_image(directory)
                if ready and _runs_image(fn.container, image):
                    continue  # already deployed from this very build
            elif ready:
                continue  # the lab's own deployment: use it as it is
            log.info("deploying function %s from %s", fn.name, directory)
            if profile.nuclio.deploy == "nuctl":
                _nuctl(directory, project)
            else:
                dashboard.deploy(function_config(directory / "function.yaml", project))
            if fn.name not in present:
                result["deployed"].append(fn.name)
        dashboard.wait_ready([f.name for f in profile.functions], profile.nuclio.ready_timeout_s)
    except (DashboardError, WaitTimeout) as exc:
        raise ComposeError(str(exc)) from None
    finally:
        dashboard.close()
    return result


def undeploy(profile: Profile, deployed: dict[str, Any]) -> None:
    """Delete what deploy_functions created (the project only if it made it)."""
    dashboard = Dashboard(profile.nuclio_url)
    try:
        for name in deployed.get("deployed", []):
            dashboard.delete(name)
        if deployed.get("project_created"):
            dashboard.delete_project(profile.nuclio.project)
    finally:
        dashboard.close()
