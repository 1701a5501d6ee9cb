"""The CRIOBE install guide's steps, which every check names with a marker.

    @pytest.mark.guide("step-8")
    def test_bridge_answers_through_smokescreen(...): ...

    >>> GUIDE_STEPS["step-4"].title
    'Create admin user'

The guide is `docs/setup/installation/cvat-nuclio.md` of Criobe/documentation (commit 11e8e0b,
the last with the single-page CVAT + Nuclio + bridge install): a prerequisites check, eight
numbered steps and a post-installation checklist. The report and the README map each step to
the checks that verify it; where the guide's own command is wrong, the check's note says why.
"""

from __future__ import annotations

from dataclasses import dataclass

GUIDE_SOURCE = "Criobe/documentation@11e8e0b:docs/setup/installation/cvat-nuclio.md"


@dataclass(frozen=True)
class GuideStep:
    id: str
    title: str
    # What the guide itself runs to check the step (where it does).
    guide_checks: str


GUIDE_STEPS: dict[str, GuideStep] = {
    s.id: s
    for s in (
        GuideStep(
            "prereq",
            "Prerequisites check",
            "docker --version; docker compose version; df -h (40+ GB); "
            "netstat: 8080, 8070, 8000, 5432, 6379 free",
        ),
        GuideStep("step-1", "Clone CVAT with bridge integration", "ls of the checkout"),
        GuideStep(
            "step-2",
            "Configure bridge service (bridge/.env)",
            "CVAT_URL, CVAT_USER, CVAT_PWD set",
        ),
        GuideStep(
            "step-3",
            "Deploy the stack (two-step, three-file compose)",
            "docker ps: every container Up with its ports",
        ),
        GuideStep("step-4", "Create admin user", "createsuperuser; same password as CVAT_PWD"),
        GuideStep("step-5", "Verify CVAT access", "curl -I http://localhost:8080/ → 200"),
        GuideStep(
            "step-6",
            "Deploy Nuclio functions (project cvat, network cvat_cvat)",
            "GET /api/functions: every function ready; docker inspect: on cvat_cvat",
        ),
        GuideStep(
            "step-7",
            "Test bridge service",
            "curl :8000/health; from bridge: curl cvat-server:8080/api/server/about and "
            "nuclio-nuclio-<fn>:8080",
        ),
        GuideStep(
            "step-8",
            "Configure network (Smokescreen, bridge.gateway)",
            "getent hosts bridge.gateway → 172.17.0.1; from cvat_server: curl "
            "bridge.gateway:8000/health",
        ),
        GuideStep(
            "post-install",
            "Post-installation verification",
            "curl about, nuclio /api/healthz, bridge /health; webhook ping shows 200",
        ),
    )
}


def guide_step(step_id: str) -> GuideStep:
    """The step, or a KeyError naming the known ids (a typo in a marker must not pass)."""
    try:
        return GUIDE_STEPS[step_id]
    except KeyError:
        raise KeyError(f"unknown guide step {step_id!r}; known: {', '.join(GUIDE_STEPS)}") from None


def checks_by_step(collection: dict[str, dict]) -> dict[str, list[str]]:
    """Checks by stable id (parameters folded) per guide step, from a run's collection."""
    by_step: dict[str, list[str]] = {step: [] for step in GUIDE_STEPS}
    for check_id, entry in collection.items():
        name = check_id.split("[", 1)[0]
        for step in entry.get("guide") or []:
            if name not in by_step[step]:
                by_step[step].append(name)
    return by_step


def markdown_table(collection: dict[str, dict]) -> str:
    """The README's table: each guide step, the guide's own check, the suite's checks."""
    lines = [
        "| step | the guide's own check | checks of this suite |",
        "|---|---|---|",
    ]
    for step, names in checks_by_step(collection).items():
        s = GUIDE_STEPS[step]
        checks = ", ".join(f"`{n}`" for n in names) or "(none yet)"
        lines.append(f"| {s.id}: {s.title} | {s.guide_checks} | {checks} |")
    return "\n".join(lines)


def _collect(profile: str) -> dict[str, dict]:
    """The suite's collection with the given profile, as the run state records it."""
    import pytest

    from criobe_verify.check import check_id_of
    from criobe_verify.cli import suite_args
    from criobe_verify.paths import CHECKS_DIR

    found: dict[str, dict] = {}

    class Grab:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(self, session: pytest.Session) -> None:
            for item in session.items:
                mark = item.get_closest_marker("guide")
                found[check_id_of(item)] = {"guide": list(mark.args) if mark else []}

    pytest.main(
        [*suite_args(), "--collect-only", "-q", f"--profile={profile}", "--phase=installed",
         str(CHECKS_DIR)],
        plugins=[Grab()],
    )  # fmt: skip
    preinstall: dict[str, dict] = {}
    found_before = dict(found)
    found.clear()
    pytest.main(
        [*suite_args(), "--collect-only", "-q", f"--profile={profile}", "--phase=preinstall",
         str(CHECKS_DIR)],
        plugins=[Grab()],
    )  # fmt: skip
    preinstall.update(found)
    return {**found_before, **preinstall}


if __name__ == "__main__":
    import contextlib
    import io
    import sys

    from criobe_verify.paths import PROFILES_DIR

    with contextlib.redirect_stdout(io.StringIO()):
        collection = _collect(str(PROFILES_DIR / "criobe.toml"))
    sys.stdout.write(markdown_table(collection) + "\n")
