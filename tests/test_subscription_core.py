"""The subscription lifecycle table and the per-read decision (reference.core.subscription)."""

from __future__ import annotations

import pytest

from reference.core.model import ChannelState, Message, ReadResult
from reference.core.subscription import (
    TRANSITIONS,
    UNSUBSCRIBED_REASONS,
    CaughtUp,
    Deliver,
    End,
    IllegalTransition,
    State,
    Trigger,
    advance,
    decide,
)


def read(epoch: str, first: int | None, head: int, offsets: range) -> ReadResult:
    return ReadResult(
        ChannelState(epoch, first, head),
        tuple(Message(o, str(o), 0, None, 4) for o in offsets),
    )


def test_happy_path_through_the_table() -> None:
    state = State.STARTING
    for trigger in (
        Trigger.ANNOUNCED,
        Trigger.CAUGHT_UP,
        Trigger.HEAD_MOVED,
        Trigger.BACKLOGGED,
        Trigger.DRAINED,
        Trigger.UNSUBSCRIBED,
    ):
        state = advance(state, trigger)
    assert state is State.ENDED


@pytest.mark.parametrize("trigger", list(Trigger))
def test_nothing_leaves_the_ended_state(trigger: Trigger) -> None:
    with pytest.raises(IllegalTransition):
        advance(State.ENDED, trigger)


def test_every_live_state_can_end_every_way() -> None:
    endings = [
        t
        for t in Trigger
        if (State.READING, t) in TRANSITIONS and TRANSITIONS[(State.READING, t)] is State.ENDED
    ]
    for state in (State.STARTING, State.READING, State.WAITING, State.DRAINING):
        for trigger in endings:
            assert advance(state, trigger) is State.ENDED


def test_cannot_deliver_before_the_announcement() -> None:  # SUB-13
    with pytest.raises(IllegalTransition):
        advance(State.STARTING, Trigger.CAUGHT_UP)


def test_server_decided_endings_have_a_wire_reason() -> None:  # §7.3
    assert UNSUBSCRIBED_REASONS == {
        Trigger.TRUNCATED: "truncated",
        Trigger.EPOCH_CHANGED: "epoch_changed",
        Trigger.REVOKED: "revoked",
        Trigger.FAILED: "internal",
    }


def test_decide_delivers_a_batch_from_next() -> None:
    decision = decide(3, "e", read("e", 1, 9, range(3, 10)), max_count=4, max_bytes=1000)
    assert isinstance(decision, Deliver)
    assert [m.offset for m in decision.batch] == [3, 4, 5, 6]
    assert decision.next_offset == 7


def test_decide_caught_up_at_head_plus_one() -> None:
    assert decide(10, "e", read("e", 1, 9, range(0)), max_count=4, max_bytes=9) == CaughtUp()


def test_decide_ends_on_truncation_and_epoch_change() -> None:  # SIG-2, SIG-3
    assert decide(2, "e", read("e", 5, 9, range(0)), max_count=4, max_bytes=9) == End(
        Trigger.TRUNCATED
    )
    assert decide(2, "e", read("f", 1, 9, range(2, 5)), max_count=4, max_bytes=9) == End(
        Trigger.EPOCH_CHANGED
    )


def test_decide_refuses_a_store_that_skips() -> None:  # SIG-1
    with pytest.raises(AssertionError):
        decide(2, "e", read("e", 1, 9, range(3, 5)), max_count=4, max_bytes=99)
