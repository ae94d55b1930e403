"""One store read for every subscription of a node that wants the same batch at the same time.

When a channel's head moves, every subscription of it at the live edge wakes and reads the
store from the same offset. On a networked store that is one round trip per subscriber per
publish (100 subscribers: 100 Redis calls for one message). Here, a read that is identical
to one already in flight joins it instead.

Joining is only safe if the shared read cannot miss a message the joiner must see. Each
subscription samples its channel's notifier version before it reads, and waits on that
sample after catching up; a message it misses must have moved the version after the sample.
So the version is part of the key: a read started by a subscription that sampled version
``v`` began after every head move that ``v`` counts, and a joiner with the same sample counts
no other. A move after the sample changes the version, so the joiner wakes and reads again.
"""

from __future__ import annotations

import asyncio

from reference.core.model import ReadResult
from reference.store.base import Store

_Key = tuple[str, int, int, int]  # channel, start, limit, notifier version


class _LeaderCancelled(Exception):
    """The reader whose store call the others joined was cancelled before it returned."""


class SharedReads:
    """``Store.read`` with concurrent identical reads merged into one.

    The first reader (the leader) calls the store in its own task; readers that arrive while
    it waits share its result through a future. No task is created: an in-process store
    that answers without waiting costs nothing extra.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._in_flight: dict[_Key, asyncio.Future[ReadResult]] = {}
        #: Reads that went to the store, and reads served by joining one (for tests, benches).
        self.store_reads = 0
        self.joined = 0

    async def read(self, channel: str, start: int, limit: int, *, version: int) -> ReadResult:
        """``store.read(channel, start, limit)`` as seen after notifier version ``version``."""
        key = (channel, start, limit, version)
        while True:
            shared = self._in_flight.get(key)
            if shared is None:
                return await self._lead(key, channel, start, limit)
            self.joined += 1
            try:
                # shield: a joiner cancelled (unsubscribe, disconnect) leaves the rest waiting.
                return await asyncio.shield(shared)
            except _LeaderCancelled:
                continue  # the leader was cancelled mid-read: read again, leading or joining

    async def _lead(self, key: _Key, channel: str, start: int, limit: int) -> ReadResult:
        shared: asyncio.Future[ReadResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = shared
        self.store_reads += 1
        try:
            result = await self.store.read(channel, start, limit)
            shared.set_result(result)
            return result
        except Exception as exc:
            self._fail(shared, exc)
            raise
        finally:
            if self._in_flight.get(key) is shared:
                del self._in_flight[key]
            if not shared.done():  # cancelled (or interrupted) mid-read: the joiners read again
                self._fail(shared, _LeaderCancelled())

    @staticmethod
    def _fail(shared: asyncio.Future[ReadResult], exc: Exception) -> None:
        shared.set_exception(exc)
        shared.exception()  # retrieved: with no joiners, asyncio would log it as lost
