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
record; the directory lives for one run and is removed by the process that made it. A reader
keeps what it has read and rereads a file only when it was replaced (the layer gate asks for
every result before each check: rereading them all made a run quadratic in its checks).
A serial run (shared=False) keeps its results in memory alone.

    >>> alone = RunState(tempfile.mkdtemp(), shared=False)
    >>> alone.record("t::a", {"outcome": "passed", "layer": "host", "kind": "functional"})
    >>> sorted(alone.results()), alone.wait_for(["t::a"], timeout=1)
    (['t::a'], True)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from criobe_verify.waiting import settle


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
    def __init__(self, directory: str | Path, shared: bool = True) -> None:
        """shared: other processes (xdist workers) record results here too; a serial run's
        results are all its own, kept in memory as they are recorded."""
        self.directory = Path(directory)
        self.shared = shared
        self._own: dict[str, dict[str, Any]] = {}
        self.results_dir = self.directory / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._collection: dict[str, dict[str, Any]] | None = None
        # file name -> (inode, mtime_ns, entry): a replaced file has a new inode (rename)
        self._seen: dict[str, tuple[int, int, dict[str, Any] | None]] = {}
        self._done: set[str] = set()  # check ids known to have a result (results never go away)

    def _result_path(self, check_id: str) -> Path:
        return self.results_dir / (hashlib.sha1(check_id.encode()).hexdigest() + ".json")

    def write_collection(self, entries: dict[str, dict[str, Any]]) -> None:
        """The collected checks in run order: check id → {nodeid, layer, kind, guide, ...}."""
        _atomic_write(self.directory / "collection.json", list(entries.items()))

    def collection(self) -> dict[str, dict[str, Any]]:
        """Written once per run, before any check: kept once read."""
        if self._collection is None:
            entries = _read(self.directory / "collection.json")
            if entries is None:
                return {}
            self._collection = dict(entries)
        return self._collection

    def record(self, check_id: str, entry: dict[str, Any]) -> None:
        record = {"id": check_id, **entry}
        if self.shared:
            _atomic_write(self._result_path(check_id), record)
        self._own[check_id] = record
        self._done.add(check_id)

    def _has_result(self, check_id: str) -> bool:
        if check_id in self._done:
            return True
        if not self.shared:
            return False
        if self._result_path(check_id).exists():
            self._done.add(check_id)
            return True
        return False

    def result(self, check_id: str) -> dict[str, Any] | None:
        if not self.shared:
            return self._own.get(check_id)
        return _read(self._result_path(check_id))

    def results(self) -> dict[str, dict[str, Any]]:
        if not self.shared:
            return dict(self._own)
        found = {}
        with os.scandir(self.results_dir) as entries:
            for item in entries:
                if not item.name.endswith(".json"):
                    continue
                entry = self._cached_read(item)
                if entry:
                    found[entry["id"]] = entry
        return found

    def _cached_read(self, item: os.DirEntry) -> dict[str, Any] | None:
        try:
            st = item.stat()
        except FileNotFoundError:
            return None
        seen = self._seen.get(item.name)
        if seen is not None and seen[:2] == (st.st_ino, st.st_mtime_ns):
            return seen[2]
        entry = _read(Path(item.path))
        self._seen[item.name] = (st.st_ino, st.st_mtime_ns, entry)
        return entry

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
        self, check_ids: Iterable[str], timeout: float, poll: float = 0.05, what: str = ""
    ) -> bool:
        """Until every check_id has a result, the run is stopped, or the timeout; True if all.
        A wait longer than 10 s logs what it still waits for (`what` says who waits)."""
        pending = [n for n in check_ids if not self._has_result(n)]

        def look() -> tuple[bool, str]:
            pending[:] = [n for n in pending if not self._has_result(n)]
            stopped = self.stop_reason() is not None
            return not pending or stopped, f"{len(pending)} check(s) without a result, e.g. " + (
                pending[0] if pending else "none"
            )

        if pending:
            settle(look, timeout=timeout, what=what or "results of other workers", interval=poll)
        return not pending
