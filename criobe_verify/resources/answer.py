"""A function's answer on the sample quadrat, judged on its raw form (CVAT pads skeletons,
replaces bad confidences and drops unknown labels, which would hide defects): the output
contract, accuracy against the ground truth, the golden answer; and the diagnosis of each way
it can be wrong.

    answer = answers[profile_function]          # asked once per run, shared by the checks
    expect(answer.ok, answer.why_no_answer)
    problems = answer.contract_problems()
    expect(not problems, lambda: answer.why_breaks_contract(problems))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from criobe_verify.accuracy import (
    grid_lines,
    line_mask,
    match_corals,
    mean_abs_error,
    point_errors,
    skeleton_points,
)
from criobe_verify.answer_drift import Tolerances, image_png, record_changes, record_of
from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.overlay import draw_shapes, draw_truth, side_by_side
from criobe_verify.paths import inside_installed_package
from criobe_verify.profile import Function, Profile
from criobe_verify.quadrat import GENERA, lattice_of_elements
from criobe_verify.shapes import (
    CORNER_LABEL,
    GRID_LABEL,
    coral_problems,
    corner_problems,
    grid_problems,
    inpaint_problems,
    interactor_problems,
)

ROLE_WHAT = {
    "corners": "the quadrat's 4 corners",
    "grid": "the 117 grid points",
    "inpaint": "the grid-free image",
    "corals": "the coral colonies",
    "interactor": "SAM's image embedding",
}


def meaningful(sample: Any, profile: Profile) -> bool:
    """Whether the sample can judge these functions' accuracy: a lab's photo always; the
    synthetic quadrat only the twin's functions, made for it (real models learnt real photos)."""
    return not sample.synthetic or profile.inference.synthetic_sample


def contract_problems(fn, data, sample, profile) -> list[str]:
    size = sample.stage_size(fn.role)
    if fn.role == "corners":
        problems = corner_problems(data, size)
    elif fn.role == "grid":
        problems = grid_problems(data, size)
    elif fn.role == "corals":
        problems = coral_problems(data, size, GENERA, profile.inference.coral_output)
    elif fn.role == "inpaint":
        problems, _ = inpaint_problems(data, size, profile.inference.lama_response)
    else:
        problems = interactor_problems(data)
    if not meaningful(sample, profile) and fn.role in ("corners", "grid"):
        # A real model may find nothing on the synthetic quadrat: only the form is judged.
        label = CORNER_LABEL if fn.role == "corners" else GRID_LABEL
        problems = [p for p in problems if not p.startswith(f"0 {label} skeletons")]
    return problems


def _overlay(fn, data, sample) -> str | None:
    stage = {"corners": "photo", "grid": "rectified", "inpaint": "rectified"}.get(
        fn.role, "grid_free"
    )
    if fn.role == "interactor":
        return None
    image = sample.image(stage)
    if fn.role == "inpaint":
        _, out = inpaint_problems(data, image.size, "image-b64-png")
        predicted = out.convert("RGB") if out is not None else image
    else:
        predicted = draw_shapes(image, data if isinstance(data, list) else [])
    t = sample.truth
    truth = {
        "corners": lambda: draw_truth(sample.image("photo"), points=t.corners),
        "grid": lambda: draw_truth(image, points=t.grid),
        "inpaint": lambda: sample.image("grid_free"),
        "corals": lambda: draw_truth(image, polygons=[(c.genus, c.polygon) for c in t.corals]),
    }[fn.role]()
    return side_by_side(predicted, truth)


