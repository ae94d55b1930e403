"""The shared offset rules: epoch and range checks, history starts, acks and cursors (spec
§6.1, §6.3, §6.5). A subscribe's resolution is ``test_subscribe_order``'s."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.core.errors import EpochMismatch, HistoryTruncated, OffsetOutOfRange
from reference.core.model import ChannelState, Cursor
from reference.core.positions import (
    advance_cursor,
    check_ack,
    check_lower_bound,
    check_upper_bound,
    history_limit,
    history_moved,
    resolve_history,
)

# A channel with offsets 1..10 published and 1..4 removed by retention.
TRIMMED = ChannelState(epoch="e1", first=5, head=10)


@given(head=st.integers(0, 50), retained=st.integers(0, 50), offset=st.integers(1, 60))
def test_no_offset_is_both_above_head_and_below_lowest(
    head: int, retained: int, offset: int
) -> None:
    """Why SUB-1's upper and lower bounds never compete: ``lowest`` is at most ``head + 1``."""
    first = None if retained == 0 or head == 0 else max(1, head - retained + 1)
    state = ChannelState("e", first, head)
    failed = []
    for check in (check_upper_bound, check_lower_bound):
        try:
            check(offset, state)
        except (OffsetOutOfRange, HistoryTruncated) as exc:
            failed.append(type(exc))
    expected: list[type[Exception]] = []
    if offset > head + 1:
        expected = [OffsetOutOfRange]
    elif offset < state.lowest:
        expected = [HistoryTruncated]
    assert failed == expected


def test_history_start() -> None:  # HIS-4, HIS-6, HIS-7, HIS-10
    assert resolve_history(None, None, TRIMMED) == 5
    assert resolve_history("beginning", None, TRIMMED) == 5
    assert resolve_history(7, "e1", TRIMMED) == 7
    assert resolve_history(11, "e1", TRIMMED) == 11
    with pytest.raises(OffsetOutOfRange):
        resolve_history(12, "e1", TRIMMED)
    with pytest.raises(HistoryTruncated):
        resolve_history(4, "e1", TRIMMED)
    # The epoch is checked first (HIS-10), and an offset of no known epoch never resolves
    # against the current one (EPO-6).
    for epoch in ("old", None):
        for start in (4, 7, 12):
            with pytest.raises(EpochMismatch):
                resolve_history(start, epoch, TRIMMED)


def test_a_history_read_resolves_again_when_the_channel_moved() -> None:  # HIS-5
    assert not history_moved(TRIMMED, 5, TRIMMED)
    assert not history_moved(TRIMMED, 7, ChannelState("e1", 7, 12))  # first still retained
    assert history_moved(TRIMMED, 5, ChannelState("e1", 6, 12))  # retention passed it
    assert history_moved(TRIMMED, 5, ChannelState("e2", 1, 3))  # a new epoch


def test_history_limit_defaults_and_clamps() -> None:  # HIS-4
    assert history_limit(None, 1000) == 100
    assert history_limit(None, 50) == 50
    assert history_limit(5000, 1000) == 1000
    assert history_limit(7, 1000) == 7


def test_ack_checks_epoch_then_head() -> None:  # ACK-2, ACK-3
    check_ack(10, "e1", TRIMMED)
    check_ack(1, "e1", TRIMMED)  # below first is fine: it only moves a cursor
    with pytest.raises(EpochMismatch):
        check_ack(1, "old", TRIMMED)
    with pytest.raises(EpochMismatch):
        check_ack(11, "old", TRIMMED)  # the epoch before the range (ACK-2, ACK-3)
    with pytest.raises(OffsetOutOfRange):
        check_ack(11, "e1", TRIMMED)


def test_cursor_advances_to_the_max_within_an_epoch() -> None:  # ACK-4, ACK-7
    assert advance_cursor(None, "e1", 5) == Cursor("e1", 5)
    assert advance_cursor(Cursor("e1", 5), "e1", 3) == Cursor("e1", 5)
    assert advance_cursor(Cursor("e1", 5), "e1", 9) == Cursor("e1", 9)
    assert advance_cursor(Cursor("e0", 50), "e1", 3) == Cursor("e1", 3)
