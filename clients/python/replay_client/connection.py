"""The connection loop: get a token, connect, wait for the end, back off, again.

One python-socketio ``AsyncClient`` per attempt, its own reconnection off: this loop decides
when to reconnect, calls ``get_token`` before every attempt (SES-4 rotates tokens) and
reports every refused attempt. The socket's handlers do no work: they hand each event to the
sink, tagged with the attempt's generation, and the client's worker does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import socketio

from replay_client.backoff import Backoff, BackoffOptions
from replay_client.emitter import settle
from replay_client.errors import ReplayClientError

__all__ = ["ConnectionLoop", "ConnectionOptions", "ConnectionStats", "Sink"]

GetToken = Callable[[], str | Awaitable[str]]
SERVER_EVENTS = ("replay:messages", "replay:subscribed", "replay:unsubscribed")


@dataclass(frozen=True)
class ConnectionOptions:
    backoff: BackoffOptions = field(default_factory=BackoffOptions)
    reset_after: float = 5.0  # a connection that stayed up this long resets the backoff
    connect_timeout: float = 10.0
    transports: tuple[str, ...] = ("websocket",)


@dataclass
class ConnectionStats:
    token_calls: int = 0
    connects: int = 0
    disconnects: int = 0  # connections that ended without close()
    refused: int = 0  # attempts that failed (CONNECT_ERROR, network, timeout)


class Sink(Protocol):
    """Where the loop hands what happens; each call only queues work."""

    def up(self, sio: Any, generation: int) -> None: ...

    def down(self, generation: int) -> None: ...

    def event(self, generation: int, name: str, data: Any) -> None: ...

    async def report(self, error: ReplayClientError) -> None: ...


class ConnectionLoop:
    """Keeps one connection to ``url`` up until cancelled."""

    def __init__(
        self, url: str, get_token: GetToken, options: ConnectionOptions, sink: Sink
    ) -> None:
        self.url = url
        self.stats = ConnectionStats()
        self._get_token = get_token
        self._options = options
        self._sink = sink
        self.up = asyncio.Event()  # set while a connection is up, as its handlers see it
        self.live: tuple[Any, asyncio.Event] | None = None  # (AsyncClient, its end)
        self._closing = False

    async def run(self) -> None:
        backoff = Backoff(self._options.backoff)
        loop = asyncio.get_running_loop()
        generation = 0
        while True:
            generation += 1
            refusal: dict[str, Any] = {}
            sio = socketio.AsyncClient(reconnection=False)
            gone = self._bind(sio, generation, refusal)
            if await self._attempt(sio, refusal):
                since = loop.time()
                await gone.wait()
                if loop.time() - since >= self._options.reset_after:
                    backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def close(self) -> None:
        """Disconnect (once ``run`` is cancelled): an end that is not counted."""
        self._closing = True
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live[0].disconnect()

    async def _attempt(self, sio: Any, refusal: dict[str, Any]) -> bool:
        """One connection attempt; False (reported) when it failed."""
        try:
            self.stats.token_calls += 1
            token = await settle(self._get_token())
        except Exception as exc:
            await self._sink.report(ReplayClientError("token_failed", repr(exc), retryable=True))
            return False
        try:
            await sio.connect(
                self.url,
                auth={"token": token},
                transports=list(self._options.transports),
                wait_timeout=self._options.connect_timeout,
            )
        except (socketio.exceptions.SocketIOError, OSError) as exc:
            self.stats.refused += 1
            await self._sink.report(_refused(refusal.get("data"), exc))
            with contextlib.suppress(Exception):
                await sio.disconnect()
            return False
        return True

    def _bind(self, sio: Any, generation: int, refusal: dict[str, Any]) -> asyncio.Event:
        gone = asyncio.Event()

        def on_connect() -> None:
            self.stats.connects += 1
            self.live = (sio, gone)
            self.up.set()
            self._sink.up(sio, generation)

        def on_disconnect(*_reason: Any) -> None:
            if self.live is not None and self.live[0] is sio:
                self.stats.disconnects += not self._closing
                self.live = None
                self.up.clear()
            gone.set()
            self._sink.down(generation)

        sio.on("connect", on_connect)
        sio.on("disconnect", on_disconnect)
        sio.on("connect_error", lambda data=None: refusal.update(data=data))
        for name in SERVER_EVENTS:
            sio.on(name, lambda data, name=name: self._sink.event(generation, name, data))
        return gone


def _refused(data: Any, exc: BaseException) -> ReplayClientError:
    """A failed connect: the server's CONNECT_ERROR message (CON-2, CON-3), or the cause."""
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, str):
        return ReplayClientError(message, "connect refused", retryable=True)
    return ReplayClientError("connect_failed", repr(exc))
