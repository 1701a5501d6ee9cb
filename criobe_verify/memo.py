"""A fact asked of the stack once per run, on first use, the way the Docker snapshot is.

    >>> asked = []
    >>> listing = Once(lambda: asked.append("dashboard") or {"pth-lama": {}})
    >>> listing(), listing(), asked      # asked once, the same answer after
    ({'pth-lama': {}}, {'pth-lama': {}}, ['dashboard'])
    >>> down = Once(lambda: 1 / 0)
    >>> for _ in range(2):               # a failure is kept and raised again
    ...     try:
    ...         down()
    ...     except ZeroDivisionError:
    ...         print("still down")
    still down
    still down

Checks that each asked for the same listing made a layer quadratic in the functions; a kept
failure makes every check that reads the fact fail with the same diagnosis, as each did when
it asked for itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    def __init__(self, ask: Callable[[], T]) -> None:
        self._ask = ask
        self._asked = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def __call__(self) -> T:
        if not self._asked:
            self._asked = True
            try:
                self._value = self._ask()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # pytest's outcomes (fail, skip) are kept as well
                self._error = exc
        if self._error is not None:
            raise self._error.with_traceback(None)
        return self._value  # type: ignore[return-value]