def accuracy_problems(fn, data, sample, profile) -> tuple[list[str], str]:
    """(problems, what was measured) against the ground truth."""
    t, limits = sample.truth, profile.inference
    if fn.role == "corners":
        errors = point_errors(skeleton_points(data, CORNER_LABEL), t.corners)
        worst = max(errors.values())
        measured = "corner errors " + ", ".join(f"{k}: {v:.1f} px" for k, v in errors.items())
        if worst > limits.corner_error_px_max:
            return [
                f"{measured}; worst {worst:.1f} px > {limits.corner_error_px_max:g} px"
            ], measured
        return [], measured
    if fn.role == "grid":
        errors = point_errors(skeleton_points(data, GRID_LABEL), t.grid)
        mean = sum(errors.values()) / len(errors)
        far = sorted(errors, key=errors.get, reverse=True)[:3]
        measured = (
            f"grid mean error {mean:.1f} px (worst elements "
            + ", ".join(f"{k}: {errors[k]:.1f}" for k in far)
            + ")"
        )
        if mean > limits.grid_mean_error_px_max:
            return [f"{measured} > {limits.grid_mean_error_px_max:g} px, per element id"], measured
        return [], measured
    if fn.role == "corals":
        matches, extra = match_corals(data, [(c.genus, c.polygon) for c in t.corals])
        measured = (
            "coral IoU "
            + ", ".join(
                f"{m.genus} {m.iou:.2f}"
                + ("" if m.found_genus in (m.genus, None) else f" (as {m.found_genus})")
                for m in matches
            )
            + (f"; {extra} shape(s) matching no colony" if extra else "")
        )
        bad = [m for m in matches if m.iou < limits.coral_iou_min or m.found_genus != m.genus]
        if bad:
            return [
                f"{measured}: {len(bad)} of {len(matches)} colonies below IoU "
                f"{limits.coral_iou_min:g} or of another genus"
            ], measured
        return [], measured
    if fn.role == "inpaint":
        _, out = inpaint_problems(data, t.rectified_size, profile.inference.lama_response)
        lines = grid_lines(t.grid, lattice_of_elements())
        mask = line_mask(t.rectified_size, lines, width=8)
        truth = sample.image("grid_free")
        before = mean_abs_error(sample.image("rectified"), truth, mask)
        after = mean_abs_error(out, truth, mask)
        measured = (
            f"string pixels' error to the grid-free image: {before:.1f} before, {after:.1f} after"
        )
        if after > before * 0.5:
            return [f"{measured}: the strings were not removed (expected at most half)"], measured
        return [], measured
    return [], "no ground truth for this role"


def golden_drift(fn, now: dict, golden: dict, tolerances: Tolerances) -> list[str]:
    """How this answer's record differs from a golden one, one line each (empty: the same);
    a golden file of an older release has no `role`: its function's is meant."""
    recorded = {"role": fn.role, **golden}
    changes = record_changes(fn.name, "the sample", recorded, now, tolerances)
    return [c.line for c in changes if c.finding]


