"""Resolving subscribe and history starts against first/head/epoch (spec §6.1, §6.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.core.errors import EpochMismatch, HistoryTruncated, OffsetOutOfRange
from reference.core.model import ChannelState, Cursor
from reference.core.positions import (
    Truncation,
    advance_cursor,
    check_ack,
    history_limit,
    history_moved,
    resolve_auto_subscription,
    resolve_history,
    resolve_subscribe,
)

# A channel with offsets 1..10 published and 1..4 removed by retention.
TRIMMED = ChannelState(epoch="e1", first=5, head=10)
EMPTY = ChannelState(epoch="e1", first=None, head=0)
ALL_TRIMMED = ChannelState(epoch="e1", first=None, head=7)


def subscribe(start, *, epoch=None, allow=False, state=TRIMMED, cursor=None):  # type: ignore[no-untyped-def]
    return resolve_subscribe(start, epoch=epoch, allow_truncation=allow, state=state, cursor=cursor)


def test_beginning_is_first_and_latest_is_head_plus_one() -> None:  # SUB-7, SUB-8
    assert subscribe("beginning").offset == 5
    assert subscribe("latest").offset == 11
    assert subscribe("beginning", state=EMPTY).offset == 1
    assert subscribe("beginning", state=ALL_TRIMMED).offset == 8


def test_beginning_and_latest_ignore_a_stale_epoch() -> None:  # SUB-7
    assert subscribe("beginning", epoch="old").offset == 5
    assert subscribe("latest", epoch="old").offset == 11


def test_integer_within_range_starts_there() -> None:
    for offset in (5, 7, 10, 11):
        start = subscribe(offset, epoch="e1")
        assert (start.offset, start.truncated) == (offset, None)


def test_integer_without_epoch_uses_the_current_one() -> None:  # SUB-10
    assert subscribe(6).offset == 6


def test_stale_epoch_fails_before_range_checks() -> None:  # SUB-1, SUB-4
    with pytest.raises(EpochMismatch):
        subscribe(99, epoch="old")
    with pytest.raises(EpochMismatch):
        subscribe(1, epoch="old")


def test_above_head_plus_one_is_out_of_range() -> None:  # SUB-5
    with pytest.raises(OffsetOutOfRange):
        subscribe(12)
    with pytest.raises(OffsetOutOfRange):
        subscribe(2, state=EMPTY)


def test_below_first_is_truncated_unless_allowed() -> None:  # SUB-6, SUB-11
    with pytest.raises(HistoryTruncated):
        subscribe(4)
    start = subscribe(2, allow=True)
    assert start.offset == 5
    assert start.truncated == Truncation(requested=2, first_available=5)
    assert start.to_wire("c")["truncated"] == {"requested": 2, "first_available": 5}


def test_nothing_retained_counts_as_truncated_up_to_the_head() -> None:  # SUB-6
    with pytest.raises(HistoryTruncated):
        subscribe(7, state=ALL_TRIMMED)
    assert subscribe(8, state=ALL_TRIMMED).offset == 8
    assert subscribe(3, allow=True, state=ALL_TRIMMED).offset == 8


def test_omitted_from_uses_the_cursor_of_the_current_epoch() -> None:  # SUB-9, ACK-7
    assert subscribe(None).offset == 11
    assert subscribe(None, cursor=Cursor("e1", 7)).offset == 8
    assert subscribe(None, cursor=Cursor("e0", 7)).offset == 11
    assert subscribe(None, cursor=Cursor("e1", 10)).offset == 11


def test_cursor_below_first_is_truncated_unless_allowed() -> None:  # SUB-9, SUB-6
    with pytest.raises(HistoryTruncated):
        subscribe(None, cursor=Cursor("e1", 2))
    assert subscribe(None, cursor=Cursor("e1", 2), allow=True).offset == 5


def test_wire_form_carries_epoch_from_and_head() -> None:  # SUB-12
    assert subscribe("latest").to_wire("room:1") == {
        "channel": "room:1",
        "epoch": "e1",
        "from": 11,
        "head": 10,
    }


@given(
    head=st.integers(0, 1000),
    retained=st.integers(0, 1000),
    start=st.integers(1, 1100),
    allow=st.booleans(),
)
def test_a_resolved_start_is_always_deliverable(
    head: int, retained: int, start: int, allow: bool
) -> None:
    """Whatever succeeds starts within [lowest, head + 1], and never below the request
    unless truncation was allowed and reported (SIG-1)."""
    first = None if retained == 0 or head == 0 else max(1, head - retained + 1)
    state = ChannelState("e", first, head)
    try:
        resolved = subscribe(start, state=state, allow=allow)
    except (HistoryTruncated, OffsetOutOfRange):
        assert start > head + 1 or start < state.lowest
        return
    assert state.lowest <= resolved.offset <= head + 1
    if resolved.offset != start:
        assert allow and resolved.truncated == Truncation(start, state.lowest)


def test_history_start() -> None:  # HIS-4, HIS-6, HIS-7
    assert resolve_history(None, TRIMMED) == 5
    assert resolve_history("beginning", TRIMMED) == 5
    assert resolve_history(7, TRIMMED) == 7
    assert resolve_history(11, TRIMMED) == 11
    with pytest.raises(OffsetOutOfRange):
        resolve_history(12, TRIMMED)
    with pytest.raises(HistoryTruncated):
        resolve_history(4, TRIMMED)


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
    check_ack(1, None, TRIMMED)  # below first is fine: it only moves a cursor
    with pytest.raises(EpochMismatch):
        check_ack(1, "old", TRIMMED)
    with pytest.raises(OffsetOutOfRange):
        check_ack(11, None, TRIMMED)


def test_cursor_advances_to_the_max_within_an_epoch() -> None:  # ACK-4, ACK-7
    assert advance_cursor(None, "e1", 5) == Cursor("e1", 5)
    assert advance_cursor(Cursor("e1", 5), "e1", 3) == Cursor("e1", 5)
    assert advance_cursor(Cursor("e1", 5), "e1", 9) == Cursor("e1", 9)
    assert advance_cursor(Cursor("e0", 50), "e1", 3) == Cursor("e1", 3)


def test_auto_subscription_prefers_a_current_cursor() -> None:  # AUT-1, AUT-6
    def auto(entry: int | str, cursor: Cursor | None) -> int:
        return resolve_auto_subscription(
            entry, allow_truncation=False, state=TRIMMED, cursor=cursor
        ).offset

    assert auto("beginning", None) == 5
    assert auto("beginning", Cursor("e1", 8)) == 9
    assert auto("latest", Cursor("e1", 8)) == 9
    assert auto("beginning", Cursor("stale", 8)) == 5
    assert auto(6, None) == 6
