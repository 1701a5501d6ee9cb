"""A lab's baseline: what a run found and what the stack was, kept to compare after an upgrade.

    criobe-verify baseline before/ --profile lab.toml     # a normal run that also writes it
    criobe-verify compare before/ after/                   # criobe_verify/compare.py
    criobe-verify --baseline before/ --profile lab.toml    # the regression layer (regression.py)

`criobe-verify baseline DIR` runs the suite as usual (reports in --reports) and writes
DIR/baseline.json, JSON, `format_version` 1:

| field | what | compared |
|---|---|---|
| `format_version`, `kind` | 1, "criobe-verify baseline" | refuses another version |
| `written_at`, `criobe_verify` | when (UTC), by which release | no (volatile) |
| `run` | profile, stack mode, phase, the layers asked for, the verdict | no (shown) |
| `checks.<stable id>` | `outcome`, `kind` (functional, policy), `layer`, `finding` (first line, when not passed) | outcome |
| `latency.<function>` | `first_s`, `p50_s`, `p95_s`, `max_s`, `calls`, `hardware`, `image` (the size the timed calls carried, "1920×1920") | shown with ratios where both sides timed the same image size, else "not compared: different image sizes" |
| `e2e.<workflow>` | `wall_s`, `stages`: `[{name, duration_s}]` in the order they ran | shown with ratios |
| `fingerprint` | the stack's configuration (criobe_verify/fingerprint.py): `containers`, `functions`, `versions`, `secret_key_id`, `unavailable` | every field (criobe_verify/drift.py) |
| `inventory` | the lab's data, read-only (criobe_verify/inventory.py): `projects.<id>` (`name`, `labels`: name → type), `tasks.<id>` (`name`, `size`, `status`, `project_id`, own `labels`), `jobs.<id>` (`task_id`, `type`, `state`, `stage`, frames), `webhooks.<id>` (`target_url` redacted, `events`, `project_id`, `type`, `is_active`, `content_type`, `newest_delivery`), `sample` (`rule`, `size`, `job_ids`, `jobs.<id>`: `counts`, `geometry`, `frame`, `frame_sha256`), `page_size`, `read_s`, `unavailable`; `null` when not read | every object still there with the same labels, size, counts, geometry and frame (criobe_verify/inventory.py: survived) |
| `answers.<function>.<image>` | each function's raw answer on each sample image of the run, the lab's golden (criobe_verify/answer_drift.py: `record_of`): `role` and, by role, `answer` (corner and grid skeletons; coral shapes without masks), `size`, `sha256`, `thumbnail` and `file` (LaMa's image: `answers/<function>/<image>.png` beside baseline.json), `channel_means` (SAM) | within the profile's [inference] golden tolerances: per element in pixels, IoU per genus, LaMa's mean grey-level difference (criobe_verify/answer_drift.py) |
| `fields` | `compared` and `volatile`: which fingerprint fields are compared, which left out | no |

Secrets are only HMACs under a key kept outside DIR (criobe_verify/secret_digest.py). `compare`
also reads a summary.json (`format_version` 2) in place of a baseline: checks and timings,
no fingerprint. Anything else is refused with one line (BaselineInputError):

    >>> load_run("/nowhere/before")
    Traceback (most recent call last):
    ...
    criobe_verify.baseline.BaselineInputError: /nowhere/before: no such file or folder; expected a baseline folder (criobe-verify baseline DIR), its baseline.json, or a summary.json; fix: check the path
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from criobe_verify import inventory as lab_inventory
from criobe_verify.bad_input import InputError
from criobe_verify.fingerprint import COMPARED, VOLATILE
from criobe_verify.verdict import SUMMARY_FORMAT_VERSION, first_line

FORMAT_VERSION = 1
KIND = "criobe-verify baseline"
FILE = "baseline.json"
EXPECTED = "a baseline folder (criobe-verify baseline DIR), its baseline.json, or a summary.json"


class BaselineInputError(InputError):
    """An input `compare` (or `--baseline`) cannot read; str() is one line: the input, the
    problem, what was expected, the fix (a run's --baseline names the option with it)."""


def _fail(source: Path | str, problem: str, fix: str) -> BaselineInputError:
    return BaselineInputError(str(source), problem, EXPECTED, fix)


def checks_of(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """summary.json's checks, as a baseline keeps them: outcome, kind, layer, finding."""
    out = {}
    for check_id, entry in checks.items():
        kept = {k: entry[k] for k in ("outcome", "kind", "layer") if k in entry}
        if entry.get("outcome") != "passed" and (finding := first_line(dict(entry))):
            kept["finding"] = finding.splitlines()[0]  # a diagnosis's `what` may run on
        out[check_id] = kept
    return out


def latency_of(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per function: the latency check's first call, p50, p95, max (seconds), and the image
    size they are for: figures at different sizes are not compared."""
    keep = ("first_s", "p50_s", "p95_s", "max_s", "calls", "hardware", "image")
    return {
        e["latency"]["function"]: {k: e["latency"].get(k) for k in keep}
        for e in checks.values()
        if isinstance(e.get("latency"), Mapping) and "function" in e["latency"]
    }


def e2e_of(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per workflow: its wall time and each stage's duration (seconds), in the order the
    stages ran (a list: the file's keys are sorted)."""
    return {
        e["e2e"]["workflow"]: {
            "wall_s": e["e2e"].get("wall_s"),
            "stages": [
                {"name": s["name"], "duration_s": s.get("duration_s")}
                for s in e["e2e"].get("stages") or []
            ],
        }
        for e in checks.values()
        if isinstance(e.get("e2e"), Mapping) and "workflow" in e["e2e"]
    }


def answers_of(checks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per function, per sample image: the answer record its inference/answers-sample check
    kept (criobe_verify/answer_drift.py)."""
    out: dict[str, dict[str, Any]] = {}
    for e in checks.values():
        kept = e.get("answer")
        if isinstance(kept, Mapping) and {"function", "image", "record"} <= set(kept):
            out.setdefault(kept["function"], {})[kept["image"]] = dict(kept["record"])
    return out


def answer_file(function: str, image: str) -> str:
    """Where a record's image file goes, relative to the baseline folder.

    >>> answer_file("pth-lama", "reef 3/Q1.JPG")
    'answers/pth-lama/reef_3_Q1.JPG.png'
    """
    safe = lambda name: re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"  # noqa: E731
    return f"answers/{safe(function)}/{safe(image)}.png"


def _release() -> str:
    try:
        return version("criobe-verify")
    except PackageNotFoundError:
        return "unknown"


def baseline_of(
    summary: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    layers: list[str] | tuple[str, ...],
    inventory: Mapping[str, Any] | None = None,
    images: Mapping[tuple[str, str], object] = {},
) -> dict[str, Any]:
    """The baseline of a run: its summary.json's content, the stack's fingerprint and the
    lab's inventory (None: not read, as in a baseline of an older release). `images`: the
    (function, image) pairs whose answer has an image file (write_baseline writes them):
    their records name the file."""
    checks = summary.get("checks") or {}
    answers = answers_of(checks)
    for function, image in images:
        if image in answers.get(function, {}):
            answers[function][image]["file"] = answer_file(function, image)
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "written_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "criobe_verify": _release(),
        "run": {
            "profile": summary.get("profile"),
            "stack": summary.get("stack"),
            "phase": summary.get("phase"),
            "layers": list(layers),
            "verdict": summary.get("verdict"),
        },
        "checks": checks_of(checks),
        "latency": latency_of(checks),
        "e2e": e2e_of(checks),
        "fingerprint": dict(fingerprint),
        "inventory": None if inventory is None else dict(inventory),
        "answers": answers,
        "fields": {
            "compared": [*COMPARED, *lab_inventory.COMPARED],
            "volatile": [*VOLATILE, *lab_inventory.VOLATILE],
        },
    }


def write_baseline(
    folder: Path, baseline: Mapping[str, Any], images: Mapping[tuple[str, str], bytes] = {}
) -> Path:
    """baseline.json, and the answers' image files beside it (PNG bytes by (function,
    image))."""
    folder.mkdir(parents=True, exist_ok=True)
    for (function, image), png in images.items():
        file = folder / answer_file(function, image)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(png)
    path = folder / FILE
    path.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Run:
    """One side of a comparison, from a baseline or a summary.json."""

    source: str
    kind: str  # "baseline" or "summary"
    label: str  # what the comparison's heading says of it
    checks: dict[str, dict[str, Any]]
    latency: dict[str, dict[str, Any]]
    e2e: dict[str, dict[str, Any]]
    fingerprint: dict[str, Any] | None
    # The lab's inventory; None from a summary.json or a baseline written without one.
    inventory: dict[str, Any] | None = None
    # Each function's answers by image (answer_drift.py); {} where none were kept.
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the answers' image files are: the baseline's folder; None for a summary.json.
    folder: Path | None = None


def _read_json(path: Path, source: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(source, f"cannot read it ({exc.strerror})", "check its permissions") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(source, f"not JSON ({exc})", "name a file criobe-verify wrote") from None


def load_run(path: str | Path) -> Run:
    """A baseline folder, a baseline.json or a summary.json; BaselineInputError otherwise."""
    source = Path(path)
    if not source.exists():
        raise _fail(source, "no such file or folder", "check the path")
    file = source / FILE if source.is_dir() else source
    if source.is_dir() and not file.is_file():
        raise _fail(
            source,
            f"a folder without {FILE}",
            "name the folder `criobe-verify baseline DIR` wrote, or the summary.json of a run",
        )
    return run_of(_read_json(file, source), source)


def run_of(data: Any, source: Path | str) -> Run:
    """A baseline's or a summary.json's content as one side of a comparison."""
    if not isinstance(data, dict) or "format_version" not in data:
        raise _fail(
            source,
            "neither a baseline nor a summary.json (no format_version)",
            "name a file criobe-verify wrote",
        )
    found = data["format_version"]
    if data.get("kind") == KIND:
        if found != FORMAT_VERSION:
            raise _fail(
                source,
                f"baseline format_version {found!r} is not known (this "
                f"criobe-verify reads {FORMAT_VERSION})",
                "compare it with the criobe-verify release that wrote it, or write a new baseline",
            )
        checks, latency, e2e = data.get("checks"), data.get("latency"), data.get("e2e")
        fingerprint, inventory = data.get("fingerprint"), data.get("inventory")
        answers = data.get("answers") or {}
        run = data.get("run") or {}
        label = (
            f"baseline of {data.get('written_at', '?')}, profile {run.get('profile')}, "
            f"{(run.get('verdict') or {}).get('status', '?')}"
        )
        kind = "baseline"
    else:
        if found != SUMMARY_FORMAT_VERSION:
            raise _fail(
                source,
                f"summary.json format_version {found!r} is not known (this "
                f"criobe-verify reads {SUMMARY_FORMAT_VERSION})",
                "run criobe-verify again, or `criobe-verify baseline DIR`, to write a current one",
            )
        raw = data.get("checks")
        if not isinstance(raw, dict):
            raise _fail(source, "a summary.json without checks", "name a run's summary.json")
        checks, latency, e2e = checks_of(raw), latency_of(raw), e2e_of(raw)
        fingerprint, inventory, kind = None, None, "summary"
        answers = answers_of(raw)
        label = f"summary.json, profile {data.get('profile')}, " + str(
            (data.get("verdict") or {}).get("status", "?")
        )
    parts = (("checks", checks), ("latency", latency), ("e2e", e2e), ("answers", answers))
    for name, value in parts:
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise _fail(
                source, f"its {name} is not an object of objects", "write the baseline again"
            )
    if fingerprint is not None and not isinstance(fingerprint, dict):
        raise _fail(source, "its fingerprint is not an object", "write the baseline again")
    if inventory is not None and not isinstance(inventory, dict):
        raise _fail(source, "its inventory is not an object", "write the baseline again")
    folder = Path(source) if kind == "baseline" else None
    if folder is not None and not folder.is_dir():
        folder = folder.parent  # its baseline.json named: the files are beside it
    return Run(
        str(source), kind, label, checks, latency, e2e, fingerprint, inventory, answers, folder
    )