class FunctionAnswer:
    """A function's first answer of the run on the image of its pipeline stage."""

    def __init__(self, fn: Function, call: Any, sample: Any, profile: Profile) -> None:
        self.fn, self.call, self.sample, self.profile = fn, call, sample, profile
        self.container = f"nuclio-nuclio-{fn.name}"

    @property
    def ok(self) -> bool:
        return self.call.status == 200 and self.call.data is not None

    @property
    def data(self) -> Any:
        return self.call.data

    def contract_problems(self) -> list[str]:
        return contract_problems(self.fn, self.data, self.sample, self.profile)

    def overlay(self) -> tuple[str, str] | None:
        """(picture, title): the answer drawn over its image beside the ground truth."""
        picture = _overlay(self.fn, self.data, self.sample)
        title = f"{self.fn.name}: its answer (left) and the ground truth (right)"
        return (picture, title) if picture else None

    def require_judgeable(self) -> None:
        """Skip, saying how to judge it, where the sample says nothing of this accuracy."""
        if not meaningful(self.sample, self.profile):
            pytest.skip(
                "no --sample-image given: the synthetic sample says nothing about real "
                "models' accuracy; pass --sample-image and --ground-truth (the CRIOBE "
                "test-sample export works)"
            )

    def accuracy(self) -> tuple[list[str], str]:
        """(problems, what was measured) against the ground truth."""
        return accuracy_problems(self.fn, self.data, self.sample, self.profile)

    def digest(self) -> dict:
        """What a golden answer or a baseline keeps of it (criobe_verify/answer_drift.py)."""
        return record_of(self.fn.role, self.data)

    def kept(self) -> tuple[str, str, dict, bytes | None]:
        """(function, image, record, image file) as a baseline keeps this answer."""
        png = image_png(self.fn.role, self.data)
        return self.fn.name, self.sample.key, self.digest(), png

    def drift_from(self, golden: dict) -> list[str]:
        return golden_drift(self.fn, self.digest(), golden, Tolerances.of(self.profile))

    # -- diagnoses ----------------------------------------------------------------------

    def why_no_answer(self) -> Diagnosis:
        return Diagnosis(
            self.container,
            f"answered {self.call.status} to {self.sample.name} ({ROLE_WHAT[self.fn.role]} "
            "expected)",
            observed=self.call.text[:500],
            expected="200 with a JSON answer",
            consequence=f"the pipeline stage of {self.fn.name} fails on a real image",
            fix=f"docker logs {self.container} (Nuclio logs the handler's exception)",
        )

    def why_breaks_contract(self, problems: list[str]) -> Diagnosis:
        more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
        return Diagnosis(
            self.container,
            f"its answer on {self.sample.name} breaks the output contract",
            observed="; ".join(problems[:6]) + more,
            consequence="CVAT stores something else than the function meant (it pads "
            "skeletons, drops labels and confidences it cannot use), and the bridge's next "
            "stage works on it",
            fix=f"the handler of {self.fn.name} (serverless/.../main.py)",
        )

    def why_inaccurate(self, problems: list[str]) -> Diagnosis:
        return Diagnosis(
            self.container,
            f"is off on {self.sample.name}",
            observed=problems[0],
            expected="within the profile's [inference] thresholds",
            consequence="the warp, the grid and the coral cover the lab reads are wrong",
            fix=f"the model or handler of {self.fn.name}; or the thresholds in the profile",
        )

    def why_drifted(self, drift: list[str], path: Path) -> Diagnosis:
        return Diagnosis(
            self.container,
            f"its answer on {self.sample.name} drifted from the recorded golden answer",
            observed=drift[0],
            expected=f"the answer recorded in {path}",
            consequence="the model or its pre/post-processing changed: annotations made "
            "before and after this change differ",
            fix="find what changed (image, weights, thresholds); if intended, record a new "
            "golden with --update-golden",
        )


class Answers:
    """Each function's answer on the sample, asked once per run (functions.answer keeps it)."""

    def __init__(self, functions: Any, sample: Any, profile: Profile) -> None:
        self.functions, self.sample, self.profile = functions, sample, profile

    def __getitem__(self, fn: Function) -> FunctionAnswer:
        if fn.optional and self.functions.dashboard.function(fn.name) is None:
            not_asked(f"{fn.name}: optional in the profile and not deployed")
        call = self.functions.answer(fn.name, self.sample.request(fn.role), self.sample.key)
        return FunctionAnswer(fn, call, self.sample, self.profile)


class Golden:
    """The functions' recorded answers on the committed sample ([inference] golden_dir)."""

    def __init__(self, profile: Profile, update: bool) -> None:
        self.directory, self.update = profile.golden_dir, update

    def path(self, fn: Function) -> Path:
        return self.directory / f"{fn.name}.json"

    def recorded(self, answer: FunctionAnswer) -> dict:
        """The golden answer to compare with; with --update-golden, this answer, recorded
        (never into an installed package). Skips where there is none to compare with."""
        if not answer.sample.synthetic:
            # A lab's own photo is judged by its ground truth (accuracy) instead: nothing is
            # left unverified.
            not_asked("golden answers are recorded on the committed sample only")
        path = self.path(answer.fn)
        if self.update:
            if inside_installed_package(path):
                pytest.fail(
                    f"--update-golden: {path} is inside the installed package", pytrace=False
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(answer.digest(), sort_keys=True) + "\n")
        if not path.is_file():
            pytest.skip(
                f"no golden answer recorded for {answer.fn.name} ({path}): run with --update-golden"
            )
        return json.loads(path.read_text())
