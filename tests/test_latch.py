"""``reference.server.latch.Latch``: a one-shot event that builds nothing until waited on."""

from __future__ import annotations

import asyncio

import pytest

from reference.server.latch import Latch


async def test_waiters_before_and_after_set_all_return() -> None:
    latch = Latch()
    early = [asyncio.create_task(latch.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not latch.is_set() and not any(t.done() for t in early)
    latch.set()
    await asyncio.wait_for(asyncio.gather(*early), 1)
    await asyncio.wait_for(latch.wait(), 1)  # after: at once
    assert latch.is_set()


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    latch = Latch()
    gone, stays = asyncio.create_task(latch.wait()), asyncio.create_task(latch.wait())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    latch.set()
    await asyncio.wait_for(stays, 1)
