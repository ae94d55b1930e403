"""The client: one Socket.IO connection at a time to one server, for one session.

Two tasks do the work. The *connection loop* gets a token (``get_token``, before every
attempt: SES-4 rotates tokens), connects with python-socketio's ``AsyncClient`` (its own
reconnection off), waits for the connection to end and tries again after a backoff. The
*worker* runs everything else, one step at a time in arrival order: the socket's handlers
only queue steps, so no reply overtakes the ``replay:messages`` sent after it, and no
subscription is ever touched by two tasks.
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
from replay_client.emitter import Emitter, Handler, settle
from replay_client.errors import ReplayClientError
from replay_client.policy import Policy
from replay_client.positions import MemoryPositions, PositionStore
from replay_client.records import ErrorEvent, HistoryPage, Position
from replay_client.subscription import From, OnMessages, Subscription

__all__ = ["ClientOptions", "ClientStats", "ReplayClient", "connect"]

log = logging.getLogger(__name__)

EVENTS: Final = frozenset({"connected", "disconnected", "error"})
GetToken = Callable[[], str | Awaitable[str]]
Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ClientOptions:
    backoff: BackoffOptions = field(default_factory=BackoffOptions)
    reset_after: float = 5.0  # a connection that stayed up this long resets the backoff
    connect_timeout: float = 10.0
    request_timeout: float = 10.0  # for history pages
    transports: tuple[str, ...] = ("websocket",)


@dataclass
class ClientStats:
    token_calls: int = 0
    connects: int = 0
    disconnects: int = 0  # connections that ended without close()
    refused: int = 0  # attempts that failed (CONNECT_ERROR, network, timeout)


class ReplayClient:
    """Use :func:`connect`; ``subscribe``, ``history`` and ``close`` are the API."""

    def __init__(
        self,
        url: str,
        get_token: GetToken,
        options: ClientOptions,
        positions: PositionStore,
    ) -> None:
        self.url = url
        self.stats = ClientStats()
        self._get_token = get_token
        self._options = options
        self._positions = positions
        self._events = Emitter(EVENTS)
        self._subscriptions: dict[str, Subscription] = {}
        self._steps: asyncio.Queue[Step] = asyncio.Queue()
        self._sio: Any = None  # the connected AsyncClient, as the worker sees it
        self._generation = 0  # of connections; steps of an older one are dropped
        # The connection as the socket's handlers see it (the worker's view lags behind).
        self._up = asyncio.Event()
        self._live: tuple[Any, asyncio.Event] | None = None
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connection_loop(), name="replay-client-connection"),
            loop.create_task(self._work(), name="replay-client-worker"),
        ]

    # -- the application's side ---------------------------------------------------------

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

    async def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription (``subscription.state`` is ``unsubscribed`` afterwards)."""
        await self._run(subscription.unsubscribe)

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
        """Emit ``event`` once connected and return the server's reply."""
        async with asyncio.timeout(self._options.request_timeout):
            while True:
                await self._up.wait()
                if self._live is None:
                    continue
                sio, gone = self._live
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
                # The connection ended before the reply: ask again on the next one.

    async def close(self) -> None:
        """End every subscription (reason ``closed``) and the connection; no reconnect."""
        if self._closing:
            return
        await self._run(self._end_all)
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._live is not None:
            with contextlib.suppress(Exception):
                await self._live[0].disconnect()

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
            return False  # the connection is going; its "disconnect" step follows
        return True

    def later(self, delay: float, action: Step) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            self._steps.put_nowait(action)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    def backoff(self) -> Backoff:
        return Backoff(self._options.backoff)

    def ended(self, subscription: Subscription) -> None:
        if self._subscriptions.get(subscription.channel) is subscription:
            del self._subscriptions[subscription.channel]

    # -- the worker ---------------------------------------------------------------------

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
                await self._report(ReplayClientError("internal", repr(exc)))

    async def _connected(self, sio: Any, generation: int) -> None:
        self._sio, self._generation = sio, generation
        self.stats.connects += 1
        await self._tell("connected", None)
        for subscription in list(self._subscriptions.values()):
            await subscription.connected()

    async def _disconnected(self, generation: int) -> None:
        if generation != self._generation or self._sio is None:
            return
        self._sio = None
        self.stats.disconnects += 1
        for subscription in list(self._subscriptions.values()):
            subscription.disconnected()
        await self._tell("disconnected", None)

    def _dispatch(
        self, generation: int, channel_of: Any, step: Callable[[Subscription], Step]
    ) -> None:
        """Queue ``step`` for the subscription of the event's channel, if there is one."""
        channel = channel_of.get("channel") if isinstance(channel_of, dict) else None

        async def run() -> None:
            subscription = self._subscriptions.get(channel) if isinstance(channel, str) else None
            if subscription is not None:
                await step(subscription)()

        self._queue(generation, run)

    # -- the connection loop ------------------------------------------------------------

    def _bind(self, sio: Any, generation: int, refusal: dict[str, Any]) -> asyncio.Event:
        gone = asyncio.Event()

        def on_connect() -> None:
            self._live = (sio, gone)
            self._up.set()
            self._steps.put_nowait(lambda: self._connected(sio, generation))

        def on_disconnect(*_reason: Any) -> None:
            if self._live is not None and self._live[0] is sio:
                self._live = None
                self._up.clear()
            gone.set()
            self._steps.put_nowait(lambda: self._disconnected(generation))

        def on_messages(data: Any) -> None:
            epoch, batch = data.get("epoch"), data.get("messages")
            if isinstance(epoch, str) and isinstance(batch, list):
                self._dispatch(generation, data, lambda s: lambda: s.messages(epoch, batch))

        def on_unsubscribed(data: Any) -> None:
            reason, message = data.get("reason"), data.get("message")
            self._dispatch(generation, data, lambda s: lambda: s.server_ended(str(reason), message))

        sio.on("connect", on_connect)
        sio.on("disconnect", on_disconnect)
        sio.on("connect_error", lambda data=None: refusal.update(data=data))
        sio.on("replay:messages", on_messages)
        sio.on("replay:unsubscribed", on_unsubscribed)
        return gone

    async def _connection_loop(self) -> None:
        backoff = Backoff(self._options.backoff)
        loop = asyncio.get_running_loop()
        generation = 0
        while True:
            generation += 1
            sio = socketio.AsyncClient(reconnection=False)
            refusal: dict[str, Any] = {}
            gone = self._bind(sio, generation, refusal)
            try:
                self.stats.token_calls += 1
                token = await settle(self._get_token())
            except Exception as exc:
                await self._report(ReplayClientError("token_failed", repr(exc), retryable=True))
                await asyncio.sleep(backoff.next_delay())
                continue
            try:
                await sio.connect(
                    self.url,
                    auth={"token": token},
                    transports=list(self._options.transports),
                    wait_timeout=self._options.connect_timeout,
                )
            except (socketio.exceptions.SocketIOError, OSError) as exc:
                self.stats.refused += 1
                await self._report(_refused(refusal.get("data"), exc))
                with contextlib.suppress(Exception):
                    await sio.disconnect()
                await asyncio.sleep(backoff.next_delay())
                continue
            since = loop.time()
            await gone.wait()
            if loop.time() - since >= self._options.reset_after:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _report(self, error: ReplayClientError) -> None:
        await self._tell("error", ErrorEvent(None, error.code, error.message, error.retryable))

    async def _tell(self, name: str, event: object) -> None:
        try:
            await self._events.emit(name, event)
        except Exception:
            log.exception("%s handler raised", name)


def _resolve(future: asyncio.Future[Any], *reply: Any) -> None:
    if not future.done():
        future.set_result(reply[0] if len(reply) == 1 else list(reply))


def _refused(data: Any, exc: BaseException) -> ReplayClientError:
    """A failed connect: the server's CONNECT_ERROR message (CON-2, CON-3), or the cause."""
    message = data.get("message") if isinstance(data, dict) else None
    if isinstance(message, str):
        return ReplayClientError(message, "connect refused", retryable=True)
    return ReplayClientError("connect_failed", repr(exc))


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
    options = ClientOptions(
        BackoffOptions(min_delay, max_delay, jitter),
        reset_after=reset_after,
        connect_timeout=connect_timeout,
        request_timeout=request_timeout,
        transports=transports,
    )
    client = ReplayClient(url, get_token, options, positions or MemoryPositions())
    client.start()
    return client
