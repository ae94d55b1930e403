"""The whole history of a failing case (``--replay-history DIR``): its full event log as JSON
lines, one entry a line, so a failure can be studied offline (as Jepsen keeps its histories).

A failure's message carries only the end of the log; the case runner attaches every entry to
the error that ends a case (:func:`attach`), and the plugin writes them (:func:`write`) under
a name derived from the case's node ID, which the report then names.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conformance.eventlog import LogEntry

__all__ = ["attach", "file_name", "history_of", "write"]

_ATTRIBUTE: Final = "replay_history"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def attach(error: BaseException, entries: Sequence[LogEntry]) -> None:
    """Keep the case's whole log on the error that ends it (the first attached wins)."""
    if history_of(error) is None:
        setattr(error, _ATTRIBUTE, tuple(entries))


def history_of(error: BaseException | None) -> tuple[LogEntry, ...] | None:
    """The log attached to ``error``, if any."""
    entries = getattr(error, _ATTRIBUTE, None)
    return entries if isinstance(entries, tuple) else None


def file_name(nodeid: str) -> str:
    """A case's history file: ``d/test_x.py::test_y[a]`` -> ``test_x.py--test_y-a-.jsonl``."""
    short = nodeid.rsplit("/", 1)[-1].replace("::", "--")
    return _UNSAFE.sub("-", short)[:180] + ".jsonl"


def write(directory: str | Path, nodeid: str, entries: Sequence[LogEntry]) -> Path:
    """Write the entries as JSON lines to ``directory``; returns the file's path."""
    path = Path(directory) / file_name(nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"case": nodeid, **asdict(e)}, default=str) for e in entries)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
