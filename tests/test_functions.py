"""Functions layer: the Nuclio side as CVAT and the bridge use it. The dashboard reports its
version, the project `cvat` exists, every expected function is deployed in it and `ready`
(its container's health and network are the containers and network layers' business), and
CVAT's own lambda listing shows the detectors with the profile's labels.

    pytest -m functions

Optional functions (SAM) absent from the stack are skipped with that reason; present ones
are checked like the others.
"""

from __future__ import annotations

import json

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail

pytestmark = [pytest.mark.functions, pytest.mark.guide("step-6")]

DEPLOY_FIX = (
    "nuctl deploy --project-name cvat --path ./serverless/<...>/nuclio/ --platform local "
    "(or import its function.yaml in the dashboard, project cvat)"
)


@check("functions/nuclio-version", policy=True)
def test_nuclio_dashboard_is_the_profiles_version(dashboard, profile):
    label = dashboard.versions().get("dashboard", {}).get("label")
    if label == profile.nuclio.version:
        return
    fail(
        Diagnosis(
            "nuclio",
            f"the dashboard reports version {label!r}",
            expected=f"{profile.nuclio.version!r} (profile {profile.name})",
            consequence="functions were verified with another Nuclio; nuctl must match the "
            "dashboard's version exactly",
            fix="image quay.io/nuclio/dashboard:1.13.0-amd64 in "
            "components/serverless/docker-compose.serverless.yml, or update the profile",
        )
    )


@check("functions/nuclio-project-exists")
def test_nuclio_project_exists(dashboard, profile):
    projects = dashboard.projects()
    if profile.nuclio.project in projects:
        return
    fail(
        Diagnosis(
            "nuclio",
            f"has no project {profile.nuclio.project!r}",
            observed=f"projects: {sorted(projects) or 'none'}",
            expected=f"project {profile.nuclio.project!r}",
            consequence="CVAT lists only that project's functions, and nuctl deploy into a "
            "missing project fails with 'Project does not exist'",
            fix=f"nuctl create project {profile.nuclio.project} --platform local",
        )
    )


@check("functions/deployed-and-ready")
def test_function_is_deployed_and_ready(
    expected_function, dashboard, project_functions, profile, depends_on
):
    fn = expected_function
    depends_on("functions/nuclio-project-exists")
    listed = project_functions()
    entry = listed.get(fn.name)
    if entry is None:
        if fn.optional:
            pytest.skip(f"{fn.name}: optional in profile {profile.name} and not deployed")
        anywhere = dashboard.function(fn.name)
        project = ((anywhere or {}).get("metadata", {}).get("labels") or {}).get(
            "nuclio.io/project-name"
        )
        fail(
            Diagnosis(
                "nuclio",
                f"function {fn.name} is not deployed in project {profile.nuclio.project!r}",
                observed=f"deployed in project {project!r}" if anywhere else "not deployed",
                expected=f"{fn.name} in project {profile.nuclio.project!r}",
                consequence=f"CVAT and the bridge cannot call {fn.name} ({fn.role})",
                fix=DEPLOY_FIX,
            )
        )
    status = entry.get("status") or {}
    if status.get("state") == "ready" and status.get("httpPort"):
        return
    fail(
        Diagnosis(
            "nuclio",
            f"function {fn.name} is {status.get('state')!r}",
            observed=(status.get("message") or "")[:300] or f"httpPort {status.get('httpPort')}",
            expected="'ready' with an httpPort",
            consequence=f"calls to {fn.name} fail",
            fix=f"docker logs nuclio-nuclio-{fn.name}; redeploy it ({DEPLOY_FIX})",
        )
    )


def _labels(function_entry: dict) -> set[str]:
    return {label["name"] for label in function_entry.get("labels_v2") or []}


@check("functions/cvat-lists-detector")
def test_cvat_lists_the_detector_with_its_labels(
    detector_function, cvat_lambda_functions, project_functions, depends_on
):
    """CVAT's /api/lambda/functions is what the bridge and the UI's auto-annotation see."""
    fn = detector_function
    depends_on("functions/deployed-and-ready")
    r = cvat_lambda_functions()
    if r.status_code != 200:
        fail(
            Diagnosis(
                "cvat_server",
                f"GET /api/lambda/functions answered {r.status_code}",
                observed=r.text[:300],
                expected="200 with the dashboard's functions",
                consequence="automatic annotation is unavailable in CVAT",
                fix="check CVAT_SERVERLESS and that cvat_server reaches nuclio:8070 "
                "(components/serverless/docker-compose.serverless.yml)",
            )
        )
    listed = {f["id"]: f for f in r.json()}
    deployed = project_functions().get(fn.name) or {}
    spec = json.loads(((deployed.get("metadata") or {}).get("annotations") or {}).get("spec", "[]"))
    wanted = {label["name"] for label in spec}
    entry = listed.get(fn.name)
    if entry is not None and _labels(entry) == wanted and wanted:
        return
    fail(
        Diagnosis(
            "cvat_server",
            "/api/lambda/functions "
            + ("does not list" if entry is None else f"lists {fn.name} with labels")
            + (f" {fn.name}" if entry is None else f" {sorted(_labels(entry))}"),
            observed=f"listed: {sorted(listed)}",
            expected=f"{fn.name} with labels {sorted(wanted)}",
            consequence="CVAT cannot map the function's labels onto the project's, so its "
            "predictions are dropped",
            fix="metadata.annotations.type and spec in the function's function.yaml",
        )
    )
