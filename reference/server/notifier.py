"""Node-local wake-ups: a subscription caught up with the head sleeps here until it moves.

The notifier carries no data, only "channel X may have new messages": the store stays the
source of truth, so a lost or extra wake-up costs at most one store read, never a message.
Versions come from one node-wide counter, so only channels somebody waits on need an entry:
a channel without one reports the counter itself as its version, and an entry created for a
waiter starts at the counter too. A head move in between advances the counter, so the waiter
sees a different version and returns at once; unrelated moves only cost a spurious wake-up.
In a cluster every node hears every channel's moves, and an entry per channel ever moved
would grow without bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class _Signal:
    version: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0


class Notifier:
    """Per-channel change signals for the subscriptions of one node."""

    def __init__(self) -> None:
        self._clock = 0
        self._signals: dict[str, _Signal] = {}

    def version(self, channel: str) -> int:
        """Sample before reading the store; pass the sample to ``wait``."""
        signal = self._signals.get(channel)
        return signal.version if signal else self._clock

    def head_moved(self, channel: str) -> None:
        """Wake every subscription of ``channel``: its head may have moved."""
        self.wake(channel)

    def wake(self, channel: str) -> None:
        """Wake every waiter on ``channel`` to read again, whatever the reason (a head move;
        a new reader at the live edge, ``reference.server.live``)."""
        self._clock += 1
        signal = self._signals.get(channel)
        if signal is None:
            return  # nobody waits: the counter alone records the move
        signal.version = self._clock
        signal.event.set()
        signal.event = asyncio.Event()

    async def wait(self, channel: str, seen: int) -> None:
        """Return once ``channel``'s version differs from ``seen`` (at once if it already does)."""
        signal = self._signals.get(channel)
        if signal is None:
            signal = self._signals[channel] = _Signal(version=self._clock)
        if signal.version != seen:
            return
        signal.waiters += 1
        try:
            await signal.event.wait()
        finally:
            signal.waiters -= 1
            if signal.waiters == 0 and self._signals.get(channel) is signal:
                del self._signals[channel]

    def __len__(self) -> int:
        return len(self._signals)
