"""The guard (replay_client.guard): no duplicate, no reordering, gaps noticed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replay_client import Message
from replay_client.guard import Guard


def batch(*offsets: int) -> list[Message]:
    return [Message(o, f"m{o}", 0, o) for o in offsets]


def started(epoch: str = "e1", from_: int = 1) -> Guard:
    guard = Guard()
    guard.start(epoch, from_)
    return guard


def test_consecutive_batch_is_fresh() -> None:
    verdict = started(from_=3).judge("e1", batch(3, 4, 5))
    assert [m.offset for m in verdict.fresh] == [3, 4, 5] and not verdict.gap


def test_offsets_below_the_next_are_dropped_and_counted() -> None:
    guard = started()
    guard.commit(4)
    verdict = guard.judge("e1", batch(3, 4, 5, 6))
    assert [m.offset for m in verdict.fresh] == [5, 6] and verdict.duplicates == 2


def test_a_jump_is_a_gap_and_the_batch_is_dropped() -> None:
    verdict = started(from_=3).judge("e1", batch(5, 6))
    assert verdict.gap and verdict.fresh == []
    assert started(from_=3).judge("e1", batch(3, 5)).gap  # a hole inside a batch too


def test_another_epoch_is_foreign() -> None:
    verdict = started().judge("e2", batch(1))
    assert verdict.foreign and verdict.fresh == []
    assert Guard().judge("e1", batch(1)).foreign  # nothing started yet


def test_start_never_steps_back_within_an_epoch_and_resets_across() -> None:
    guard = started(from_=1)
    guard.commit(9)
    guard.start("e1", 4)  # a server resending: keep what was delivered
    assert guard.next_offset == 10
    guard.start("e1", 20)  # truncated: skip ahead
    assert guard.next_offset == 20
    guard.start("e2", 1)
    assert (guard.epoch, guard.next_offset) == ("e2", 1)
    guard.forget()
    assert guard.epoch is None and guard.next_offset is None


@given(st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=6), max_size=30))
def test_whatever_arrives_the_application_sees_one_increasing_dense_run(
    batches: list[list[int]],
) -> None:
    """Any sequence of batches (repeats, holes, disorder): what passes is 1, 2, 3, … once."""
    guard, seen = started(), []
    for offsets in batches:
        verdict = guard.judge("e1", batch(*offsets))
        if verdict.fresh:
            seen += [m.offset for m in verdict.fresh]
            guard.commit(verdict.fresh[-1].offset)
    assert seen == list(range(1, len(seen) + 1))
