"""What the suite observed and concluded: the errors it raises, the event log, ``expect`` helpers.

Every exception of the suite derives from :class:`ConformanceError`. A target that breaks a
clause raises (or records) a :class:`ConformanceFailure`: an ``AssertionError`` naming the
clause, what was expected, what was received, and the shortest slice of the case's
:class:`EventLog` that shows it.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Sequence

__all__ = [
    "CaseTimeout",
    "ConformanceError",
    "ConformanceFailure",
    "ConnectFailed",
    "ConnectRefused",
    "ConnectionLost",
    "EventLog",
    "Indeterminate",
    "LogEntry",
    "NoReply",
    "SuiteError",
    "active_log",
    "describe_offsets",
    "expect",
    "expect_error",
    "expect_offsets",
    "expect_ok",
    "expect_refused",
    "expect_status",
    "fail",
    "failure_dict",
    "ranges",
    "summarize",
]

LOG_SLICE: Final = 40  # entries kept with a failure: enough context, short enough to read
_SUMMARY_CHARS: Final = 200
_CONNECTION_KINDS: Final = frozenset({"connect", "connect_error", "disconnect"})


# --- errors ---------------------------------------------------------------------------------


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
        log: Iterable[LogEntry] = (),
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

    def __init__(self, message: str, log: Iterable[LogEntry] = ()) -> None:
        self.log = list(log)
        lines = [f"  {entry.line()}" for entry in self.log]
        super().__init__(
            "\n".join([message, *(["the event log ends with:"] if lines else []), *lines])
        )


class ConnectFailed(ConformanceError):
    """A Socket.IO connection failed below Socket.IO (refused, reset, handshake timeout)."""


# --- the event log --------------------------------------------------------------------------


def ranges(offsets: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1..3, 5, 7..8"`` (in the given order, runs of +1 joined)."""
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs) or "none"


def _offsets_of(messages: object) -> list[int] | None:
    if not isinstance(messages, list):
        return None
    found = [m.get("offset") for m in messages if isinstance(m, dict)]
    return [o for o in found if isinstance(o, int)]


def summarize(payload: object, limit: int = _SUMMARY_CHARS) -> str:
    """A short, single-line rendering of a payload; message lists become offset ranges."""
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        offsets = _offsets_of(payload["messages"]) or []
        rest = {k: v for k, v in payload.items() if k != "messages"}
        shown = f"messages=[{ranges(offsets)}] ({len(payload['messages'])})"
        return (f"{summarize(rest, limit)} " if rest else "") + shown
    try:
        text = json.dumps(payload, separators=(",", ":"), sort_keys=False, default=repr)
    except (TypeError, ValueError):
        text = repr(payload)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """The ordered observations of one case, shared by its clients and backend calls.

    It also collects violations found while observing (an invalid payload, a gap in a stream):
    they fail the case when it ends.
    """

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


def _is_connection(entry: LogEntry) -> bool:
    return entry.kind in _CONNECTION_KINDS or entry.name == "connect"


active_log: contextvars.ContextVar[EventLog | None] = contextvars.ContextVar(
    "replay_active_log", default=None
)


# --- expect helpers -------------------------------------------------------------------------


def fail(
    clause: str | None,
    expected: str,
    received: object,
    *,
    channel: str | None = None,
    actor: str | None = None,
) -> NoReturn:
    """Raise a :class:`ConformanceFailure` with the case's recent event log attached."""
    __tracebackhide__ = True
    log = active_log.get()
    text = received if isinstance(received, str) else summarize(received)
    raise ConformanceFailure(clause, expected, text, log.tail(channel, actor) if log else ())


def expect(
    condition: object,
    *,
    clause: str | None,
    expected: str,
    received: object,
    channel: str | None = None,
    actor: str | None = None,
) -> None:
    """Fail the case (naming ``clause``) unless ``condition`` holds."""
    __tracebackhide__ = True
    if not condition:
        fail(clause, expected, received, channel=channel, actor=actor)


def _channel_of(reply: object) -> str | None:
    channel = reply.get("channel") if isinstance(reply, dict) else None
    return channel if isinstance(channel, str) else None


def expect_ok(reply: object, *, clause: str | None, channel: str | None = None) -> dict[str, Any]:
    """The reply is an ok reply (``"ok": true``); returns it."""
    __tracebackhide__ = True
    channel = channel or _channel_of(reply)
    if isinstance(reply, dict) and reply.get("ok") is True:
        return reply
    fail(clause, "an ok reply", reply, channel=channel)


