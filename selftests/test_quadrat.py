"""The sample quadrat: deterministic by seed, its ground truth consistent with the exported
CRIOBE labels, with its own images and with itself, and read back unchanged from COCO."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Point, Polygon, box

from criobe_verify import quadrat as q
from selftests import PROJECT_ROOT

LABELS = PROJECT_ROOT / "criobe_verify" / "data" / "criobe-labels"
SAMPLE = PROJECT_ROOT / "fixtures" / "data" / "sample-quadrat"
SAMPLE_SEED = 7


@pytest.fixture(scope="module")
def small():
    return q.generate(seed=11, size=256)


@pytest.fixture(scope="module")
def regenerated():
    """The committed sample, drawn again from its seed."""
    return q.generate(seed=SAMPLE_SEED)


def _svg_nodes(label_file: str) -> dict[int, tuple[float, float]]:
    svg = json.loads((LABELS / label_file).read_text())[0]["svg"].replace("&quot;", '"')
    return {
        int(m[3]): (float(m[1]), float(m[2]))
        for m in re.finditer(r'cx="([\d.]+)" cy="([\d.]+)"[^>]*data-element-id="(\d+)"', svg)
    }


def _clusters(values: list[float], count: int) -> list[float]:
    """Centres of ``count`` clusters of 1-D values (the label's rows or columns)."""
    v = np.sort(values)
    cuts = np.sort(np.argsort(np.diff(v))[-(count - 1) :]) + 1
    return [float(part.mean()) for part in np.split(v, cuts)]


def _signed_area(points) -> float:
    p = np.asarray(points, float)
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_draws_the_same_sample(small):
    again = q.generate(seed=11, size=256)
    for name in ("photo", "rectified", "rectified_grid_free"):
        assert np.array_equal(np.asarray(getattr(small, name)), np.asarray(getattr(again, name)))
    assert again.truth == small.truth


def test_another_seed_draws_another_sample(small):
    other = q.generate(seed=12, size=256)
    assert other.truth.corners != small.truth.corners
    assert not np.array_equal(np.asarray(other.photo), np.asarray(small.photo))


def test_committed_sample_is_what_its_seed_generates(regenerated):
    committed = json.loads((SAMPLE / q.TRUTH_JSON).read_text())
    assert committed["seed"] == SAMPLE_SEED
    expected = json.loads(
        json.dumps(regenerated.truth.to_json(seed=SAMPLE_SEED, generator=regenerated.params))
    )
    assert committed == expected
    # The JPEGs differ only by compression.
    for name, path in (
        ("photo", regenerated.truth.photo_file),
        ("rectified", regenerated.truth.rectified_file),
        ("rectified_grid_free", regenerated.truth.grid_free_file),
    ):
        stored = np.asarray(Image.open(SAMPLE / path).convert("RGB"), float)
        fresh = np.asarray(getattr(regenerated, name), float)
        assert stored.shape == fresh.shape
        assert np.abs(stored - fresh).mean() < 3, name


def test_committed_sample_stays_small():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 2_000_000, f"{total} bytes"


# --- ground truth against the exported CRIOBE labels ----------------------------------------


def test_grid_elements_are_numbered_like_the_exported_grid_label():
    nodes = _svg_nodes("grid_annotation_example.json")
    assert sorted(nodes) == list(range(1, 118))
    rows = _clusters([y for _, y in nodes.values()], q.LATTICE)
    cols = _clusters([x for x, _ in nodes.values()], q.LATTICE)
    label_cells = [
        (
            int(np.argmin([abs(nodes[k][1] - r) for r in rows])),
            int(np.argmin([abs(nodes[k][0] - c) for c in cols])),
        )
        for k in range(1, 118)
    ]
    assert list(q.lattice_of_elements()) == label_cells
    sizes = [sum(1 for r, _ in label_cells if r == row) for row in range(q.LATTICE)]
    assert sizes == [9] + [11] * 9 + [9]


def test_corner_elements_run_clockwise_from_top_left_like_the_exported_label():
    nodes = _svg_nodes("corner_annotation_example.json")
    label = [nodes[k] for k in (1, 2, 3, 4)]
    assert int(np.argmin([x + y for x, y in label])) == 0
    assert _signed_area(label) > 0  # y points down: positive is clockwise on screen
    for seed in (1, 2, 3, SAMPLE_SEED):
        corners = q.generate(seed=seed, size=256).truth.corners
        assert int(np.argmin([x + y for x, y in corners])) == 0, seed
        assert _signed_area(corners) > 0, seed


def test_genera_are_the_exported_coral_labels():
    exported = [
        label["name"] for label in json.loads((LABELS / "finegained_seg_example.json").read_text())
    ]
    assert list(q.GENERA) == exported
    assert set(q.LOOKS) <= set(exported)


# --- ground truth against itself and its images ---------------------------------------------


def test_rectified_grid_is_the_lattice_and_maps_back_through_the_homography(small):
    t = small.truth
    step = t.rectified_size[0] / (q.LATTICE - 1)
    for (x, y), (r, c) in zip(t.grid, q.lattice_of_elements(), strict=True):
        assert (x, y) == pytest.approx((c * step, r * step))
    h = t.homography
    assert q.apply_homography(h, t.corners) == pytest.approx(
        np.array(q.rectified_corners(t.rectified_size)), abs=1e-6
    )
    assert q.apply_homography(h, t.grid_in_photo()) == pytest.approx(np.array(t.grid), abs=1e-6)


def test_photo_grid_obeys_perspective(small):
    """Independent of the homography code: lattice lines stay straight in the photo and the
    frame's centre is where its diagonals cross."""
    t = small.truth
    photo = dict(zip(q.lattice_of_elements(), t.grid_in_photo(), strict=True))
    tl, tr, br, bl = (np.array(p) for p in t.corners)
    photo.update({(0, 0): tl, (0, 10): tr, (10, 10): br, (10, 0): bl})
    for i in range(q.LATTICE):
        for line in ([photo[(i, c)] for c in range(11)], [photo[(r, i)] for r in range(11)]):
            p = np.array(line)
            d = (p[-1] - p[0]) / np.linalg.norm(p[-1] - p[0])
            off = (p - p[0]) @ np.array([-d[1], d[0]])
            assert np.abs(off).max() < 1e-6
    a = np.array([br - tl, -(bl - tr)]).T
    s, _ = np.linalg.solve(a, tr - tl)
    assert photo[(5, 5)] == pytest.approx(tl + s * (br - tl), abs=1e-6)


def test_rectified_images_are_the_photos_warped_on_the_corners(small):
    t = small.truth
    again = q.rectify(small.photo, t.corners, t.rectified_size)
    assert np.array_equal(np.asarray(again), np.asarray(small.rectified))
    back = np.linalg.inv(t.homography)
    photo = np.asarray(small.photo, float)
    rect = np.asarray(small.rectified, float)
    for coral, in_photo in zip(t.corals, t.corals_in_photo(), strict=True):
        # A point inside the colony in the rectified frame lands inside it in the photo,
        # on the same colours.
        inside = Polygon(coral.polygon).representative_point()
        (x, y) = q.apply_homography(back, [(inside.x, inside.y)])[0]
        assert Polygon(in_photo.polygon).contains(Point(x, y)), coral.genus
        a = np.median(
            rect[int(inside.y) - 1 : int(inside.y) + 2, int(inside.x) - 1 : int(inside.x) + 2],
            axis=(0, 1),
        )
        b = np.median(photo[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2], axis=(0, 1))
        assert np.abs(a - b).max() < 40, coral.genus


def test_strings_are_the_only_difference_between_the_rectified_images():
    s = q.generate(seed=SAMPLE_SEED, size=512)
    diff = np.abs(np.asarray(s.rectified, float) - np.asarray(s.rectified_grid_free, float)).max(
        axis=2
    )
    grid = s.truth.grid
    lattice = dict(zip(q.lattice_of_elements(), grid, strict=True))
    n = s.truth.rectified_size[0]
    on_string = np.zeros((n, n), bool)
    half = 4
    for i in range(1, q.LATTICE - 1):
        x = lattice[(0, i)][0]
        y = lattice[(i, 0)][1]
        on_string[:, max(0, int(x) - half) : int(x) + half + 1] = True
        on_string[max(0, int(y) - half) : int(y) + half + 1, :] = True
    assert diff[~on_string].max() < 8
    assert diff[on_string].mean() > 5


def test_colonies_lie_apart_inside_the_frame(small):
    t = small.truth
    frame = box(0, 0, *t.rectified_size)
    shapes = [Polygon(c.polygon) for c in t.corals]
    assert len(shapes) >= 5
    for i, a in enumerate(shapes):
        assert a.is_valid and frame.contains(a)
        assert all(a.distance(b) > 5 for b in shapes[i + 1 :])


# --- writing and reading back ---------------------------------------------------------------


def test_cli_writes_the_test_sample_layout(tmp_path, capsys):
    assert q.main(["--seed", "5", "--size", "256", "--out", str(tmp_path)]) == 0
    assert "ground_truth.json" in capsys.readouterr().out
    for rel in (q.CORNERS_COCO, q.GRID_COCO, q.CORALS_COCO, q.TRUTH_JSON):
        assert (tmp_path / rel).is_file(), rel
    truth = q.load_ground_truth(tmp_path)
    for rel, size in (
        (truth.photo_file, truth.photo_size),
        (truth.rectified_file, truth.rectified_size),
        (truth.grid_free_file, truth.rectified_size),
    ):
        with Image.open(tmp_path / rel) as im:
            assert im.format == "JPEG" and im.size == size


def test_coco_exports_look_like_cvat_keypoint_exports():
    corners = json.loads((SAMPLE / q.CORNERS_COCO).read_text())
    grid = json.loads((SAMPLE / q.GRID_COCO).read_text())
    for doc, label, count in ((corners, "quadrat_corner", 4), (grid, "grid", 117)):
        assert set(doc) >= {"images", "annotations", "categories", "licenses", "info"}
        (cat,) = doc["categories"]
        assert cat["name"] == label and cat["keypoints"] == [str(i) for i in range(1, count + 1)]
        (ann,) = doc["annotations"]
        assert ann["num_keypoints"] == count and len(ann["keypoints"]) == 3 * count
        assert set(ann["keypoints"][2::3]) == {2}
        assert ann["image_id"] == doc["images"][0]["id"]
    corals = json.loads((SAMPLE / q.CORALS_COCO).read_text())
    assert [c["name"] for c in corals["categories"]] == list(q.GENERA)
    assert all(len(a["segmentation"][0]) >= 6 for a in corals["annotations"])


def _close(a: q.GroundTruth, b: q.GroundTruth, tol: float = 0.01) -> None:
    assert a.photo_size == b.photo_size and a.rectified_size == b.rectified_size
    assert np.array(a.corners) == pytest.approx(np.array(b.corners), abs=tol)
    assert np.array(a.grid) == pytest.approx(np.array(b.grid), abs=tol)
    assert [c.genus for c in a.corals] == [c.genus for c in b.corals]
    for ca, cb in zip(a.corals, b.corals, strict=True):
        assert np.array(ca.polygon) == pytest.approx(np.array(cb.polygon), abs=tol)


def test_plain_json_and_coco_read_back_to_the_same_truth(tmp_path, regenerated):
    fresh = regenerated.truth
    _close(q.load_ground_truth(SAMPLE), fresh)
    coco_only = tmp_path / "coco"
    shutil.copytree(SAMPLE, coco_only)
    (coco_only / q.TRUTH_JSON).unlink()
    image = coco_only / fresh.photo_file
    _close(q.load_ground_truth(coco_only, image=image), fresh)
    # Flat: just the three COCO files, found by their content.
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, rel in enumerate((q.CORNERS_COCO, q.GRID_COCO, q.CORALS_COCO)):
        shutil.copy(SAMPLE / rel, flat / f"export{i}.json")
    _close(q.load_ground_truth(flat), fresh)
    # Or the files one by one, as several --ground-truth options would give them.
    files = [SAMPLE / q.GRID_COCO, SAMPLE / q.CORALS_COCO, SAMPLE / q.CORNERS_COCO]
    _close(q.load_ground_truth(files), fresh)


def test_corals_exported_on_the_photo_are_carried_to_the_rectified_frame(tmp_path):
    truth = q.load_ground_truth(SAMPLE)
    corners = truth.to_coco_corners()
    photo_corals = q.GroundTruth(
        **{**truth.__dict__, "corals": truth.corals_in_photo()}
    ).to_coco_corals()
    corners["categories"] += [{**c, "id": c["id"] + 1} for c in photo_corals["categories"]]
    corners["annotations"] += [
        {**a, "id": a["id"] + 1, "category_id": a["category_id"] + 1}
        for a in photo_corals["annotations"]
    ]
    loaded = q.from_coco(corners, truth.to_coco_grid())
    _close(loaded, truth, tol=0.05)


def test_multi_image_exports_pick_the_sample_by_name():
    truth = q.load_ground_truth(SAMPLE)
    corners = truth.to_coco_corners()
    decoy = json.loads(json.dumps(corners))
    decoy["images"][0].update(id=2, file_name="Other_2020_01.jpg")
    decoy["annotations"][0].update(id=2, image_id=2, keypoints=[1, 1, 2] * 4)
    corners["images"] = decoy["images"] + corners["images"]
    corners["annotations"] = decoy["annotations"] + corners["annotations"]
    picked = q.from_coco(corners, truth.to_coco_grid(), image_name=truth.photo_file)
    assert np.array(picked.corners) == pytest.approx(np.array(truth.corners), abs=0.01)
    with pytest.raises(ValueError, match="2 images and none named"):
        q.from_coco(corners, truth.to_coco_grid())


def test_loader_refuses_incomplete_or_mismatched_ground_truth(tmp_path):
    truth = q.load_ground_truth(SAMPLE)
    grid = truth.to_coco_grid()
    grid["annotations"][0]["keypoints"][3 * 116 + 2] = 0
    with pytest.raises(ValueError, match=r"not labelled.*117"):
        q.from_coco(truth.to_coco_corners(), grid)
    (tmp_path / "corners.json").write_text(json.dumps(truth.to_coco_corners()))
    with pytest.raises(ValueError, match="missing: grid"):
        q.load_ground_truth(tmp_path)
    small_image = tmp_path / "small.jpg"
    Image.new("RGB", (100, 80)).save(small_image)
    with pytest.raises(ValueError, match="100x80"):
        q.load_ground_truth(SAMPLE, image=small_image)
