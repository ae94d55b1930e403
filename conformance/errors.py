"""Every exception the suite raises, under one root: :class:`ConformanceError`.

A target that breaks a clause raises (or records) a :class:`ConformanceFailure`: an
``AssertionError`` naming the clause, what was expected, what was received, and the shortest
slice of the case's event log that shows it. The log's entries only need to render as a line
(:class:`LogLine`), so this module sits below the event log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from conformance.text import summarize

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "CaseTimeout",
    "ConformanceError",
    "ConformanceFailure",
    "ConnectFailed",
    "ConnectRefused",
    "ConnectionLost",
    "Indeterminate",
    "LogLine",
    "NoReply",
    "SuiteError",
]


class LogLine(Protocol):
    """What a failure keeps of an event-log entry: its one-line rendering."""

    def line(self) -> str: ...


class ConformanceError(Exception):
    """Root of every exception the conformance suite raises."""


class SuiteError(ConformanceError):
    """The suite cannot judge the target: bad options, unreachable target, no Docker, ..."""


class ConformanceFailure(ConformanceError, AssertionError):
    """The target broke a clause (``clause`` is None when the case's cited clauses decide)."""

    def __init__(
        self,
        clause: str | None,
        expected: str,
        received: str,
        log: Iterable[LogLine] = (),
        others: Iterable[ConformanceFailure] = (),
    ) -> None:
        self.clause = clause
        self.expected = expected
        self.received = received
        self.log = list(log)
        self.others = list(others)
        super().__init__(self.headline)

    @property
    def headline(self) -> str:
        """One line: ``[CLAUSE] expected ...; received ...``."""
        return f"[{self.clause or 'case'}] expected {self.expected}; received {self.received}"

    @property
    def clauses(self) -> list[str]:
        """The clauses this failure (and the ones found with it) name."""
        named = [self.clause, *(other.clause for other in self.others)]
        return list(dict.fromkeys(c for c in named if c))

    def __str__(self) -> str:
        lines = [self.headline]
        lines += [f"also: {other.headline}" for other in self.others]
        if self.log:
            lines.append(f"event log ({len(self.log)} entries, ending at the failure):")
            lines += [f"  {entry.line()}" for entry in self.log]
        return "\n".join(lines)


class Indeterminate(ConformanceError):
    """An operation's outcome is unknown: it may or may not have taken effect."""


class ConnectionLost(Indeterminate):
    """The socket disconnected before the operation's reply arrived."""


class NoReply(Indeterminate, ConformanceFailure):
    """No reply arrived within the timeout although the socket stayed connected (EVT-1)."""


class ConnectRefused(ConformanceError):
    """The target refused a Socket.IO connection with a CONNECT_ERROR packet."""

    def __init__(self, data: object) -> None:
        self.data = data
        self.message = data.get("message") if isinstance(data, dict) else None
        super().__init__(f"CONNECT_ERROR {summarize(data)}")


class CaseTimeout(ConformanceError):
    """A case (or any coroutine the driver runs) did not finish in time and was cancelled."""

    def __init__(self, message: str, log: Iterable[LogLine] = ()) -> None:
        self.log = list(log)
        lines = [f"  {entry.line()}" for entry in self.log]
        super().__init__(
            "\n".join([message, *(["the event log ends with:"] if lines else []), *lines])
        )


class ConnectFailed(ConformanceError):
    """A Socket.IO connection failed below Socket.IO (refused, reset, handshake timeout)."""
