"""The functions' answers in a baseline and their comparison (criobe_verify/answer_drift.py),
on the twin functions' recorded answers (fixtures/data/golden) and answers built from them:
identical answers are clean, corners moved by 4 px, a grid point, a coral genus, LaMa's image
and SAM's embedding that changed are each named (function, image, element, both values), and
`compare` of two baselines exits 1 on them, as for a functional flip."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path

import pytest

from criobe_verify.answer_drift import (
    Tolerances,
    answer_changes,
    image_png,
    record_changes,
    record_of,
)
from criobe_verify.baseline import FILE, answer_file, baseline_of, load_run, write_baseline
from criobe_verify.compare import compare
from criobe_verify.compare_report import html_page, text_table
from criobe_verify.paths import GOLDEN_DIR
from criobe_verify.profile import load_profile
from selftests import PROJECT_ROOT
from selftests.recorded_stack import RecordedStack
from selftests.test_baseline import DIGEST, SUMMARY

TWIN = load_profile(PROJECT_ROOT / "profiles" / "twin.toml")
ROLES = {f.name: f.role for f in TWIN.functions}
IMAGE = "Synthetic_2024_07.jpg"
CORNERS = "pth-yolo-gridcorners"


def recorded() -> dict[str, dict]:
    """Each twin function's recorded answer, as a record (the golden files keep no role)."""
    return {
        name: {"role": role, **json.loads((GOLDEN_DIR / f"{name}.json").read_text())}
        for name, role in ROLES.items()
    }


def answers(records: dict[str, dict], image: str = IMAGE) -> dict[str, dict[str, dict]]:
    return {fn: {image: copy.deepcopy(r)} for fn, r in records.items()}


def moved(record: dict, element: str, dx: float, dy: float = 0.0) -> dict:
    out = copy.deepcopy(record)
    for e in out["answer"][0]["elements"]:
        if e["label"] == element:
            e["points"] = [e["points"][0] + dx, e["points"][1] + dy]
    return out


def test_identical_answers_of_every_function_are_clean():
    same = answers(recorded())
    assert set(same) == set(ROLES) and len(ROLES) == 5
    assert answer_changes(same, copy.deepcopy(same), Tolerances()) == []


def test_corners_moved_by_4_px_are_named_with_both_positions():
    before = answers(recorded())
    after = copy.deepcopy(before)
    corner = after[CORNERS][IMAGE]
    for element in ("1", "2", "3", "4"):
        corner = moved(corner, element, 4)
    after[CORNERS][IMAGE] = corner
    changes = answer_changes(before, after, Tolerances.of(TWIN))
    assert [c.element for c in changes] == ["corner 1", "corner 2", "corner 3", "corner 4"]
    assert all(c.finding and c.function == CORNERS and c.image == IMAGE for c in changes)
    assert changes[0].line == (
        f"{CORNERS} on {IMAGE}: corner 1 (194.2, 83.8) → (198.2, 83.8): moved 4.0 px > 2 px"
    )


def test_a_grid_point_within_the_tolerance_is_the_same_and_beyond_it_is_named():
    grid = recorded()["pth-yolo-gridpose"]
    tol = Tolerances.of(TWIN)
    assert record_changes("gridpose", IMAGE, grid, moved(grid, "58", 1.5), tol) == []
    (change,) = record_changes("gridpose", IMAGE, grid, moved(grid, "58", 0, 3), tol)
    assert change.element == "grid point 58" and change.measure == "moved 3.0 px > 2 px"
    gone = copy.deepcopy(grid)
    gone["answer"][0]["elements"] = [e for e in gone["answer"][0]["elements"] if e["label"] != "7"]
    (missing,) = record_changes("gridpose", IMAGE, grid, gone, tol)
    assert (missing.element, missing.after, missing.finding) == ("grid point 7", "absent", True)


def test_a_coral_genus_whose_outline_changed_or_vanished_is_named_by_its_iou():
    corals = recorded()["pth-yolo-coralsegv4"]
    genera = sorted({s["label"] for s in corals["answer"]})
    shifted = copy.deepcopy(corals)
    target = genera[0]
    for s in shifted["answer"]:
        if s["label"] == target:  # 15 px to the right: the colony's outline moved
            s["points"] = [v + 15 if i % 2 == 0 else v for i, v in enumerate(s["points"])]
    changes = record_changes("coralsegv4", IMAGE, corals, shifted, Tolerances.of(TWIN))
    assert [c.element for c in changes] == [f"coral {target}"]
    assert changes[0].measure.startswith("IoU 0.") and changes[0].measure.endswith("< 0.97")
    without = copy.deepcopy(corals)
    without["answer"] = [s for s in without["answer"] if s["label"] != genera[-1]]
    (gone,) = record_changes("coralsegv4", IMAGE, corals, without, Tolerances())
    assert (gone.element, gone.after, gone.measure) == (
        f"coral {genera[-1]}", "absent", "IoU 0.000 < 0.97",
    )  # fmt: skip


