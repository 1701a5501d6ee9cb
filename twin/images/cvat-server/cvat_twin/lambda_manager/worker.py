"""The auto-annotation RQ job (LambdaJob.__call__ and _call_detector in
cvat/apps/lambda_manager/views.py), run by cvat_worker_annotation.

    call(function=<LambdaFunction>, task=9, cleanup=True, threshold=None, job=None,
         conv_mask_to_poly=True, mapping=None, max_distance=None)

With cleanup the annotations go first, so a run that then fails leaves the job empty. One
invocation per frame; progress is saved after each, and a job deleted meanwhile stops the run.
Shapes are written with source "auto", group null; a function label of type mask becomes a
polygon from its `points` when conv_mask_to_poly is set (the mask is ignored), otherwise CVAT's
RLE; skeleton elements the function left out are added as outside at the mean of the given
ones, and a skeleton whose elements are all outside is not written.
"""

import rq

from .. import db
from ..api import engine, events
from .frames import load_target

SUBMIT_EVERY = 100


def convert_labels(db_labels):
    labels = {}
    for label in db_labels:
        labels[label["name"]] = {
            "id": label["id"],
            "attributes": {a["name"]: a["id"] for a in label["attributes"]},
            "type": label["type"],
        }
        if label["type"] == "skeleton":
            labels[label["name"]]["sublabels"] = convert_labels(label["sublabels"])
    return labels


def mask_to_rle(values):
    """datumaro.util.mask_tools.mask_to_rle(np.array(values))["counts"] for a flat 0/1 list:
    run lengths, the first one counting zeros (0 when the mask starts with a one)."""
    counts, current, run = [], 0, 0
    for v in values:
        bit = 1 if v else 0
        if bit == current:
            run += 1
        else:
            counts.append(run)
            current, run = bit, 1
    counts.append(run)
    return counts


def parse_anno(anno, labels, frame, conv_mask_to_poly):
    label = labels.get(anno["label"])
    if label is None:
        return None
    attrs = [
        {"spec_id": label["attributes"][a["name"]], "value": a["value"]}
        for a in anno.get("attributes", [])
        if a["name"] in label["attributes"]
    ]
    if anno["type"].lower() == "tag":
        return {"frame": frame, "label_id": label["id"], "source": "auto", "attributes": attrs,
                "group": None}  # fmt: skip
    shape = {
        "frame": frame,
        "label_id": label["id"],
        "source": "auto",
        "attributes": attrs,
        "group": anno.get("group_id"),
        "type": anno["type"],
        "occluded": False,
        "outside": anno.get("outside", False),
        "points": anno.get("mask", []) if anno["type"] == "mask" else anno.get("points", []),
        "z_order": 0,
    }
    if shape["type"] in ("rectangle", "ellipse"):
        shape["rotation"] = anno.get("rotation", 0)
    if anno["type"] == "mask" and "points" in anno and conv_mask_to_poly:
        shape["type"] = "polygon"
        shape["points"] = anno["points"]
    elif anno["type"] == "mask":
        xtl, ytl, xbr, ybr = shape["points"][-4:]
        shape["points"] = [*mask_to_rle(shape["points"][:-4]), xtl, ytl, xbr, ybr]
    if shape["type"] == "skeleton":
        parsed = [
            parse_anno(x, label["sublabels"], frame, conv_mask_to_poly) for x in anno["elements"]
        ]
        center = [0, 0]
        for element in parsed:
            center[0] += element["points"][0]
            center[1] += element["points"][1]
        center[0] /= len(parsed) or 1
        center[1] /= len(parsed) or 1

        def element_for(sublabel):
            found = next((e for e in parsed if e["label_id"] == sublabel["id"]), None)
            if found is not None:
                return found
            return {"frame": frame, "label_id": sublabel["id"], "source": "auto",
                    "attributes": [], "group": None, "type": sublabel["type"],
                    "occluded": False, "points": center, "outside": True, "z_order": 0}  # fmt: skip

        shape["elements"] = [element_for(s) for s in label["sublabels"].values()]
        if all(e["outside"] for e in shape["elements"]):
            return None
    return shape


