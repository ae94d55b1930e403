"""Batched acknowledgements for server cursors (``replay:ack``, §6.3): after the handler
finished, at most one ack in flight per channel, sent every ``max_delay`` seconds or
``max_messages`` messages, whichever comes first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["AckBatcher", "AckOptions"]

Later = Callable[[float, Callable[[], Awaitable[None]]], None]
# Sends an ack; False when there is no connection to send it on.
Send = Callable[[str, int], Awaitable[bool]]


@dataclass(frozen=True)
class AckOptions:
    max_delay: float = 0.2
    max_messages: int = 100


class AckBatcher:
    """The acks of one subscription."""

    def __init__(self, options: AckOptions, send: Send, later: Later) -> None:
        self._options = options
        self._send = send
        self._later = later
        self._finished: tuple[str, int] | None = None  # the newest finished position
        self._sent: tuple[str, int] | None = None  # in flight, or confirmed by the server
        self._unsent = 0  # messages finished since the last ack was sent
        self._in_flight = False
        self._timer = False
        self.sent_count = 0

    async def finished(self, epoch: str, offset: int, count: int) -> None:
        """The handler finished with ``offset`` (and ``count`` messages up to it)."""
        self._finished = (epoch, offset)
        self._unsent += count
        if self._unsent >= self._options.max_messages:
            await self.flush()
        elif not self._timer:
            self._timer = True
            self._later(self._options.max_delay, self._on_timer)

    async def _on_timer(self) -> None:
        self._timer = False
        await self.flush()

    async def flush(self) -> None:
        """Send the newest finished position unless an ack is in flight or it was sent."""
        if self._in_flight or self._finished is None or self._finished == self._sent:
            return
        position = self._finished
        if await self._send(*position):
            self._in_flight, self._sent, self._unsent = True, position, 0
            self.sent_count += 1

    async def replied(self) -> None:
        """The in-flight ack was answered (either way): send what finished since."""
        self._in_flight = False
        await self.flush()

    def connection_lost(self) -> None:
        """Its reply will never come: send the position again on the next connection."""
        if self._in_flight:
            self._in_flight, self._sent = False, None