def _png(shade: int, stripe: int | None = None) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (200, 100), (shade, shade, shade))
    if stripe is not None:  # a thin line left in: strings the model no longer removes
        ImageDraw.Draw(image).line([(0, 50), (199, 50)], fill=(stripe,) * 3, width=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _lama(png: bytes) -> dict:
    return record_of("inpaint", {"image": base64.b64encode(png).decode()})


def test_lamas_image_is_compared_by_the_share_of_changed_pixels(tmp_path):
    tol = Tolerances.of(TWIN)
    grey = _lama(_png(120))
    assert record_changes("lama", IMAGE, grey, _lama(_png(120)), tol) == []
    assert record_changes("lama", IMAGE, grey, _lama(_png(130)), tol) == []  # noise: ≤ 16
    (lighter,) = record_changes("lama", IMAGE, grey, _lama(_png(140)), tol)
    assert lighter.element == "image" and lighter.finding
    assert lighter.measure == (
        "100.0% of its pixels differ by more than 16 grey levels > 0.5% (64×64 thumbnail)"
    )
    # On the files beside the baselines the full images are compared: a thin string left in
    # (2% of the pixels) is seen.
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, png in ((before, _png(120)), (after, _png(120, stripe=0))):
        (folder / "answers").mkdir(parents=True)
        (folder / "answers" / "x.png").write_bytes(png)
    a, b = {**grey, "file": "answers/x.png"}, {**_lama(_png(120, 0)), "file": "answers/x.png"}
    (full,) = record_changes("lama", IMAGE, a, b, tol, before, after)
    assert full.measure == (
        "2.0% of its pixels differ by more than 16 grey levels > 0.5% (full image)"
    )
    assert image_png("inpaint", {"image": base64.b64encode(_png(1)).decode()}) == _png(1)
    assert image_png("corners", []) is None


def test_sams_embedding_means_moved_are_named():
    sam = recorded()["pth-facebookresearch-sam-vit-h"]
    nudged = copy.deepcopy(sam)
    nudged["channel_means"][3] += 0.005
    assert record_changes("sam", IMAGE, sam, nudged, Tolerances()) == []
    nudged["channel_means"][3] += 0.05
    (change,) = record_changes("sam", IMAGE, sam, nudged, Tolerances())
    assert change.element == "embedding" and "0.0550 > 0.01" in change.measure


def test_a_function_or_an_image_on_one_side_only_is_information():
    before = answers(recorded())
    after = copy.deepcopy(before)
    del after["pth-lama"]
    after[CORNERS]["Q2.jpg"] = after[CORNERS][IMAGE]
    changes = answer_changes(before, after, Tolerances())
    assert [(c.function, c.image, c.finding) for c in changes] == [
        ("pth-lama", IMAGE, False), (CORNERS, "Q2.jpg", False),
    ]  # fmt: skip


def test_the_profiles_golden_tolerances_are_the_comparisons():
    assert Tolerances.of(TWIN) == Tolerances(2.0, 0.97, 0.005)


# --- in a baseline and in compare ---------------------------------------------------------


def summary_with(records: dict[str, dict], image: str = IMAGE) -> dict:
    """The recorded twin summary with each function's inference/answers-sample entry keeping
    its answer, as the check keeps it (fixtures/report.py: report_answer)."""
    summary = copy.deepcopy(SUMMARY)
    for fn, record in records.items():
        entry = {"outcome": "passed", "kind": "functional", "layer": "inference"}
        entry["answer"] = {"function": fn, "image": image, "record": record}
        summary["checks"][f"inference/answers-sample[{fn}]"] = entry
    return summary


def _write(folder: Path, records: dict[str, dict], lama_png: bytes) -> Path:
    images = {("pth-lama", IMAGE): lama_png}
    summary = summary_with({**records, "pth-lama": _lama(lama_png)})
    baseline = baseline_of(summary, RecordedStack().fingerprint(DIGEST), [], None, images)
    write_baseline(folder, baseline, images)
    return folder


def test_a_baseline_keeps_each_answer_and_lamas_image_beside_it(tmp_path):
    folder = _write(tmp_path / "before", recorded(), _png(120))
    data = json.loads((folder / FILE).read_text())
    assert set(data["answers"]) == set(ROLES)
    lama = data["answers"]["pth-lama"][IMAGE]
    assert lama["file"] == answer_file("pth-lama", IMAGE) == f"answers/pth-lama/{IMAGE}.png"
    assert (folder / lama["file"]).read_bytes() == _png(120)
    run = load_run(folder)
    assert run.answers == data["answers"] and run.folder == folder
    assert load_run(folder / FILE).folder == folder


def test_compare_of_two_baselines_names_the_moved_corners_and_exits_1(tmp_path):
    before = _write(tmp_path / "before", recorded(), _png(120))
    changed = recorded()
    changed[CORNERS] = moved(changed[CORNERS], "2", 4)
    after = _write(tmp_path / "after", changed, _png(120))
    result = compare(load_run(before), load_run(after), tolerances=Tolerances.of(TWIN))
    (change,) = result.answers_changed
    assert (change.function, change.image, change.element) == (CORNERS, IMAGE, "corner 2")
    assert result.exit_code == 1
    assert "1 function answer(s) changed (1 element(s) beyond the tolerance)" in result.headline
    table = text_table(result)
    assert "Function answers changed: 1" in table
    assert "corner 2  (918.8, 121.5)  (922.8, 121.5)  moved 4.0 px > 2 px" in table
    assert "corner 2" in html_page(result) and "moved 4.0 px &gt; 2 px" in html_page(result)
    same = compare(load_run(before), load_run(before))
    assert same.answers == [] and same.exit_code == 0
    assert "Function answers changed: none" in text_table(same)


def test_compare_says_when_a_side_kept_no_answers(tmp_path):
    before = _write(tmp_path / "before", recorded(), _png(120))
    plain = baseline_of(SUMMARY, RecordedStack().fingerprint(DIGEST), [])
    write_baseline(tmp_path / "static", plain)
    result = compare(load_run(before), load_run(tmp_path / "static"))
    assert result.answers is None and result.exit_code == 0
    assert "function answers not compared: AFTER kept none" in text_table(result)


@pytest.mark.parametrize("changed_lama", [False, True])
def test_lamas_image_files_decide_over_the_thumbnail_in_compare(tmp_path, changed_lama):
    before = _write(tmp_path / "before", recorded(), _png(120))
    after = _write(tmp_path / "after", recorded(), _png(120, 0 if changed_lama else None))
    result = compare(load_run(before), load_run(after), tolerances=Tolerances.of(TWIN))
    assert bool(result.answers_changed) is changed_lama, result.answers


# --- on the twin ----------------------------------------------------------------------------


@pytest.mark.twin
def test_on_the_twin_compare_names_the_corners_an_upgraded_gridcorners_moved(tmp_path):
    """A baseline of the twin's inference layer; pth-yolo-gridcorners redeployed answering
    every corner 4 px to the right (its `moved-4px` knob: an upgrade's new model); a second
    baseline; `compare` exits 1 and names the four corners with both positions, and nothing
    else of the five functions' answers. The function is restored after."""
    from selftests.test_baseline import _cli
    from selftests.twin import Twin

    key = f"--baseline-key={tmp_path / 'k.key'}"
    profile = str(PROJECT_ROOT / "profiles" / "twin.toml")

    def baseline(name: str) -> dict:
        proc = _cli(tmp_path, "baseline", name, "--profile", profile, "--layer=inference",
                    "--reports", f"r-{name}", key, "-q")  # fmt: skip
        # 10: the moved corners are also off the ground truth (a policy finding).
        assert proc.returncode in (0, 10), proc.stdout[-3000:] + proc.stderr[-2000:]
        return json.loads((tmp_path / name / FILE).read_text())

    before = baseline("before")
    assert set(before["answers"]) == set(ROLES), before["answers"].keys()
    assert (tmp_path / "before" / before["answers"]["pth-lama"][IMAGE]["file"]).is_file()
    twin = Twin(tmp_path)
    try:
        twin.redeploy(CORNERS, env={"CRIOBE_TWIN_FAULT": "moved-4px"})
        baseline("after")
    finally:
        twin.restore_functions(CORNERS)
    proc = _cli(tmp_path, "compare", "before", "after", "--profile", profile)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Function answers changed: 4" in proc.stdout, proc.stdout
    for n in ("1", "2", "3", "4"):
        assert f"{CORNERS}  {IMAGE}  corner {n} " in proc.stdout, proc.stdout
    assert proc.stdout.count("moved 4.0 px > 2 px") == 4, proc.stdout
    # The restored function answers as it did: the same comparison is clean again.
    baseline("restored")
    again = _cli(tmp_path, "compare", "before", "restored", "--profile", profile)
    assert "Function answers changed: none" in again.stdout, again.stdout
