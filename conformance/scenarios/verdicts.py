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
    from collections.abc import Collection

    from conformance.scenarios.model import SessionHandle

__all__ = ["ack_cursor", "cursor_start", "grant_verdict", "history_outcome", "subscribe_outcome"]


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
    stale: Collection[object] = (),
    sent_epoch: object = None,
) -> ConformanceFailure | None:
    """A subscribe the grants allow succeeds, or finds the channel already subscribed.

    On a ``trimmed`` channel (retention was set on it) a start at an offset, or through the
    session's cursor, may also be below what is retained (SUB-6), unless it allows truncation
    (SUB-11). A resume with an epoch a restart replaced fails ``epoch_mismatch`` (SUB-4), and
    no ok reply names such an epoch again (EPO-4). Right after a connect, an auto-subscription
    may win the race for the channel (AUT-5); a session that may have expired is answered
    ``unauthorized`` (EVT-14).
    """
    if not grants_allow(session.grants, channel, "subscribe"):
        return None
    expected = {"already_subscribed"} if already else {"ok"}
    if channel in session.auto_channels:
        expected |= {"ok", "already_subscribed"}
    below_first = isinstance(from_, int) or (from_ is None and start == "omitted")
    if trimmed and below_first and not start.endswith("truncating") and "ok" in expected:
        expected.add("history_truncated")
    if sent_epoch is not None and sent_epoch in stale:
        expected = (expected - {"ok", "history_truncated"}) | {"epoch_mismatch"}  # SUB-4
    if session.may_have_lapsed():
        expected.add("unauthorized")  # EVT-14: it expired, and its socket lingers
    got = "ok" if reply.get("ok") is True else _code(reply)
    if got == "ok" and reply.get("epoch") in stale:
        return ConformanceFailure(
            "EPO-4", f"an epoch other than the earlier {sorted(map(str, stale))}", str(reply)[:200]
        )
    if got in expected:
        return None
    clause = "SUB-4" if "epoch_mismatch" in expected else START_CLAUSES[start]
    # The client knows when a refusal breaks another clause (a subscribe again after an
    # unsubscribe refused as already subscribed: UNS-4).
    clause = getattr(reply, "step", None) or clause
    return ConformanceFailure(
        "SUB-3" if already else clause,
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


def history_outcome(
    session: SessionHandle,
    channel: str,
    from_: int | str,
    reply: dict[str, Any],
    *,
    trimmed: bool,
    stale: Collection[object],
    sent_epoch: object,
) -> ConformanceFailure | None:
    """A history read the grants allow: with an epoch a restart replaced, ``epoch_mismatch``
    (HIS-10); on a channel no retention trimmed, the messages from ``from`` on, offset 1
    included (HIS-4); on a trimmed one, that or ``history_truncated`` (HIS-7)."""
    if not grants_allow(session.grants, channel, "history") or session.may_have_lapsed():
        return None
    got = "ok" if reply.get("ok") is True else _code(reply)
    if sent_epoch is not None and sent_epoch in stale:
        if got == "epoch_mismatch":
            return None
        return ConformanceFailure("HIS-10", "epoch_mismatch for a replaced epoch", str(reply)[:200])
    if got == "history_truncated" and trimmed:
        return None
    messages = reply.get("messages")
    head = reply.get("head")
    if got == "ok" and isinstance(messages, list):
        due = from_ if isinstance(from_, int) else None
        if due is None and not trimmed and isinstance(head, int) and head > 0:
            due = 1  # nothing was ever removed: "beginning" is offset 1
        if due is None or (isinstance(head, int) and due > head):
            return None
        if trimmed and from_ == "beginning":
            return None
        first = messages[0].get("offset") if messages and isinstance(messages[0], dict) else None
        if first == due:
            return None
    return ConformanceFailure(
        "HIS-4",
        f"the messages from {from_!r} on{'' if trimmed else ' (no retention removed any)'}",
        str(reply)[:200],
    )
