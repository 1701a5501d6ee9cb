"""What this run has found so far, shared by every process of the run (pytest-xdist workers
and their controller) through a directory, so the layer gate and check dependencies hold
across workers.

    >>> import tempfile
    >>> state = RunState(tempfile.mkdtemp())
    >>> state.write_collection({"t::a": {"layer": "host"}, "t::b": {"layer": "ports"}})
    >>> state.record("t::a", {"outcome": "failed", "layer": "host", "kind": "functional"})
    >>> state.result("t::a")["outcome"]
    'failed'
    >>> state.wait_for(["t::a"], timeout=1)
    True

Each result is a small JSON file written atomically (rename), so a reader never sees half a
record; the directory lives for one run and is removed by the process that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


class RunState:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.results_dir = self.directory / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)

    def _result_path(self, nodeid: str) -> Path:
        return self.results_dir / (hashlib.sha1(nodeid.encode()).hexdigest() + ".json")

    def write_collection(self, entries: dict[str, dict[str, Any]]) -> None:
        """The collected checks in run order: nodeid → {layer, kind, guide, ...}."""
        _atomic_write(self.directory / "collection.json", list(entries.items()))

    def collection(self) -> dict[str, dict[str, Any]]:
        return dict(_read(self.directory / "collection.json") or [])

    def record(self, nodeid: str, entry: dict[str, Any]) -> None:
        _atomic_write(self._result_path(nodeid), {"nodeid": nodeid, **entry})

    def result(self, nodeid: str) -> dict[str, Any] | None:
        return _read(self._result_path(nodeid))

    def results(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in self.results_dir.glob("*.json"):
            entry = _read(path)
            if entry:
                found[entry["nodeid"]] = entry
        return found

    def put(self, name: str, data: Any) -> None:
        """A run-wide fact (the bring-up's result, the baseline snapshot)."""
        _atomic_write(self.directory / f"{name}.json", data)

    def get(self, name: str) -> Any:
        return _read(self.directory / f"{name}.json")

    def request_stop(self, reason: str) -> None:
        self.put("stop", {"reason": reason})

    def stop_reason(self) -> str | None:
        stop = self.get("stop")
        return stop["reason"] if stop else None

    def wait_for(
        self,
        nodeids: Iterable[str],
        timeout: float,
        poll: float = 0.05,
        progress: Callable[[list[str], float], None] | None = None,
    ) -> bool:
        """Until every nodeid has a result, the run is stopped, or the timeout; True if all."""
        pending = [n for n in nodeids if not self._result_path(n).exists()]
        start = time.monotonic()
        last_progress = start
        while pending:
            if self.stop_reason() is not None:
                return False
            now = time.monotonic()
            if now - start >= timeout:
                return False
            if progress and now - last_progress >= 10:
                progress(pending, now - start)
                last_progress = now
            time.sleep(poll)
            pending = [n for n in pending if not self._result_path(n).exists()]
        return True
