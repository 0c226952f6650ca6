"""CoreDNS-style log lines on stdout: `[INFO] message`, `[WARNING] …`, `[ERROR] …`."""

from __future__ import annotations

import logging
import sys

_LEVELS = {"WARNING": "WARNING", "CRITICAL": "FATAL"}


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelname, record.levelname)
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return f"[{level}] {msg}"


def setup(quiet: bool = False, debug: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Format())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    del quiet
