"""The offset rules that subscribe, history and ack share (spec §6.1, §6.3, §6.5).

The epoch and range checks, where a history read starts, and how an ack moves a cursor; the
order of a subscribe's checks is ``reference.core.subscribe_order``'s. The shell only fetches
the channel state and the session cursor these need.
"""

from __future__ import annotations

from reference.core.errors import EpochMismatch, HistoryTruncated, OffsetOutOfRange
from reference.core.model import ChannelState, Cursor


def check_epoch(epoch: str | None, state: ChannelState) -> None:
    """Raise ``EpochMismatch`` unless ``epoch`` is the channel's current one (SUB-4, ACK-2,
    HIS-10, SIG-4). An offset always comes with its epoch (EPO-6): the request schemas reject
    one without, so ``None`` only reaches here from an auto-subscription stored before 1.1,
    and an offset of an unknown epoch is never resolved against the current one."""
    if epoch != state.epoch:
        raise EpochMismatch(f"epoch {epoch!r} is not the current epoch", current_epoch=state.epoch)


def check_upper_bound(offset: int, state: ChannelState) -> None:
    """Raise ``OffsetOutOfRange`` for a start above ``head + 1`` (SUB-5, HIS-6)."""
    if offset > state.head + 1:
        raise OffsetOutOfRange(
            f"from {offset} is beyond head + 1 ({state.head + 1})", head=state.head
        )


def check_lower_bound(offset: int, state: ChannelState) -> None:
    """Raise ``HistoryTruncated`` for a start below the lowest retained offset (SUB-6, HIS-7).

    Never together with ``check_upper_bound``: ``lowest`` is at most ``head + 1``.
    """
    if offset < state.lowest:
        raise HistoryTruncated(
            f"from {offset} is no longer retained; the first retained offset is {state.lowest}",
            first=state.first,
        )


def resolve_history(start: int | str | None, epoch: str | None, state: ChannelState) -> int:
    """Resolve a history read's ``from`` (with its ``epoch``) to the first offset to return
    (HIS-4, HIS-6, HIS-7, HIS-10)."""
    if start is None or start == "beginning":
        return state.lowest
    if not isinstance(start, int):
        raise TypeError(f"unexpected from {start!r}")
    check_epoch(epoch, state)  # HIS-10, before the range checks
    check_upper_bound(start, state)  # HIS-6
    check_lower_bound(start, state)  # HIS-7
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


def check_ack(offset: int, epoch: str, state: ChannelState) -> None:
    """Validate an ack against the channel state (ACK-2, ACK-3)."""
    check_epoch(epoch, state)
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
