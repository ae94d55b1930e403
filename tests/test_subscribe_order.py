"""A subscribe's checks in SUB-1's order, and where it starts (spec §6.1, §8)."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.core.errors import (
    AlreadySubscribed,
    BadRequest,
    EpochMismatch,
    Forbidden,
    HistoryTruncated,
    OffsetOutOfRange,
    RateLimited,
    ReplayError,
)
from reference.core.model import Action, AutoSubscription, ChannelState, Cursor, Grant
from reference.core.payloads import SubscribeRequest, parse_subscribe
from reference.core.subscribe_order import Start, Truncation, admit, resolve, resolve_from

# A channel with offsets 1..10 published and 1..4 removed by retention.
TRIMMED = ChannelState(epoch="e1", first=5, head=10)
EMPTY = ChannelState(epoch="e1", first=None, head=0)
ALL_TRIMMED = ChannelState(epoch="e1", first=None, head=7)

ROOMS = (Grant("room:*", frozenset({Action.SUBSCRIBE})),)
ALL = (Grant("*", frozenset({Action.SUBSCRIBE})),)


def subscribe(  # type: ignore[no-untyped-def]
    start, *, epoch="e1", allow=False, state=TRIMMED, cursor=None
) -> Start:
    return resolve_from(start, epoch=epoch, allow_truncation=allow, state=state, cursor=cursor)


def checked(
    payload: object,
    *,
    grants: tuple[Grant, ...] = ROOMS,
    subscribed: Collection[str] = (),
    max_subscriptions: int = 100,
    state: ChannelState = TRIMMED,
    cursor: Cursor | None = None,
) -> Start:
    """Every step of SUB-1, as the shell runs them: parse, admit, (read), resolve."""
    request = parse_subscribe([payload])
    admitted = admit(
        request, grants=grants, subscribed=subscribed, max_subscriptions=max_subscriptions
    )
    return resolve(admitted, state=state, cursor=cursor)


# --- SUB-1: for each pair of adjacent checks, an input failing both gets the earlier error -----

# (input failing both, the earlier error; the same input without the earlier fault, the later)
Case = tuple[dict[str, object], dict[str, object]]
PAIRS: dict[str, tuple[Case, type[ReplayError], Case, type[ReplayError]]] = {
    "shape-before-grant": (
        ({"channel": "secret", "from": 1, "epoch": "e1", "colour": "red"}, {}),
        BadRequest,
        ({"channel": "secret", "from": 1, "epoch": "e1"}, {}),
        Forbidden,
    ),
    "missing-epoch-before-grant": (  # an offset without its epoch is a shape error (SUB-16)
        ({"channel": "secret", "from": 1}, {}),
        BadRequest,
        ({"channel": "secret", "from": 1, "epoch": "e1"}, {}),
        Forbidden,
    ),
    "grant-before-existing": (
        ({"channel": "secret"}, {"subscribed": {"secret"}}),
        Forbidden,
        ({"channel": "secret"}, {"subscribed": {"secret"}, "grants": ALL}),
        AlreadySubscribed,
    ),
    "existing-before-limit": (
        ({"channel": "room:1"}, {"subscribed": {"room:1"}, "max_subscriptions": 1}),
        AlreadySubscribed,
        ({"channel": "room:2"}, {"subscribed": {"room:1"}, "max_subscriptions": 1}),
        RateLimited,
    ),
    "limit-before-epoch": (
        (
            {"channel": "room:1", "from": 6, "epoch": "old"},
            {"subscribed": {"room:2"}, "max_subscriptions": 1},
        ),
        RateLimited,
        ({"channel": "room:1", "from": 6, "epoch": "old"}, {"subscribed": {"room:2"}}),
        EpochMismatch,
    ),
    "epoch-before-upper-bound": (
        ({"channel": "room:1", "from": 99, "epoch": "old"}, {}),
        EpochMismatch,
        ({"channel": "room:1", "from": 99, "epoch": "e1"}, {}),
        OffsetOutOfRange,
    ),
    # The upper and lower bounds never fail together (test_positions), so the epoch is also
    # checked before the lower bound.
    "epoch-before-lower-bound": (
        ({"channel": "room:1", "from": 1, "epoch": "old"}, {}),
        EpochMismatch,
        ({"channel": "room:1", "from": 1, "epoch": "e1"}, {}),
        HistoryTruncated,
    ),
}


@pytest.mark.parametrize("pair", PAIRS)
def test_the_earlier_check_wins(pair: str) -> None:  # SUB-1
    both, earlier, without_earlier, later = PAIRS[pair]
    with pytest.raises(earlier):
        checked(both[0], **both[1])  # type: ignore[arg-type]
    with pytest.raises(later):
        checked(without_earlier[0], **without_earlier[1])  # type: ignore[arg-type]


def test_each_check_alone() -> None:  # SUB-1 to SUB-6, SUB-15
    assert checked({"channel": "room:1", "from": 6, "epoch": "e1"}).offset == 6
    cases: list[tuple[dict[str, object], dict[str, object], type[ReplayError]]] = [
        ({"channel": "room:1", "from": 0}, {}, BadRequest),
        ({"channel": "room:1", "from": 6}, {}, BadRequest),  # SUB-16
        ({"channel": "secret"}, {}, Forbidden),
        ({"channel": "room:1"}, {"subscribed": {"room:1"}}, AlreadySubscribed),
        ({"channel": "room:1"}, {"subscribed": {"room:2"}, "max_subscriptions": 1}, RateLimited),
        ({"channel": "room:1", "from": 6, "epoch": "old"}, {}, EpochMismatch),
        ({"channel": "room:1", "from": 12, "epoch": "e1"}, {}, OffsetOutOfRange),
        ({"channel": "room:1", "from": 4, "epoch": "e1"}, {}, HistoryTruncated),
    ]
    for payload, kwargs, error in cases:
        with pytest.raises(error):
            checked(payload, **kwargs)  # type: ignore[arg-type]


def test_an_auto_subscription_is_admitted_in_the_same_order() -> None:  # AUT-4, SUB-1
    entry = AutoSubscription("secret", 4)
    with pytest.raises(Forbidden):
        admit(entry, grants=ROOMS, subscribed={"secret"}, max_subscriptions=1)
    entry = AutoSubscription("room:1", 4, epoch="e1")
    with pytest.raises(AlreadySubscribed):
        admit(entry, grants=ROOMS, subscribed={"room:1"}, max_subscriptions=1)
    admitted = admit(entry, grants=ROOMS, subscribed=(), max_subscriptions=1)
    with pytest.raises(HistoryTruncated):
        resolve(admitted, state=TRIMMED, cursor=None)


def test_the_cursor_is_read_only_where_the_start_may_follow_it() -> None:  # SUB-9, AUT-1
    def needs_cursor(request: SubscribeRequest | AutoSubscription) -> bool:
        return admit(request, grants=ROOMS, subscribed=(), max_subscriptions=1).needs_cursor

    assert needs_cursor(SubscribeRequest("room:1", None, None, False))
    assert not needs_cursor(SubscribeRequest("room:1", 3, None, False))
    assert not needs_cursor(SubscribeRequest("room:1", "beginning", None, False))
    assert needs_cursor(AutoSubscription("room:1", "latest"))


# --- resolving from --------------------------------------------------------------------------


def test_beginning_is_first_and_latest_is_head_plus_one() -> None:  # SUB-7, SUB-8
    assert subscribe("beginning").offset == 5
    assert subscribe("latest").offset == 11
    assert subscribe("beginning", state=EMPTY).offset == 1
    assert subscribe("beginning", state=ALL_TRIMMED).offset == 8


def test_beginning_and_latest_ignore_a_stale_epoch() -> None:  # SUB-7, EPO-6
    assert subscribe("beginning", epoch="old").offset == 5
    assert subscribe("latest", epoch="old").offset == 11


def test_integer_within_range_starts_there() -> None:
    for offset in (5, 7, 10, 11):
        start = subscribe(offset, epoch="e1")
        assert (start.offset, start.truncated) == (offset, None)


def test_an_integer_of_no_known_epoch_never_resolves() -> None:  # EPO-6, AUT-7
    # The schema rejects such a request (SUB-16); an auto-subscription stored before 1.1 can
    # still hold one, and it must not be resolved against whatever epoch is current.
    with pytest.raises(EpochMismatch):
        subscribe(6, epoch=None)


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
        resolved = subscribe(start, epoch="e", state=state, allow=allow)
    except (HistoryTruncated, OffsetOutOfRange):
        assert start > head + 1 or start < state.lowest
        return
    assert state.lowest <= resolved.offset <= head + 1
    if resolved.offset != start:
        assert allow and resolved.truncated == Truncation(start, state.lowest)


def test_auto_subscription_prefers_a_current_cursor() -> None:  # AUT-1, AUT-6
    def auto(entry: int | str, cursor: Cursor | None) -> int:
        admitted = admit(
            AutoSubscription("room:1", entry, epoch="e1"),
            grants=ROOMS,
            subscribed=(),
            max_subscriptions=1,
        )
        return resolve(admitted, state=TRIMMED, cursor=cursor).offset

    assert auto("beginning", None) == 5
    assert auto("beginning", Cursor("e1", 8)) == 9
    assert auto("latest", Cursor("e1", 8)) == 9
    assert auto("beginning", Cursor("stale", 8)) == 5
    assert auto(6, None) == 6
