"""SharedReads: identical concurrent reads share one store call, and nothing else changes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from reference.core.errors import Unavailable
from reference.core.model import ChannelState, ReadResult
from reference.server.shared_reads import SharedReads
from reference.store.base import Store


class GatedStore:
    """A store whose reads wait for ``open_gate``; it counts the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.gate = asyncio.Event()
        self.error: Exception | None = None

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        self.calls.append((channel, start, limit))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return ReadResult(ChannelState("e1", None, len(self.calls)), ())  # head: which call


def shared(store: GatedStore) -> SharedReads:
    return SharedReads(cast(Store, store))


async def started(reads: SharedReads, *args: Any, version: int = 1) -> asyncio.Task[ReadResult]:
    task = asyncio.create_task(reads.read(*args, version=version))
    await asyncio.sleep(0)  # let it reach the store (or join)
    return task


async def test_identical_concurrent_reads_share_one_store_call() -> None:
    store = GatedStore()
    reads = shared(store)
    tasks = [await started(reads, "c", 5, 100) for _ in range(10)]
    store.gate.set()
    results = await asyncio.gather(*tasks)
    assert store.calls == [("c", 5, 100)]
    assert all(r is results[0] for r in results)
    assert (reads.store_reads, reads.joined) == (1, 9)


async def test_reads_differing_in_anything_are_not_merged() -> None:
    store = GatedStore()
    reads = shared(store)
    tasks = [
        await started(reads, "c", 5, 100),
        await started(reads, "d", 5, 100),
        await started(reads, "c", 6, 100),
        await started(reads, "c", 5, 50),
        # Same read, but sampled after another head move: it must see what the first may not.
        await started(reads, "c", 5, 100, version=2),
    ]
    store.gate.set()
    await asyncio.gather(*tasks)
    assert len(store.calls) == 5 and reads.joined == 0


async def test_a_read_after_the_shared_one_finished_goes_to_the_store() -> None:
    store = GatedStore()
    store.gate.set()
    reads = shared(store)
    await reads.read("c", 1, 10, version=1)
    await reads.read("c", 1, 10, version=1)
    assert len(store.calls) == 2


async def test_a_cancelled_joiner_leaves_the_others_their_result() -> None:
    store = GatedStore()
    reads = shared(store)
    leader = await started(reads, "c", 1, 10)
    quitter = await started(reads, "c", 1, 10)
    stayer = await started(reads, "c", 1, 10)
    quitter.cancel()
    store.gate.set()
    assert (await leader) is (await stayer)
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert len(store.calls) == 1


async def test_a_cancelled_leader_makes_a_joiner_read_again() -> None:
    store = GatedStore()
    reads = shared(store)
    leader = await started(reads, "c", 1, 10)
    joiner = await started(reads, "c", 1, 10)
    leader.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the joiner hears of it and leads a read of its own
    store.gate.set()
    result = await joiner
    assert result.state.head == 2 and len(store.calls) == 2  # the second call's answer
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_a_store_error_reaches_every_reader_of_the_shared_read() -> None:
    store = GatedStore()
    store.error = Unavailable("down")
    reads = shared(store)
    tasks = [await started(reads, "c", 1, 10) for _ in range(3)]
    store.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert len(store.calls) == 1
    # And a lone failing read raises without asyncio logging a lost exception.
    with pytest.raises(Unavailable):
        await reads.read("c", 1, 10, version=9)
