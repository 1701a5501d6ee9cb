"""The bridge's background worker: one thread that runs the pipeline steps in arrival order.

CVAT gives a webhook 10 s, while a stage takes seconds to minutes, so the endpoints answer at
once and queue the work here. One thread keeps the documented behaviour that two detect
webhooks on one project run one after the other, and a key keeps the same change from
being queued twice while it waits or runs.

    >>> w = Worker()
    >>> w.submit(("detect", 5), "detect job 5", lambda: None)
    True
    >>> w.wait_idle(5)
    True
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Hashable

log = logging.getLogger("bridge")


class Worker:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Hashable, str, Callable[[], None]]] = queue.Queue()
        self._lock = threading.Condition()
        self._pending: set[Hashable] = set()
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, what: str, work: Callable[[], None]) -> bool:
        """Queue ``work``; False (nothing queued) when ``key`` is already waiting or running."""
        with self._lock:
            if key in self._pending:
                return False
            self._pending.add(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bridge-worker", daemon=True)
                self._thread.start()
        self._queue.put((key, what, work))
        return True

    def _run(self) -> None:
        while True:
            key, what, work = self._queue.get()
            try:
                work()
            except Exception:
                # The steps log their own failures; this is a bug's last resort.
                log.exception("%s: unexpected error", what)
            finally:
                with self._lock:
                    self._pending.discard(key)
                    self._lock.notify_all()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (tests, shutdown); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending, timeout)
