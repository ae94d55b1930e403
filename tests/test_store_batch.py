"""The store contract of ``append_batch`` (spec §4.8), run on every store kind like
``test_store_contract.py``: order, density, atomicity against racing appends, idempotency
inside and across batches, retention once per batch."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from reference.core.batch_publish import BatchEntry
from reference.core.payloads import RetentionUpdate, encode_payload

if TYPE_CHECKING:
    from reference.store import Store
    from tests.conftest import FakeClock, StoreFactory


def entry(value: Any, message_id: str | None = None) -> BatchEntry:
    return BatchEntry(encode_payload(value, 1 << 20), message_id)


async def test_a_batch_takes_consecutive_offsets_in_order(store: Store) -> None:
    await store.append("c", entry("before").payload, None)
    results = await store.append_batch("c", [entry(n) for n in range(5)])
    assert [r.offset for r in results] == [2, 3, 4, 5, 6]  # BAT-2
    assert all(not r.duplicate and r.channel == "c" for r in results)
    assert {r.epoch for r in results} == {(await store.state("c")).epoch}
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["before", 0, 1, 2, 3, 4]
    assert [m.id for m in read.messages[1:]] == [r.id for r in results]
    assert len({r.id for r in results}) == 5  # MSG-3: server-assigned, unique
    assert read.state.head == 6


async def test_given_ids_and_data_are_stored_as_given(store: Store, clock: FakeClock) -> None:
    results = await store.append_batch("c", [entry({"a": [1, None]}, "k1"), entry("x")])
    assert results[0].id == "k1"
    read = await store.read("c", 1, 10)
    stored = [(m.id, m.data) for m in read.messages]
    assert stored == [("k1", {"a": [1, None]}), (results[1].id, "x")]
    assert all(m.ts == clock() for m in read.messages)  # MSG-4, BAT-4


async def test_a_known_id_is_a_duplicate_and_the_rest_is_stored(store: Store) -> None:
    first = await store.append("c", entry("original").payload, "k")
    results = await store.append_batch("c", [entry("a"), entry("again", "k"), entry("b")])
    assert [(r.offset, r.duplicate) for r in results] == [(2, False), (1, True), (3, False)]
    assert results[1].id == "k" and results[1].offset == first.offset  # BAT-8, IDM-7
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["original", "a", "b"]


async def test_a_repeated_id_inside_one_batch_is_a_duplicate_of_the_earlier(store: Store) -> None:
    results = await store.append_batch("c", [entry("one", "k"), entry("x"), entry("two", "k")])
    assert [(r.offset, r.duplicate) for r in results] == [(1, False), (2, False), (1, True)]
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["one", "x"]  # BAT-8: stored once
    again = await store.append("c", entry("three").payload, "k")
    assert (again.offset, again.duplicate) == (1, True)  # the batch's key, for single publishes


async def test_a_batch_of_only_duplicates_stores_nothing(store: Store) -> None:
    await store.append_batch("c", [entry(1, "a"), entry(2, "b")])
    results = await store.append_batch("c", [entry(3, "b"), entry(4, "a")])
    assert [(r.offset, r.duplicate) for r in results] == [(2, True), (1, True)]
    assert (await store.state("c")).head == 2


async def test_racing_appends_never_land_inside_a_batch(store: Store) -> None:
    singles = [store.append("c", entry(f"s{n}").payload, None) for n in range(20)]
    batches = [store.append_batch("c", [entry(f"b{b}.{n}") for n in range(10)]) for b in range(4)]
    done = await asyncio.gather(*singles, *batches)
    offsets = sorted(r.offset for r in done[:20]) + [
        r.offset
        for batch in done[20:]
        for r in batch  # type: ignore[union-attr]
    ]
    assert sorted(offsets) == list(range(1, 61))  # PUB-4 across both routes
    for batch in done[20:]:
        got = [r.offset for r in batch]  # type: ignore[union-attr]
        assert got == list(range(got[0], got[0] + 10))  # BAT-2: contiguous, in order
    read = await store.read("c", 1, 100)
    for batch in done[20:]:
        start = batch[0].offset  # type: ignore[union-attr]
        data = [m.data for m in read.messages[start - 1 : start + 9]]
        assert len({d.split(".")[0] for d in data}) == 1 and data == sorted(data, key=_n)


def _n(label: str) -> int:
    return int(label.split(".")[1])


async def test_racing_batches_with_one_id_store_it_once(store: Store) -> None:
    done = await asyncio.gather(
        *(store.append_batch("c", [entry(n), entry(n, "shared")]) for n in range(5)),
        store.append("c", entry("single").payload, "shared"),
    )
    keyed = [batch[1] for batch in done[:5]] + [done[5]]  # type: ignore[index]
    assert sum(not r.duplicate for r in keyed) == 1  # BAT-9, IDM-2
    assert len({r.offset for r in keyed}) == 1
    assert (await store.state("c")).head == 6


async def test_retention_applies_once_after_the_batch(store: Store) -> None:
    await store.set_retention("c", RetentionUpdate(max_messages=3, max_age_s=None))
    await store.append_batch("c", [entry(n) for n in range(5)])
    state = await store.state("c")
    assert (state.first, state.head) == (3, 5)  # BAT-11, RET-12
    read = await store.read("c", 3, 10)
    assert [m.data for m in read.messages] == [2, 3, 4]


async def test_a_batch_key_expires_with_the_window(store: Store, clock: FakeClock) -> None:
    await store.append_batch("c", [entry(1, "k")])
    clock.advance(3600, ms=1)
    results = await store.append_batch("c", [entry(2, "k")])
    assert (results[0].offset, results[0].duplicate) == (2, False)  # IDM-6: the window passed


async def test_batches_through_two_nodes_of_a_shared_store_never_interleave(
    make_store: StoreFactory,
) -> None:
    one, two = await make_store(), await make_store()
    if not one.shared:
        pytest.skip("two in-process memory stores are two servers (DUR-3)")
    done = await asyncio.gather(
        *(node.append_batch("c", [entry(f"{b}.{n}", f"k{n}") for n in range(8)])
          for b, node in enumerate([one, two, one, two]))
    )  # fmt: skip
    stored = [batch for batch in done if not batch[0].duplicate]
    assert len(stored) == 1  # BAT-9 across nodes: every other batch is all duplicates
    assert all(r.duplicate for batch in done if batch is not stored[0] for r in batch)
    assert [r.offset for r in stored[0]] == list(range(1, 9))  # BAT-2
    assert all([r.offset for r in batch] == list(range(1, 9)) for batch in done)
    assert (await two.state("c")).head == 8
