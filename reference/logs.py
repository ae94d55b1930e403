"""Structured logs: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from aiohttp.http_exceptions import BadHttpMessage

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "msg", ...extra}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PeerFaultFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line or header past its limits, bad
    syntax) as an error with a traceback, although it answers 400 and the fault is the
    peer's: such a record becomes one warning line, as for every other refused peer, so that a
    hostile client cannot fill the log with tracebacks and errors keep meaning the server's."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, BadHttpMessage):
            record.msg = f"{record.getMessage()}: {type(fault).__name__}: {str(fault)[:200]}"
            record.args = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def configure(level: str) -> None:
    """Send every logger's records at ``level`` and above to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # python-socketio and engineio log every packet at INFO; keep them for --log-level debug.
    # Their ".server" loggers get a level here, else each server adds a plain-text stderr
    # handler of its own (and every line it logs would also come out once more, not as JSON).
    for noisy in ("socketio", "socketio.server", "engineio", "engineio.server", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, PeerFaultFilter) for f in server_log.filters):
        server_log.addFilter(PeerFaultFilter())
