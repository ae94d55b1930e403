"""A one-shot ``asyncio.Event``: set once, waited on by few.

Every connection holds one (``Connection.ready``). ``asyncio.Event`` builds its waiter deque
up front, about 760 bytes per socket (``bench/memory_profile.py``); this makes its future only
when somebody waits before it is set, which with ``async_handlers=False`` is at most the
socket's first event.
"""

from __future__ import annotations

import asyncio


class Latch:
    """Closed until ``set()``; then ``wait()`` returns at once, forever."""

    __slots__ = ("_opened", "_waiter")

    def __init__(self) -> None:
        self._opened = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._opened

    def set(self) -> None:
        self._opened = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    async def wait(self) -> None:
        if self._opened:
            return
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        # shield: one waiter cancelled (its socket went) leaves the future to the others
        await asyncio.shield(self._waiter)
