"""Logging to stdout (what `docker logs bridge` and the suite's log tail show), with every
secret the bridge knows replaced by ``***`` whatever logged it.

    >>> import io
    >>> out = io.StringIO()
    >>> log = setup_logging("INFO", ["s3cret"], stream=out, name="doctest-bridge")
    >>> log.info("login with %s failed", "s3cret")
    >>> "s3cret" in out.getvalue(), "login with *** failed" in out.getvalue()
    (False, True)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# cvat-sdk logs task creation and upload progress under its own name.
OTHER_LOGGERS = ("cvat_sdk",)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            text = text.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = text, ()
        return True


def setup_logging(
    level: str, secrets: Iterable[str], *, stream: TextIO | None = None, name: str = "bridge"
) -> logging.Logger:
    """The bridge's logger (and cvat-sdk's), writing to ``stream`` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    for logger_name in (name, *OTHER_LOGGERS):
        logger = logging.getLogger(logger_name)
        for old in [h for h in logger.handlers if getattr(h, "_criobe_bridge", False)]:
            logger.removeHandler(old)
        handler._criobe_bridge = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        # cvat-sdk logs every status poll of an upload at INFO: only its warnings, unless
        # LOG_LEVEL=DEBUG asks for everything.
        logger.setLevel(level if logger_name == name or level == "DEBUG" else "WARNING")
        # uvicorn configures only its own loggers; not propagating keeps lines single.
        logger.propagate = False
    return logging.getLogger(name)
