"""What an invocation reads from cvat_db: the target task's labels and frames.

    with db.transaction() as cur:
        task, target = load_target(cur, task_id, job_id)   # target: function.TaskTarget

Frames are read as uploaded (twin_frame keeps the original bytes), one transaction each.
"""

from .. import db
from .function import TaskTarget


def frame_reader(task_id):
    def read(frame):
        with db.transaction() as cur:
            cur.execute(
                "SELECT content FROM twin_frame WHERE task_id = %s AND frame = %s",
                (task_id, frame),
            )
            row = cur.fetchone()
        if row is None:
            raise ValueError(f"frame {frame} of task {task_id} has no data")
        return bytes(row["content"])

    return read


def load_target(cur, task_id, job_id=None):
    """The task row and a TaskTarget of it (or of one of its jobs)."""
    # imported here: cvat_twin.api imports this package's views, which import this module
    from ..api import engine

    task = engine.get_task(cur, task_id)
    labels = [engine.label_read(cur, label) for label in engine.labels_of(cur, task_id=task_id)]
    job = None
    if job_id is not None:
        row = engine.get_job(cur, job_id)
        job = {"id": row["id"], "start_frame": row["start_frame"], "stop_frame": row["stop_frame"]}
    return task, TaskTarget(task_id, labels, task["size"] or 0, frame_reader(task_id), job)
