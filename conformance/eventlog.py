"""The event log: every observation of one case, in the order the suite made it.

Clients and backend calls of a case share one :class:`EventLog`. It also collects the
violations found while observing (an invalid payload, a gap in a stream): they fail the case
when it ends. The whole-trace checkers read it back afterwards (:mod:`conformance.trace`).
"""

from __future__ import annotations

import contextvars
import enum
import itertools
import time
from dataclasses import dataclass
from typing import Any, Final

from conformance.errors import ConformanceFailure, SuiteError
from conformance.text import summarize

__all__ = ["KNOWN", "LOG_SLICE", "EventLog", "KnownEpoch", "LogEntry", "active_log"]

LOG_SLICE: Final = 40  # entries kept with a failure: enough context, short enough to read
_CONNECTION_KINDS: Final = frozenset({"connect", "connect_error", "disconnect"})


@dataclass(frozen=True)
class LogEntry:
    """One observation of a case, in the order the suite observed it.

    ``kind`` is ``send`` (an operation invoked: a client event, an HTTP request, a connect
    attempt), ``reply`` (its completion), ``connect``, ``connect_error``, ``disconnect`` or
    ``event`` (a server event). A completion carries the ``op`` of its ``send`` and an
    ``outcome``: ``ok``, ``failed`` or ``indeterminate`` (no reply; the effect is unknown).
    """

    seq: int
    t: float  # seconds since the case started (monotonic clock)
    actor: str  # client name, or "backend" / "backend@<node>"
    kind: str
    name: str  # event name, "connect", or "METHOD /path"
    channel: str | None = None
    op: int | None = None
    outcome: str | None = None
    payload: Any = None

    def line(self) -> str:
        """A one-line rendering for reports and failure messages."""
        parts = [f"#{self.seq:<4} +{self.t:7.3f}s {self.actor:<9} {self.kind:<13} {self.name}"]
        if self.op is not None:
            parts.append(f"op={self.op}")
        if self.outcome:
            parts.append(self.outcome)
        if self.payload is not None:
            parts.append(summarize(self.payload))
        return " ".join(parts)


class EventLog:
    """The ordered observations of one case, and the violations found while observing."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.violations: list[ConformanceFailure] = []
        self._t0 = time.monotonic()
        self._ops = itertools.count(1)

    def record(
        self,
        actor: str,
        kind: str,
        name: str,
        *,
        channel: str | None = None,
        op: int | None = None,
        outcome: str | None = None,
        payload: Any = None,
    ) -> LogEntry:
        """Append one entry and return it."""
        entry = LogEntry(
            seq=len(self.entries) + 1,
            t=time.monotonic() - self._t0,
            actor=actor,
            kind=kind,
            name=name,
            channel=channel,
            op=op,
            outcome=outcome,
            payload=payload,
        )
        self.entries.append(entry)
        return entry

    def invoke(self, actor: str, name: str, *, channel: str | None, payload: Any) -> int:
        """Record an operation being invoked (``send``); returns its op id for the completion."""
        op = next(self._ops)
        self.record(actor, "send", name, channel=channel, op=op, payload=payload)
        return op

    def violation(
        self,
        clause: str,
        expected: str,
        received: str,
        *,
        channel: str | None = None,
        actor: str | None = None,
    ) -> ConformanceFailure:
        """Record a failure observed in passing; the case fails with it when it ends."""
        failure = ConformanceFailure(clause, expected, received, self.tail(channel, actor))
        self.violations.append(failure)
        return failure

    def tail(
        self, channel: str | None = None, actor: str | None = None, limit: int = LOG_SLICE
    ) -> list[LogEntry]:
        """The last ``limit`` entries about ``channel`` or ``actor`` (all when both are None).

        An actor's connection entries are kept with a channel's: they explain gaps.
        """
        if channel is None and actor is None:
            return self.entries[-limit:]
        actors = {e.actor for e in self.entries if channel is not None and e.channel == channel}
        actors.add(actor or "")
        picked = [
            e
            for e in self.entries
            if (channel is not None and e.channel == channel)
            or (actor is not None and e.actor == actor)
            or (e.channel is None and e.actor in actors and _is_connection(e))
        ]
        return picked[-limit:]

    def find(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        actor: str | None = None,
        channel: str | None = None,
        op: int | None = None,
    ) -> list[LogEntry]:
        """The entries matching every given field, in order."""
        wanted = {"kind": kind, "name": name, "actor": actor, "channel": channel, "op": op}
        return [
            e
            for e in self.entries
            if all(v is None or getattr(e, k) == v for k, v in wanted.items())
        ]

    def epoch_of(self, channel: str) -> str | None:
        """The latest epoch the case has seen for ``channel`` (in a publish answer, a reply or
        an event), or None: what a client that keeps its offsets with their epochs knows."""
        for entry in reversed(self.entries):
            if entry.channel != channel or entry.kind not in ("reply", "event"):
                continue
            body = entry.payload
            if isinstance(body, dict) and "status" in body and "body" in body:
                body = body["body"]  # an HTTP answer
            epoch = body.get("epoch") if isinstance(body, dict) else None
            if isinstance(epoch, str) and body.get("channel", channel) == channel:
                return epoch
        return None

    def epoch_for(self, channel: str, offset: object, epoch: str | KnownEpoch | None) -> str | None:
        """The ``epoch`` to send with ``offset`` (EPO-6): as given, or with :data:`KNOWN` the
        latest one seen for the channel when ``offset`` is an integer (none for a keyword)."""
        if not isinstance(epoch, KnownEpoch):
            return epoch
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            return None  # a keyword (or nothing): no offset, no epoch (EPO-6)
        known = self.epoch_of(channel)
        if known is None:
            raise SuiteError(
                f"the case sends offset {offset} of {channel} before it has seen the channel's "
                "epoch: pass epoch= (an offset always travels with its epoch, EPO-6)"
            )
        return known


class KnownEpoch(enum.Enum):
    """The default ``epoch`` of the helpers that send an offset: the one the case has seen."""

    KNOWN = "known"


KNOWN = KnownEpoch.KNOWN


def _is_connection(entry: LogEntry) -> bool:
    return entry.kind in _CONNECTION_KINDS or entry.name == "connect"


# The running case's log: set by the case runner, read by ``fail`` to attach the log's tail.
active_log: contextvars.ContextVar[EventLog | None] = contextvars.ContextVar(
    "replay_active_log", default=None
)
