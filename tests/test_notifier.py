"""Node-local wake-ups (reference.server.notifier)."""

from __future__ import annotations

import asyncio

from reference.server.notifier import Notifier


async def test_wait_returns_at_once_when_the_version_moved() -> None:
    notifier = Notifier()
    seen = notifier.version("c")
    notifier.head_moved("c")
    await asyncio.wait_for(notifier.wait("c", seen), 1)


async def test_wait_blocks_until_head_moved() -> None:
    notifier = Notifier()
    seen = notifier.version("c")
    waiter = asyncio.create_task(notifier.wait("c", seen))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    notifier.head_moved("other")
    await asyncio.sleep(0.01)
    assert not waiter.done()
    notifier.head_moved("c")
    await asyncio.wait_for(waiter, 1)


async def test_idle_channels_are_forgotten_without_losing_wakeups() -> None:
    notifier = Notifier()
    notifier.head_moved("c")
    seen = notifier.version("c")
    waiter = asyncio.create_task(notifier.wait("c", seen))
    await asyncio.sleep(0)
    notifier.head_moved("c")
    await waiter
    assert len(notifier) == 0  # the last waiter left: the entry is gone
    # A subscription that sampled the old version before the entry was dropped still wakes:
    # the recreated entry can never carry the sampled version again.
    await asyncio.wait_for(notifier.wait("c", seen), 1)


async def test_many_waiters_all_wake() -> None:
    notifier = Notifier()
    seen = notifier.version("c")
    waiters = [asyncio.create_task(notifier.wait("c", seen)) for _ in range(100)]
    await asyncio.sleep(0)
    notifier.head_moved("c")
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


async def test_moves_nobody_waits_for_leave_no_entry() -> None:
    notifier = Notifier()
    for n in range(1000):
        notifier.head_moved(f"channel-{n}")
    assert len(notifier) == 0


async def test_a_move_between_sampling_and_waiting_is_never_missed() -> None:
    """The race every subscription runs: sample, read (nothing new), publish, wait."""
    notifier = Notifier()
    notifier.head_moved("other")
    seen = notifier.version("c")  # no entry for "c" yet
    notifier.head_moved("c")  # the publish lands while the subscription reads the store
    await asyncio.wait_for(notifier.wait("c", seen), 1)
