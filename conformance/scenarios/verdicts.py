"""What the scenarios judge on the spot, from a reply and the model alone.

Pure functions: each returns the :class:`~conformance.errors.ConformanceFailure` a reply
shows (the caller attaches the log), or None. The whole-trace checkers judge everything else
at teardown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance.errors import ConformanceFailure
from conformance.protocol import grants_allow
from conformance.scenarios.model import START_CLAUSES

if TYPE_CHECKING:
    from conformance.scenarios.model import SessionHandle

__all__ = ["ack_cursor", "cursor_start", "grant_verdict", "subscribe_outcome"]


def _code(reply: dict[str, Any]) -> object:
    return (reply.get("error") or {}).get("code") if reply.get("ok") is False else None


def grant_verdict(
    session: SessionHandle, channel: str, action: str, reply: dict[str, Any]
) -> ConformanceFailure | None:
    """An action the grants allow is not forbidden (ACC-4); one they do not is (ACC-5)."""
    allowed = grants_allow(session.grants, channel, action)
    if _code(reply) == "forbidden" and allowed:
        return ConformanceFailure(
            "ACC-4", f"{action} on {channel} allowed by {session.grant_set}", "forbidden"
        )
    if reply.get("ok") is True and not allowed:
        return ConformanceFailure(
            "ACC-5",
            f"forbidden: {session.grant_set} does not cover {channel}",
            f"an ok reply to {action}",
        )
    return None


def subscribe_outcome(
    session: SessionHandle,
    channel: str,
    start: str,
    from_: object,
    already: bool,
    reply: dict[str, Any],
    *,
    trimmed: bool = False,
) -> ConformanceFailure | None:
    """A subscribe the grants allow succeeds, or finds the channel already subscribed.

    On a ``trimmed`` channel (retention was set on it) a start at an offset, or through the
    session's cursor, may also be below what is retained (SUB-6), unless it allows truncation
    (SUB-11). Right after a connect, an auto-subscription may win the race for the channel
    (AUT-5).
    """
    if not grants_allow(session.grants, channel, "subscribe"):
        return None
    expected = {"already_subscribed"} if already else {"ok"}
    if channel in session.auto_channels:
        expected |= {"ok", "already_subscribed"}
    below_first = isinstance(from_, int) or (from_ is None and start == "omitted")
    if trimmed and below_first and start != "truncating" and "ok" in expected:
        expected.add("history_truncated")
    got = "ok" if reply.get("ok") is True else _code(reply)
    if got in expected:
        return None
    return ConformanceFailure(
        "SUB-3" if already else START_CLAUSES[start],
        f"{' or '.join(sorted(expected))} for a subscribe from {from_!r}",
        str(reply)[:200],
    )


def cursor_start(
    session: SessionHandle, channel: str, reply: dict[str, Any]
) -> ConformanceFailure | None:
    """An omitted ``from`` starts after the session's cursor, or at the head (SUB-9)."""
    head = reply.get("head")
    starts = {
        c + 1 if c is not None else head + 1 if isinstance(head, int) else None
        for c in session.cursor_options(channel)
    }
    if reply.get("from") in starts:
        return None
    return ConformanceFailure(
        "SUB-9",
        f"a start at {' or '.join(map(str, sorted(s for s in starts if s)))} "
        "(the session's cursor + 1, or head + 1 without a cursor)",
        str(reply)[:200],
    )


def ack_cursor(
    after: frozenset[int], offset: int, reply: dict[str, Any]
) -> ConformanceFailure | None:
    """An ok ack reports one of the cursors the model allows after it (ACK-4)."""
    if reply.get("cursor") in after:
        return None
    return ConformanceFailure(
        "ACK-4",
        f"cursor {' or '.join(map(str, sorted(after)))} after an ack of {offset}",
        str(reply)[:200],
    )