def _update_progress(progress):
    job = rq.get_current_job()
    job.meta["progress"] = int(progress * 100)
    job.save_meta()
    # None once the request was deleted: the run stops.
    return job.get_status()


def _job_ids(cur, task_id, job_id):
    if job_id is not None:
        return [job_id]
    cur.execute("SELECT id FROM twin_job WHERE task_id = %s ORDER BY id", (task_id,))
    return [r["id"] for r in cur.fetchall()]


def _context():
    meta = rq.get_current_job().meta
    return meta.get("base_url", "http://localhost:8080"), meta.get("sender")


def _touch(cur, task_id, job_ids):
    # dm's _set_updated_date: job, task and project touched, each save a webhook event
    base, sender = _context()
    queued = []
    engine.touch_after_annotations(
        cur, base, job_ids, engine.get_task(cur, task_id), sender, queued
    )
    events.resolve(cur, queued, sender)
    return queued


def cleanup_annotations(task_id, job_id):
    with db.transaction() as cur:
        job_ids = _job_ids(cur, task_id, job_id)
        cur.execute("DELETE FROM twin_shape WHERE job_id = ANY(%s)", (job_ids,))
        queued = _touch(cur, task_id, job_ids) if cur.rowcount else []
    events.flush(queued)


def submit(task_id, job_id, shapes, tags):
    """patch_task_data / patch_job_data(..., "create"): each shape to the job holding its frame."""
    if not (shapes or tags):
        return
    with db.transaction() as cur:
        job_ids = _job_ids(cur, task_id, job_id)
        cur.execute(
            "SELECT id, start_frame, stop_frame FROM twin_job WHERE id = ANY(%s) ORDER BY id",
            (job_ids,),
        )
        ranges = cur.fetchall()
        touched = []
        for item, kind in [(s, "shape") for s in shapes] + [(t, "tag") for t in tags]:
            target = next(
                (r["id"] for r in ranges if r["start_frame"] <= item["frame"] <= r["stop_frame"]),
                None,
            )
            if target is None:
                continue
            engine.insert_shape(cur, target, item, kind=kind)
            if target not in touched:
                touched.append(target)
        queued = _touch(cur, task_id, touched) if touched else []
    events.flush(queued)


def call(function, task, cleanup, **kwargs):
    job_id = kwargs.get("job")
    with db.transaction() as cur:
        if job_id is not None:
            task = engine.get_job(cur, job_id)["task_id"]
        task_row, target = load_target(cur, task, job_id)
        labels = convert_labels(target.labels)
    if cleanup:
        cleanup_annotations(task, job_id)
    if function.kind == "detector":
        _call_detector(function, target, labels, kwargs, task_row)
    elif function.kind == "reid":
        # Re-identification merges boxes into tracks, which the twin does not store.
        raise NotImplementedError("the CVAT twin has no tracks: reid requests are not supported")


def _call_detector(function, target, labels, kwargs, task_row):
    job = target.job
    frames = range(job["start_frame"], job["stop_frame"] + 1) if job else range(target.size)
    shapes, tags = [], []
    for frame in frames:
        annotations = function.invoke(
            target,
            {
                "frame": frame,
                "mapping": kwargs.get("mapping"),
                "threshold": kwargs.get("threshold"),
            },
        )
        if not _update_progress((frame + 1) / target.size):
            break
        for anno in annotations:
            parsed = parse_anno(anno, labels, frame, kwargs.get("conv_mask_to_poly"))
            if parsed is not None:
                (tags if anno["type"].lower() == "tag" else shapes).append(parsed)
        if frame and frame % SUBMIT_EVERY == 0:
            submit(task_row["id"], job and job["id"], shapes, tags)
            shapes, tags = [], []
    submit(task_row["id"], job and job["id"], shapes, tags)
