"""Bounded waits that log progress and fail with what they last saw.

>>> wait_until(lambda: (True, "ready"), timeout=5, what="nothing")
'ready'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("criobe_verify")


class WaitTimeout(TimeoutError):
    pass


def wait_until(
    probe: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    log_every: float = 10.0,
    on_timeout: Callable[[], str] | None = None,
) -> str:
    """Poll `probe` until it returns (True, status); log the status every `log_every` s.

    On timeout raise WaitTimeout naming `what`, the last status and `on_timeout()`'s diagnosis
    (container states, log tails), so the error explains itself.
    """
    start = time.monotonic()
    last_log = start
    status = "not probed yet"
    while True:
        ok, status = probe()
        if ok:
            return status
        now = time.monotonic()
        if now - start >= timeout:
            detail = on_timeout() if on_timeout else ""
            raise WaitTimeout(
                f"{what}: not ready after {timeout:.0f} s; last status: {status}"
                + (f"\n{detail}" if detail else "")
            )
        if now - last_log >= log_every:
            log.warning("waiting for %s (%.0f s): %s", what, now - start, status)
            last_log = now
        time.sleep(interval)