def expect_error(
    reply: object, code: str, *, clause: str | None, channel: str | None = None
) -> dict[str, Any]:
    """The reply is an error reply with ``code``; returns its ``error`` object."""
    __tracebackhide__ = True
    error = reply.get("error") if isinstance(reply, dict) else None
    is_error = isinstance(reply, dict) and reply.get("ok") is False
    if is_error and isinstance(error, dict) and error.get("code") == code:
        return error
    fail(clause, f"an error reply with code {code!r}", reply, channel=channel)


def expect_status(
    response: tuple[int, Any],
    status: int,
    *,
    clause: str | None,
    code: str | None = None,
    channel: str | None = None,
) -> Any:
    """An HTTP ``(status, body)`` has ``status`` (and error ``code``); returns the body."""
    __tracebackhide__ = True
    got, body = response
    error = body.get("error") if isinstance(body, dict) else None
    got_code = error.get("code") if isinstance(error, dict) else None
    if got == status and (code is None or got_code == code):
        return body
    want = f"HTTP {status}" + (f" with error code {code!r}" if code else "")
    fail(clause, want, f"HTTP {got} {summarize(body)}", channel=channel)


def expect_duplicate_of(
    answer: object,
    original: Mapping[str, Any],
    *,
    clause: str,
    channel: str | None = None,
    what: str = "",
) -> None:
    """A publish answer for a repeated id says ``duplicate: true`` at the original's offset
    (IDM-1); ``what`` names the publish in the failure."""
    __tracebackhide__ = True
    offset = original.get("offset")
    expect(
        isinstance(answer, Mapping)
        and answer.get("duplicate") is True
        and answer.get("offset") == offset,
        clause=clause,
        expected=f"{what + ': ' if what else ''}duplicate true with the original offset {offset}",
        received=answer,
        channel=channel,
    )


def describe_offsets(received: Sequence[int], expected: Sequence[int]) -> str:
    """How ``received`` differs from ``expected``: missing, duplicate, extra, reordered."""
    counts = Counter(received)
    wanted = set(expected)
    problems = []
    if missing := [o for o in expected if o not in counts]:
        problems.append(f"missing {ranges(missing)}")
    if duplicates := sorted(o for o, n in counts.items() if n > 1):
        problems.append(f"duplicated {ranges(duplicates)}")
    if extra := sorted(o for o in counts if o not in wanted):
        problems.append(f"unexpected {ranges(extra)}")
    if not problems:
        at = next(i for i, (a, b) in enumerate(zip(received, expected, strict=False)) if a != b)
        problems.append(f"out of order at position {at}: {received[at]} instead of {expected[at]}")
    return f"{len(received)} offsets [{ranges(received)}]: {'; '.join(problems)}"


def expect_offsets(
    received: Sequence[int],
    expected: Sequence[int],
    *,
    clause: str | None,
    channel: str | None = None,
    actor: str | None = None,
) -> None:
    """The delivered offsets are exactly ``expected``, in that order."""
    __tracebackhide__ = True
    if list(received) != list(expected):
        fail(
            clause,
            f"offsets [{ranges(expected)}] in order",
            describe_offsets(received, expected),
            channel=channel,
            actor=actor,
        )


async def expect_refused(
    attempt: Awaitable[object], *, clause: str | None, message: str = "unauthorized"
) -> ConnectRefused:
    """Await a connect attempt that must be refused with CONNECT_ERROR ``{"message": ...}``."""
    __tracebackhide__ = True
    want = f'CONNECT_ERROR {{"message": "{message}"}}'
    try:
        await attempt
    except ConnectRefused as refused:
        expect(
            refused.message == message,
            clause=clause,
            expected=want,
            received=f"CONNECT_ERROR {summarize(refused.data)}",
        )
        return refused
    fail(clause, want, "the connection was accepted")


def as_failure(error: BaseException | None) -> ConformanceFailure | None:
    """``error`` as one finding: itself, or the findings of an exception group as one.

    Hypothesis raises an ``ExceptionGroup`` when a scenario run found several distinct
    failures; when every one of them is a finding, the first leads and the rest are attached,
    so the report still names each clause. Any other error in the group makes it no finding.
    """
    if isinstance(error, ConformanceFailure):
        return error
    if not isinstance(error, BaseExceptionGroup):
        return None
    found = [as_failure(inner) for inner in error.exceptions]
    if not found or None in found:
        return None
    first, *rest = (f for f in found if f is not None)
    others = [*first.others, *(f for r in rest for f in (r, *r.others))]
    return ConformanceFailure(first.clause, first.expected, first.received, first.log, others)


def failure_dict(failure: ConformanceFailure) -> Mapping[str, Any]:
    """A JSON-ready rendering of a failure (for reports)."""
    return {
        "clause": failure.clause,
        "clauses": failure.clauses,
        "expected": failure.expected,
        "received": failure.received,
        "also": [other.headline for other in failure.others],
        "log": [entry.line() for entry in failure.log],
    }
