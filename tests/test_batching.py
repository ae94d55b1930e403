"""Cutting reads into replay:messages events (DLV-1, DLV-2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reference.core.batching import cut_batch, messages_event
from reference.core.model import Message


def messages(sizes: list[int], first: int = 1) -> list[Message]:
    return [Message(first + i, f"id{i}", 0, "x", size) for i, size in enumerate(sizes)]


def test_count_limit() -> None:  # DLV-2
    batch = cut_batch(messages([1] * 10), max_count=4)
    assert [m.offset for m in batch] == [1, 2, 3, 4]


def test_byte_limit_keeps_at_least_one_message() -> None:
    assert len(cut_batch(messages([10, 10, 10]), max_count=9, max_bytes=25)) == 2
    assert len(cut_batch(messages([100, 1]), max_count=9, max_bytes=25)) == 1


def test_empty_input() -> None:
    assert cut_batch([], max_count=5) == ()


@given(sizes=st.lists(st.integers(0, 50), max_size=40), count=st.integers(1, 10))
def test_batches_are_nonempty_consecutive_prefixes(sizes: list[int], count: int) -> None:
    stream = messages(sizes, first=7)
    delivered: list[Message] = []
    while len(delivered) < len(stream):
        batch = cut_batch(stream[len(delivered) :], max_count=count, max_bytes=60)
        assert 1 <= len(batch) <= count
        assert len(batch) == 1 or sum(m.size for m in batch) <= 60
        delivered.extend(batch)
    assert delivered == stream


def test_event_payload_shares_wire_dicts() -> None:
    batch = messages([1, 1])
    event = messages_event("c", "e", batch)
    assert event == {
        "channel": "c",
        "epoch": "e",
        "messages": [
            {"offset": 1, "id": "id0", "ts": 0, "data": "x"},
            {"offset": 2, "id": "id1", "ts": 0, "data": "x"},
        ],
    }
    assert event["messages"][0] is batch[0].wire
