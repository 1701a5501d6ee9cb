"""The inference layer's judges: the output contract and the accuracy measures, on hand-made
answers and on the committed sample's ground truth."""

from __future__ import annotations

import base64
import io
import math

from criobe_verify.fixtures.sample import SAMPLE_DIR
from PIL import Image

from criobe_verify.accuracy import match_corals, point_errors, skeleton_points
from criobe_verify.quadrat import GENERA, load_ground_truth
from criobe_verify.shapes import (
    coral_problems,
    corner_problems,
    grid_problems,
    inpaint_problems,
    interactor_problems,
)

TRUTH = load_ground_truth(SAMPLE_DIR)
SIZE = TRUTH.photo_size


def skeleton(label: str, points, confidence: str = "93", **extra) -> dict:
    return {
        "label": label,
        "type": "skeleton",
        "confidence": confidence,
        "attributes": [{"name": "confidence", "value": confidence}],
        "elements": [
            {"label": str(i + 1), "type": "points", "points": list(p), "outside": 0}
            for i, p in enumerate(points)
        ],
        **extra,
    }


def test_true_corners_follow_the_contract_and_have_no_error():
    answer = [skeleton("quadrat_corner", TRUTH.corners)]
    assert corner_problems(answer, SIZE) == []
    errors = point_errors(skeleton_points(answer, "quadrat_corner"), TRUTH.corners)
    assert max(errors.values()) == 0


def test_corner_defects_are_named():
    three = [skeleton("quadrat_corner", TRUTH.corners[:3])]
    assert "missing 4" in " ".join(corner_problems(three, SIZE))
    ccw = [skeleton("quadrat_corner", [TRUTH.corners[i] for i in (0, 3, 2, 1)])]
    assert "counter-clockwise" in corner_problems(ccw, SIZE)[0]
    rotated = [skeleton("quadrat_corner", [TRUTH.corners[i] for i in (1, 2, 3, 0)])]
    assert "element 1 is the TR corner" in corner_problems(rotated, SIZE)[0]
    fraction = [skeleton("quadrat_corner", TRUTH.corners, confidence="0.87")]
    assert "'0.87' is not an integer-percent string" in corner_problems(fraction, SIZE)[0]
    two = [skeleton("quadrat_corner", TRUTH.corners), skeleton("quadrat_corner", TRUTH.corners)]
    assert corner_problems(two, SIZE)[0] == "2 quadrat_corner skeletons, expected exactly 1"
    other = [skeleton("corner", TRUTH.corners)]
    assert "labels ['corner'] are not 'quadrat_corner'" in corner_problems(other, SIZE)[0]
    off = [skeleton("quadrat_corner", [(x + 10, y) for x, y in TRUTH.corners])]
    errors = point_errors(skeleton_points(off, "quadrat_corner"), TRUTH.corners)
    assert all(math.isclose(v, 10) for v in errors.values())


def test_grid_is_judged_per_element_id_so_a_renumbering_counts():
    assert grid_problems([skeleton("grid", TRUTH.grid)], TRUTH.rectified_size) == []
    assert "missing 117" in " ".join(
        grid_problems([skeleton("grid", TRUTH.grid[:116])], TRUTH.rectified_size)
    )
    # Column-major numbering: the same points under other ids.
    by_column = sorted(TRUTH.grid, key=lambda p: (p[0], p[1]))
    errors = point_errors(skeleton_points([skeleton("grid", by_column)], "grid"), TRUTH.grid)
    assert sum(errors.values()) / len(errors) > 100


def test_corals_are_paired_one_to_one_and_off_genus_or_unknown_labels_are_named():
    colonies = [(c.genus, c.polygon) for c in TRUTH.corals]
    shapes = [
        {"label": g, "type": "polygon", "points": [v for p in poly for v in p], "confidence": "90"}
        for g, poly in colonies
    ]
    matches, extra = match_corals(shapes, colonies)
    assert extra == 0 and all(m.iou > 0.999 and m.found_genus == m.genus for m in matches)
    assert coral_problems(shapes, TRUTH.rectified_size, GENERA, "polygon") == []
    shapes[0] = dict(shapes[0], label="acropora")
    assert (
        "not one of the 16 CRIOBE genera"
        in coral_problems(shapes, TRUTH.rectified_size, GENERA, "polygon")[0]
    )
    assert "the profile expects 'mask'" in " ".join(
        coral_problems(shapes, TRUTH.rectified_size, GENERA, "mask")
    )


def test_a_mask_must_fill_its_box():
    shape = {"label": "Porites", "type": "mask", "points": [1, 1, 3, 1, 3, 3],
             "mask": [1, 1, 1, 1, 0, 0, 3, 3]}  # fmt: skip
    assert "mask has 4 cells, its box [0, 0, 3, 3] needs 16" in " ".join(
        coral_problems([shape], (10, 10), GENERA, "mask")
    )


def _png(size: tuple[int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_lama_answer_must_be_an_image_of_the_input_size():
    assert inpaint_problems({"image": _png((64, 64))}, (64, 64), "image-b64-png")[0] == []
    problems, _ = inpaint_problems({"image": _png((32, 32))}, (64, 64), "image-b64-png")
    assert "32x32, the input was 64x64" in problems[0]
    problems, _ = inpaint_problems([{"label": "x"}], (64, 64), "image-b64-png")
    assert "expected {'image': <base64 PNG>}" in problems[0]


def test_sam_embedding_must_have_the_size_cvat_decodes():
    blob = base64.b64encode(bytes(4 * 256 * 64 * 64)).decode()
    assert interactor_problems({"blob": blob}) == []
    short = base64.b64encode(bytes(4 * 256 * 32 * 32)).decode()
    assert "expected 4194304" in interactor_problems({"blob": short})[0]
