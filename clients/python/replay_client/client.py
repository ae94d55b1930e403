"""The client: one connection at a time to one server, for one session, and its worker.

The connection loop (``connection.py``) keeps a connection up. The *worker* does all the
rest, one step at a time in arrival order: the socket's handlers only queue steps, so no
reply overtakes the ``replay:messages`` sent after it, and no subscription is ever touched by
two tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import socketio

from replay_client import history
from replay_client.acks import AckOptions
from replay_client.backoff import Backoff, BackoffOptions
from replay_client.connection import ConnectionLoop, ConnectionOptions, ConnectionStats, GetToken
from replay_client.emitter import Emitter, Handler
from replay_client.errors import ReplayClientError
from replay_client.policy import Policy
from replay_client.positions import MemoryPositions, PositionStore
from replay_client.records import ErrorEvent, HistoryPage, Position
from replay_client.subscription import From, OnMessages, Subscription

__all__ = ["ClientOptions", "ReplayClient", "connect"]

log = logging.getLogger(__name__)

EVENTS: Final = frozenset({"connected", "disconnected", "error"})
Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ClientOptions:
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    request_timeout: float = 10.0  # for history pages


class ReplayClient:
    """Use :func:`connect`; ``subscribe``, ``history`` and ``close`` are the API."""

    def __init__(
        self, url: str, get_token: GetToken, options: ClientOptions, positions: PositionStore
    ) -> None:
        self.url = url
        self._options = options
        self._positions = positions
        self._connection = ConnectionLoop(url, get_token, options.connection, self)
        self._events = Emitter(EVENTS)
        self._subscriptions: dict[str, Subscription] = {}
        self._steps: asyncio.Queue[Step] = asyncio.Queue()
        self._sio: Any = None  # the connected AsyncClient, as the worker sees it
        self._generation = 0  # of that connection; steps of another are dropped
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connection.run(), name="replay-client-connection"),
            loop.create_task(self._work(), name="replay-client-worker"),
        ]

    # -- the application's side ---------------------------------------------------------

    @property
    def stats(self) -> ConnectionStats:
        """``token_calls``, ``connects``, ``disconnects``, ``refused``."""
        return self._connection.stats

    def on(self, name: str, handler: Handler) -> None:
        """Listen to ``connected``, ``disconnected`` or ``error`` (refused connects)."""
        self._events.on(name, handler)

    def off(self, name: str, handler: Handler) -> None:
        self._events.off(name, handler)

    def subscribe(
        self,
        channel: str,
        *,
        from_: From = None,
        on_messages: OnMessages | None = None,
        on_unresumable: Policy = "fail",
        ack: bool | AckOptions = False,
        positions: PositionStore | None = None,
    ) -> Subscription:
        """Start reading ``channel``; server replies arrive as the subscription's events."""
        if self._closing:
            raise ReplayClientError("closed", "the client is closed")
        if channel in self._subscriptions:
            raise ReplayClientError("already_subscribed", f"{channel} is subscribed already")
        subscription = Subscription(
            self,
            channel,
            from_=from_,
            on_messages=on_messages,
            on_unresumable=on_unresumable,
            ack=AckOptions() if ack is True else (ack or None),
            positions=positions or self._positions,
        )
        self._subscriptions[channel] = subscription
        self._steps.put_nowait(subscription.start)
        return subscription

    def history(
        self,
        channel: str,
        *,
        from_: Literal["beginning"] | Position = "beginning",
        limit: int | None = None,
    ) -> AsyncIterator[HistoryPage]:
        """The channel's retained messages as pages (``replay:history``) up to ``head``."""
        return history.pages(self.request, channel, from_, limit)

    async def request(self, event: str, payload: dict[str, Any]) -> Any:
        """Emit ``event`` once connected and return the server's reply; a connection that
        ends first means asking again on the next one, all within ``request_timeout``."""
        connection = self._connection
        async with asyncio.timeout(self._options.request_timeout):
            while True:
                await connection.up.wait()
                if connection.live is None:
                    continue
                sio, gone = connection.live
                reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                with contextlib.suppress(socketio.exceptions.SocketIOError):
                    await sio.emit(event, payload, callback=functools.partial(_resolve, reply))
                    ended = asyncio.ensure_future(gone.wait())
                    try:
                        await asyncio.wait([reply, ended], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        ended.cancel()
                    if reply.done():
                        return reply.result()

    async def close(self) -> None:
        """End every subscription (reason ``closed``) and the connection; no reconnect."""
        if self._closing:
            return
        current = asyncio.current_task()
        if current in self._tasks:  # from a handler, which the worker runs
            await self._end_all()
        else:
            await self._run(self._end_all)
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        others = [task for task in self._tasks if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._connection.close()
        if current in self._tasks:
            current.cancel()  # the worker ends at the handler's next await

    async def _end_all(self) -> None:
        for subscription in list(self._subscriptions.values()):
            await subscription.unsubscribe("closed")

    # -- the Link a subscription uses (worker only) -------------------------------------

    @property
    def online(self) -> bool:
        return self._sio is not None

    async def send(
        self, event: str, payload: dict[str, Any], on_reply: Callable[[Any], Awaitable[None]] | None
    ) -> bool:
        if self._sio is None:
            return False
        generation = self._generation

        def callback(*reply: Any) -> None:
            if on_reply is not None:
                value = reply[0] if len(reply) == 1 else list(reply)
                self._queue(generation, lambda: on_reply(value))

        try:
            await self._sio.emit(event, payload, callback=callback if on_reply else None)
        except socketio.exceptions.SocketIOError:
            return False  # the connection is going; its "down" step follows
        return True

    def later(self, delay: float, action: Step) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            self._steps.put_nowait(action)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    def backoff(self) -> Backoff:
        return Backoff(self._options.connection.backoff)

    def ended(self, subscription: Subscription) -> None:
        if self._subscriptions.get(subscription.channel) is subscription:
            del self._subscriptions[subscription.channel]

    # -- the Sink the connection loop feeds (socket handlers: queue only) ----------------

    def up(self, sio: Any, generation: int) -> None:
        self._steps.put_nowait(lambda: self._connected(sio, generation))

    def down(self, generation: int) -> None:
        self._steps.put_nowait(lambda: self._disconnected(generation))

    def event(self, generation: int, name: str, data: Any) -> None:
        channel = data.get("channel") if isinstance(data, dict) else None
        if not isinstance(channel, str):
            return
        if name == "replay:messages":
            epoch, batch = data.get("epoch"), data.get("messages")
            if isinstance(epoch, str) and isinstance(batch, list):
                self._queue(generation, self._for(channel, lambda s: s.messages(epoch, batch)))
        elif name == "replay:subscribed":
            self._queue(generation, self._for(channel, lambda s: s.server_started(data)))
        elif name == "replay:unsubscribed":
            reason, message = str(data.get("reason")), data.get("message")
            self._queue(generation, self._for(channel, lambda s: s.server_ended(reason, message)))

    async def report(self, error: ReplayClientError) -> None:
        await self._tell("error", ErrorEvent(None, error.code, error.message, error.retryable))

    # -- the worker ---------------------------------------------------------------------

    def _for(self, channel: str, step: Callable[[Subscription], Awaitable[None]]) -> Step:
        async def run() -> None:
            subscription = self._subscriptions.get(channel)
            if subscription is not None:
                await step(subscription)

        return run

    def _queue(self, generation: int, step: Step) -> None:
        async def checked() -> None:
            if generation == self._generation:
                await step()

        self._steps.put_nowait(checked)

    async def _run(self, step: Step) -> None:
        """Run ``step`` in the worker and wait for it."""
        done = asyncio.get_running_loop().create_future()

        async def wrapped() -> None:
            try:
                await step()
            finally:
                if not done.done():
                    done.set_result(None)

        self._steps.put_nowait(wrapped)
        await done

    async def _work(self) -> None:
        while True:
            step = await self._steps.get()
            try:
                await step()
            except Exception as exc:
                log.exception("replay client step failed")
                await self.report(ReplayClientError("client_failed", repr(exc)))

    async def _connected(self, sio: Any, generation: int) -> None:
        self._sio, self._generation = sio, generation
        await self._tell("connected", None)
        for subscription in list(self._subscriptions.values()):
            await subscription.connected()

    async def _disconnected(self, generation: int) -> None:
        if generation != self._generation or self._sio is None:
            return
        self._sio = None
        for subscription in list(self._subscriptions.values()):
            subscription.disconnected()
        await self._tell("disconnected", None)

    async def _tell(self, name: str, event: object) -> None:
        try:
            await self._events.emit(name, event)
        except Exception:
            log.exception("%s handler raised", name)


def _resolve(future: asyncio.Future[Any], *reply: Any) -> None:
    if not future.done():
        future.set_result(reply[0] if len(reply) == 1 else list(reply))


async def connect(
    url: str,
    get_token: GetToken,
    *,
    positions: PositionStore | None = None,
    min_delay: float = 0.25,
    max_delay: float = 10.0,
    jitter: float = 0.5,
    reset_after: float = 5.0,
    connect_timeout: float = 10.0,
    request_timeout: float = 10.0,
    transports: tuple[str, ...] = ("websocket",),
) -> ReplayClient:
    """A started client for ``url``; ``get_token()`` (plain or async) is called before every
    connection attempt. It connects, and reconnects, in the background."""
    connection = ConnectionOptions(
        BackoffOptions(min_delay, max_delay, jitter),
        reset_after=reset_after,
        connect_timeout=connect_timeout,
        transports=transports,
    )
    client = ReplayClient(
        url, get_token, ClientOptions(connection, request_timeout), positions or MemoryPositions()
    )
    client.start()
    return client
