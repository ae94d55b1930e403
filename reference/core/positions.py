"""Resolving where a subscription or a history read starts (spec §6.1, §6.5).

These functions hold every offset rule of the protocol; the shell only fetches the channel
state and the session cursor they need.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference.core.errors import EpochMismatch, HistoryTruncated, OffsetOutOfRange
from reference.core.model import ChannelState, Cursor, JsonValue


@dataclass(frozen=True, slots=True)
class Truncation:
    """What a start below the retained history was moved to (SUB-11)."""

    requested: int
    first_available: int

    def to_wire(self) -> dict[str, int]:
        return {"requested": self.requested, "first_available": self.first_available}


@dataclass(frozen=True, slots=True)
class Start:
    """A resolved subscription start: the first offset to deliver, in one channel state."""

    state: ChannelState
    offset: int
    truncated: Truncation | None = None

    def to_wire(self, channel: str) -> dict[str, JsonValue]:
        """The members shared by the subscribe reply and ``replay:subscribed`` (SUB-12)."""
        wire: dict[str, JsonValue] = {
            "channel": channel,
            "epoch": self.state.epoch,
            "from": self.offset,
            "head": self.state.head,
        }
        if self.truncated is not None:
            wire["truncated"] = self.truncated.to_wire()
        return wire


def _check_integer(offset: int, state: ChannelState, *, allow_truncation: bool) -> Start:
    if offset > state.head + 1:  # SUB-5
        raise OffsetOutOfRange(
            f"from {offset} is beyond head + 1 ({state.head + 1})", head=state.head
        )
    if offset < state.lowest:
        if allow_truncation:  # SUB-11
            return Start(state, state.lowest, Truncation(offset, state.lowest))
        raise HistoryTruncated(  # SUB-6
            f"from {offset} is no longer retained; the first retained offset is {state.lowest}",
            first=state.first,
        )
    return Start(state, offset)


def resolve_subscribe(
    start: int | str | None,
    *,
    epoch: str | None,
    allow_truncation: bool,
    state: ChannelState,
    cursor: Cursor | None,
) -> Start:
    """Resolve a subscribe's ``from`` against the channel state and the session cursor.

    ``start`` is an offset, ``"beginning"``, ``"latest"`` or ``None`` (omitted). Raises the
    error of the first failing check, in the order of SUB-1.
    """
    if start is None:
        if cursor is not None and cursor.epoch == state.epoch:  # SUB-9, ACK-7
            return _check_integer(cursor.offset + 1, state, allow_truncation=allow_truncation)
        return Start(state, state.head + 1)  # SUB-9: as "latest"
    if start == "beginning":  # SUB-7
        return Start(state, state.lowest)
    if start == "latest":  # SUB-8
        return Start(state, state.head + 1)
    if not isinstance(start, int):
        raise TypeError(f"unexpected from {start!r}")  # payload validation keeps this out
    if epoch is not None and epoch != state.epoch:  # SUB-4, SIG-4 (SUB-10 when absent)
        raise EpochMismatch(f"epoch {epoch!r} is not the current epoch", current_epoch=state.epoch)
    return _check_integer(start, state, allow_truncation=allow_truncation)


def resolve_auto_subscription(
    entry_start: int | str,
    *,
    allow_truncation: bool,
    state: ChannelState,
    cursor: Cursor | None,
) -> Start:
    """Resolve an auto-subscription at connect: the cursor + 1 when the session has one in
    the current epoch, else the entry's own ``from`` (AUT-1, AUT-6)."""
    has_cursor = cursor is not None and cursor.epoch == state.epoch
    return resolve_subscribe(
        None if has_cursor else entry_start,
        epoch=None,
        allow_truncation=allow_truncation,
        state=state,
        cursor=cursor,
    )


def resolve_history(start: int | str | None, state: ChannelState) -> int:
    """Resolve a history read's ``from`` to the first offset to return (HIS-4, HIS-6, HIS-7)."""
    if start is None or start == "beginning":
        return state.lowest
    if not isinstance(start, int):
        raise TypeError(f"unexpected from {start!r}")
    if start > state.head + 1:  # HIS-6
        raise OffsetOutOfRange(
            f"from {start} is beyond head + 1 ({state.head + 1})", head=state.head
        )
    if start < state.lowest:  # HIS-7
        raise HistoryTruncated(
            f"from {start} is no longer retained; the first retained offset is {state.lowest}",
            first=state.first,
        )
    return start


def history_moved(resolved_in: ChannelState, first: int, read: ChannelState) -> bool:
    """True when a history read that resolved ``first`` in ``resolved_in`` found the channel
    changed under it (a lost epoch, or retention past ``first``), so that it must resolve its
    start again against the newer state rather than answer with a mix of the two (HIS-5)."""
    return read.epoch != resolved_in.epoch or read.lowest > first


def history_limit(requested: int | None, max_history_limit: int) -> int:
    """How many messages a history read returns at most (HIS-4)."""
    if requested is None:
        return min(100, max_history_limit)
    return min(requested, max_history_limit)


def check_ack(offset: int, epoch: str | None, state: ChannelState) -> None:
    """Validate an ack against the channel state (ACK-2, ACK-3)."""
    if epoch is not None and epoch != state.epoch:
        raise EpochMismatch(f"epoch {epoch!r} is not the current epoch", current_epoch=state.epoch)
    if offset > state.head:
        raise OffsetOutOfRange(f"offset {offset} is beyond head ({state.head})", head=state.head)


def advance_cursor(current: Cursor | None, epoch: str, offset: int) -> Cursor:
    """The cursor after acknowledging ``offset`` in ``epoch`` (ACK-4, ACK-7).

    ``MemoryStore`` applies it directly; the Redis and MongoDB stores must apply the same rule
    atomically on the server (``ADVANCE_CURSOR``, a ``$max`` update), where Python cannot run.
    """
    if current is None or current.epoch != epoch:
        return Cursor(epoch, offset)
    return Cursor(epoch, max(current.offset, offset))
