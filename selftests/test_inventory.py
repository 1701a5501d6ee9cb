"""The lab's inventory without a stack (a LabCvat on 127.0.0.1, cvat-sdk 2.29.0 asking it as
the run would): every page of CVAT's listings, read-only; the same sample of jobs again after
an upgrade; annotation and frame hashes; no webhook password or secret kept; a CVAT that does
not answer recorded, not raised; and `compare` naming the data lost or changed (exit 1) and
the new objects (information)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from criobe_verify.baseline import baseline_of, load_run, write_baseline
from criobe_verify.compare import compare, main
from criobe_verify.inventory import (
    geometry_digest,
    read_inventory,
    sample_ids,
    summary_line,
    survived,
    unavailable_inventory,
)
from criobe_verify.secret_digest import SecretDigest
from selftests.data import DATA
from selftests.lab_cvat import LabCvat
from selftests.recorded_stack import RecordedStack

SUMMARY = json.loads((DATA / "recorded" / "twin-summary.json").read_text())
POLYGON = {"id": 1, "label_id": 1, "type": "polygon", "frame": 0, "group": 0,
           "points": [10.0, 10.0, 50.0, 10.0, 30.0, 40.0]}  # fmt: skip


def _lab(cvat: LabCvat) -> dict[str, int]:
    """Two projects, five tasks (one of two jobs), a webhook with two deliveries, one job with
    a polygon, a tag and a track."""
    corals = cvat.add_project("corals", {"acropora": "polygon", "porites": "mask"})
    corners = cvat.add_project("corners", {"quadrat_corner": "points"})
    _, job = cvat.add_task(corals, "reef A", size=4, jobs=2)
    for n in range(4):
        cvat.add_task(corners if n % 2 else corals, f"reef {'BCDE'[n]}", size=2)
    cvat.annotations[job]["shapes"].append(dict(POLYGON))
    cvat.annotations[job]["tags"].append({"id": 2, "label_id": 2, "frame": 1})
    cvat.annotations[job]["tracks"].append(
        {"id": 3, "label_id": 1, "frame": 0,
         "shapes": [{"type": "rectangle", "frame": 0, "points": [1, 2, 3, 4], "outside": False}]}
    )  # fmt: skip
    hook = cvat.add_webhook(corals, "http://admin:hook-pw-4410@bridge.gateway:8000/hook")
    cvat.deliver(hook, 200)
    cvat.deliver(hook, 502, "update:task")
    return {"corals": corals, "job": job, "hook": hook}


@pytest.fixture
def lab():
    with LabCvat() as cvat:
        ids = _lab(cvat)
        session = cvat.session()
        yield cvat, session, ids
        session.close()


def test_every_page_of_every_listing_is_read_and_nothing_is_written(lab):
    cvat, session, _ = lab
    inventory = read_inventory(session, page_size=2)
    assert len(inventory["tasks"]) == 5 and len(inventory["jobs"]) == 6
    assert inventory["projects"]["1"] == {
        "name": "corals", "labels": {"acropora": "polygon", "porites": "mask"},
    }  # fmt: skip
    assert inventory["tasks"]["1"] == {
        "name": "reef A", "size": 4, "status": "annotation", "project_id": 1,
    }  # fmt: skip
    assert inventory["jobs"]["2"]["start_frame"] == 2
    pages = [q["page"] for method, path, q in cvat.calls if path == "/api/tasks"]
    assert pages == ["1", "2", "3"]
    assert {m for m, _, _ in cvat.calls} == {"GET"}
    assert inventory["unavailable"] == {}


def test_listings_ask_a_thousand_per_page(lab):
    cvat, session, _ = lab
    inventory = read_inventory(session)
    sizes = {q.get("page_size") for _, path, q in cvat.calls if "/" not in path[5:]}
    assert sizes == {"1000"} and inventory["page_size"] == 1000
    assert summary_line(inventory).startswith(
        "inventory: 2 projects, 5 tasks, 6 jobs, 1 webhooks, 6 jobs sampled, in "
    )


def test_the_sample_is_the_smallest_ids_again_after_an_upgrade(lab):
    cvat, session, ids = lab
    before = read_inventory(session, sample_size=3)
    assert before["sample"]["job_ids"] == [1, 2, 3]
    assert before["sample"]["rule"] == "the 3 jobs with the smallest ids"
    for n in range(3):  # the lab goes on working: new jobs never enter the sample
        cvat.add_task(ids["corals"], f"new {n}")
    again = read_inventory(session, sample_size=3)
    assert again["sample"] == before["sample"]
    del cvat.jobs[2]  # a sampled job lost: the next smallest takes its place, job 2 is gone
    after = read_inventory(session, sample_size=3)
    assert after["sample"]["job_ids"] == [1, 3, 4]
    lines = [c.line for c in survived(before, after) if c.finding]
    assert lines == ["job 2 is gone"]
    assert sample_ids(["10", "9", "100"], size=2) == [9, 10]


def test_counts_geometry_and_frame_hashes(lab):
    cvat, session, ids = lab
    job = read_inventory(session)["sample"]["jobs"][str(ids["job"])]
    assert job["counts"] == {"tags": 1, "shapes": 1, "tracks": 1}
    assert job["geometry"].startswith("sha256:") and job["frame"] == 0
    assert job["frame_sha256"].startswith("sha256:")
    # The same geometry under other ids, element order and float noise: the same digest.
    moved = {**POLYGON, "id": 99, "points": [10.001, 10.0, 50.0, 10.0, 30.0, 40.0]}
    assert geometry_digest({"shapes": [moved]}) == geometry_digest({"shapes": [POLYGON]})
    shifted = {**POLYGON, "points": [11.0, 10.0, 50.0, 10.0, 30.0, 40.0]}
    assert geometry_digest({"shapes": [shifted]}) != geometry_digest({"shapes": [POLYGON]})
    skeleton = {
        "label_id": 7,
        "type": "skeleton",
        "frame": 0,
        "points": [],
        "elements": [{"label_id": 8, "points": [1, 1]}, {"label_id": 9, "points": [2, 2]}],
    }
    swapped = {**skeleton, "elements": skeleton["elements"][::-1]}  # fmt: skip
    assert geometry_digest({"shapes": [skeleton]}) == geometry_digest({"shapes": [swapped]})
    cvat.frames[(ids["job"], 0)] = b"\xff\xd8 another image"
    assert (
        read_inventory(session)["sample"]["jobs"][str(ids["job"])]["frame_sha256"]
        != (job["frame_sha256"])
    )


def test_no_webhook_password_nor_secret_is_kept(lab):
    cvat, session, ids = lab
    cvat.webhooks[ids["hook"]]["secret"] = "hook-secret-8812"  # were CVAT to send it
    inventory = read_inventory(session)
    hook = inventory["webhooks"][str(ids["hook"])]
    assert hook == {
        "target_url": "http://admin:[REDACTED]@bridge.gateway:8000/hook",
        "events": ["update:job"], "project_id": 1, "type": "project", "is_active": True,
        "content_type": "application/json",
        "newest_delivery": {"event": "update:task", "status_code": 502},
    }  # fmt: skip
    text = json.dumps(inventory)
    assert "hook-pw-4410" not in text and "hook-secret-8812" not in text


def test_a_listing_that_fails_is_said_and_the_rest_is_read(lab):
    cvat, session, _ = lab
    cvat.broken.add("/api/webhooks")
    inventory = read_inventory(session)
    assert inventory["webhooks"] is None and len(inventory["tasks"]) == 5
    assert "GET /api/webhooks answered 500" in inventory["unavailable"]["webhooks"]


def test_a_cvat_that_does_not_answer_is_recorded_not_raised():
    with LabCvat() as cvat:
        session = cvat.session()
    inventory = read_inventory(session)  # the server is shut: nothing answers
    session.close()
    assert all(inventory[p] is None for p in ("projects", "tasks", "jobs", "webhooks"))
    assert set(inventory["unavailable"]) == {"projects", "tasks", "jobs", "labels", "webhooks"}
    assert inventory["sample"]["job_ids"] is None
    assert summary_line(unavailable_inventory("POST /api/auth/login answered 401")) == (
        "inventory not read: cvat: POST /api/auth/login answered 401"
    )


# --- compare ---------------------------------------------------------------------------------


DIGEST = SecretDigest(b"selftest-key-" + b"0" * 32)


def _baseline(inventory: dict | None) -> dict:
    return baseline_of(SUMMARY, RecordedStack().fingerprint(DIGEST), ["host"], inventory)


def _two(tmp_path: Path, change) -> tuple[Path, Path]:
    with LabCvat() as cvat:
        ids = _lab(cvat)
        session = cvat.session()
        before = read_inventory(session)
        change(cvat, ids)
        after = read_inventory(session)
        session.close()
    write_baseline(tmp_path / "before", _baseline(before))
    write_baseline(tmp_path / "after", _baseline(after))
    return tmp_path / "before", tmp_path / "after"


def _lose_and_change(cvat: LabCvat, ids: dict) -> None:
    del cvat.tasks[3]
    cvat.jobs = {k: v for k, v in cvat.jobs.items() if v["task_id"] != 3}
    del cvat.webhooks[ids["hook"]]
    next(v for v in cvat.labels.values() if v["name"] == "porites")["type"] = "polygon"
    cvat.annotations[ids["job"]]["shapes"].clear()
    cvat.frames[(ids["job"], 0)] = b"\xff\xd8 recompressed"
    cvat.tasks[1]["status"] = "completed"
    cvat.add_task(ids["corals"], "after the upgrade")


def test_lost_and_changed_data_are_findings_that_name_it(tmp_path: Path):
    before, after = _two(tmp_path, _lose_and_change)
    comparison = compare(load_run(before), load_run(after))
    lost = [d.line for d in comparison.data_lost]
    assert lost[:3] == [
        "project 1 'corals' label 'porites' type mask → polygon",
        "task 3 'reef C' is gone",
        "job 4 is gone",
    ]
    assert "webhook 1 is gone" in lost
    assert "job 1 annotations changed: shapes 1 tags 1 tracks 1 → shapes 0 tags 1 tracks 1" in lost
    assert any(line.startswith("job 1 geometry changed: sha256:") for line in lost)
    assert any(line.startswith("job 1 frame 0 changed: sha256:") for line in lost)
    info = [d.line for d in comparison.data if not d.finding]
    assert info == ["task 1 'reef A' status annotation → completed", "1 new tasks (ids 6)",
                    "1 new jobs (ids 7)"]  # fmt: skip
    assert comparison.exit_code == 1
    assert "item(s) of the lab's data lost or changed" in comparison.headline


def test_new_objects_alone_are_information_and_exit_0(tmp_path: Path, capsys):
    def grow(cvat: LabCvat, ids: dict) -> None:
        cvat.add_project("new project", {"coral": "polygon"})
        cvat.add_task(ids["corals"], "more")
        cvat.add_webhook(ids["corals"], "http://bridge.gateway:8000/hook2")

    before, after = _two(tmp_path, grow)
    html = tmp_path / "c.html"
    assert main([str(before), str(after), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "Data lost or changed: none" in out
    assert "1 new projects (ids 3)" in out and "1 new webhooks (ids 2)" in out
    assert "Data: information" in html.read_text()


def test_an_older_baseline_without_inventory_is_said_not_compared(tmp_path: Path, capsys):
    write_baseline(tmp_path / "old", _baseline(None))
    write_baseline(tmp_path / "new", _baseline(unavailable_inventory("no bridge")))
    assert main([str(tmp_path / "old"), str(tmp_path / "new"), "--html",
                 str(tmp_path / "c.html")]) == 0  # fmt: skip
    assert "data not compared: BEFORE has no inventory" in capsys.readouterr().out
    # A CVAT that did not answer: said, never a finding.
    comparison = compare(load_run(tmp_path / "new"), load_run(tmp_path / "new"))
    assert [(c.line, c.finding) for c in comparison.data] == [
        ("cvat not compared: BEFORE could not read it (no bridge)", False)
    ]
    assert comparison.exit_code == 0
    half = unavailable_inventory("login refused")
    lines = survived({"tasks": {"1": {"name": "a"}}, "unavailable": {}}, half)
    assert [(c.line, c.finding) for c in lines] == [
        ("cvat not compared: AFTER could not read it (login refused)", False)
    ]
