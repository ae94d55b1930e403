"""Node-local wake-ups: a subscription caught up with the head sleeps here until it moves.

The notifier carries no data, only "channel X may have new messages": the store stays the
source of truth, so a lost or extra wake-up costs at most one store read, never a message.
Versions come from one node-wide counter, which lets idle channels be forgotten safely: a
recreated entry never repeats a version a waiter may have sampled before.
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
        return signal.version if signal else 0

    def head_moved(self, channel: str) -> None:
        """Wake every subscription of ``channel``: its head may have moved."""
        self._clock += 1
        signal = self._signals.setdefault(channel, _Signal())
        signal.version = self._clock
        signal.event.set()
        signal.event = asyncio.Event()

    async def wait(self, channel: str, seen: int) -> None:
        """Return once ``channel``'s version differs from ``seen`` (at once if it already does)."""
        signal = self._signals.setdefault(channel, _Signal())
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
