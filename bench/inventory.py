"""How long the lab's inventory takes (criobe_verify/inventory.py) on a CVAT of 10,000 tasks:
a LabCvat (selftests/lab_cvat.py) on 127.0.0.1 serves them, cvat-sdk 2.29.0 reads them as a
baseline would. The issue's budget is 60 s; measured, never asserted: bench/ is not a test.

    python bench/inventory.py                      # 10,000 tasks, 20 projects, 3 runs
    python bench/inventory.py --tasks 20000 --runs 1

What it measures is the client's side (paging, JSON, the sample's 100 requests) against a
server that answers at once; a real CVAT adds its own query time per page, which the
1,000-task pages keep to ten answers per listing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from criobe_verify.inventory import read_inventory, summary_line  # noqa: E402
from selftests.lab_cvat import LabCvat  # noqa: E402

LABELS = {f"coral-{n}": ("polygon", "mask", "points")[n % 3] for n in range(12)}


def lab(tasks: int, projects: int, webhooks: int) -> LabCvat:
    cvat = LabCvat()
    ids = [cvat.add_project(f"project {n}", LABELS) for n in range(projects)]
    for n in range(tasks):
        _, job = cvat.add_task(ids[n % projects], f"quadrat {n}", size=1 + n % 5)
        if job <= 60:  # the sampled jobs carry annotations, as a lab's first tasks do
            cvat.annotations[job]["shapes"] = [
                {"id": k, "label_id": 1 + k % 12, "type": "polygon", "frame": 0,
                 "points": [float(x) for x in range(40)]}
                for k in range(100)
            ]  # fmt: skip
    for n in range(webhooks):
        hook = cvat.add_webhook(ids[n % projects], "http://bridge.gateway:8000/hook")
        cvat.deliver(hook, 200)
    return cvat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with lab(args.tasks, args.projects, args.webhooks) as cvat:
        session = cvat.session()
        seconds, inventory = [], {}
        for _ in range(args.runs):
            started = time.monotonic()
            inventory = read_inventory(session)
            seconds.append(time.monotonic() - started)
        session.close()
        requests = len(cvat.calls) // args.runs
    print(summary_line(inventory))
    print(
        f"inventory of {args.tasks} tasks: min {min(seconds):.2f} s, median "
        f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s over {args.runs} runs "
        f"({requests} requests each; target ≤ 60 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
