"""The bus of nodes sharing a ``RedisStore``: Redis pub/sub on one channel per database.

Theory of operation
-------------------
Every node subscribes to ``replay:bus:<db>`` (pub/sub ignores database numbers, so the number
keeps deployments on different databases of one server apart) and publishes its events there
as JSON tagged with its node id (``reference.bus.remote``). Pub/sub keeps nothing: a node hears
only what is published while its subscription is up. So the listener treats every subscribe
confirmation, the first one included, as "I may have missed something" and catches up then
(``RemoteBus._missed``): every local subscription re-reads the store, every local session is
re-read. That covers a dropped connection (Redis restarted, ``CLIENT KILL``, a network cut):
the listener reconnects with a growing delay, capped well under CLU-4's 1 s, and the new
confirmation triggers the catch-up.

A connection can also die silently (a half-open TCP connection hears nothing, forever). The
listener therefore PINGs over the subscription when it has been quiet for ``ping_interval_s``
and treats ``ping_interval_s + ping_timeout_s`` without any reply as a dropped connection.

``PubSubBus`` is that listener, catch-up and liveness; ``RedisBus`` adds the one channel, and
``reference.bus.redis_cluster.ClusterBus`` the sharded lanes of a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from redis import exceptions as rx

from reference.bus.remote import RemoteBus
from reference.store.redis import connection_reset

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)


# A subscription lost: the connection, or (ClusterError, AskError and its MovedError,
# RedisClusterException) a cluster whose topology is changing under it.
_LOST = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterError,
    rx.AskError,
    rx.RedisClusterException,
    OSError,
)


class Silent(rx.ConnectionError):
    """The subscription's connection stopped answering."""


class Resharded(rx.ConnectionError):
    """Redis ended a shard-channel subscription: its slot moved to another node."""


class PubSubBus(RemoteBus):
    """What the buses over Redis pub/sub share: a listener that resubscribes after any loss,
    catches up on every full subscription (``_confirmed``), and PINGs a quiet connection."""

    ping_interval_s: float = 5.0
    ping_timeout_s: float = 5.0
    #: The longest wait between two tries to subscribe again: the catch-up that follows must
    #: apply a grant narrowed or a session deleted meanwhile within CLU-4's 1 s of the heal.
    resubscribe_max_s: float = 0.25
    #: How long ``start`` waits for the first subscription before serving anyway.
    start_timeout_s: float = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._subscribed = asyncio.Event()
        #: Full subscriptions made so far, and subscriptions lost.
        self.subscriptions = 0
        self.losses = 0

    async def start(self) -> None:
        self._spawn(self._listen(), "redis-bus")
        with contextlib.suppress(TimeoutError):  # catching up at subscription covers the wait
            await asyncio.wait_for(self._subscribed.wait(), self.start_timeout_s)

    async def _subscription(self) -> None:
        """Subscribe and pump until the subscription is lost (then raise)."""
        raise NotImplementedError

    async def _listen(self) -> None:
        delay = self.retry_min_s
        while True:
            try:
                await self._subscription()
            except Exception as exc:
                if isinstance(exc, _LOST) or connection_reset(exc):
                    log.warning("bus: Redis subscription lost (%s); resubscribing", exc)
                else:
                    log.exception("bus: Redis listener failed; resubscribing")
            finally:
                self.losses += 1
            if self._subscribed.is_set():
                delay = self.retry_min_s  # it was up: the first retry comes quickly
            self._subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.resubscribe_max_s)

    async def _confirmed(self) -> None:
        """One subscribe confirmation; the whole subscription is up when this catches up."""
        self.subscriptions += 1
        self._subscribed.set()
        await self._missed()  # only now: anything earlier is in the store already

    async def _pump(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self.ping_interval_s))
            now = loop.time()
            if message is not None:
                heard, pinged = now, False
                kind = message.get("type")
                if kind in ("message", "smessage"):
                    await self._received(message["data"])
                elif kind in ("subscribe", "ssubscribe"):
                    await self._confirmed()
                elif kind == "sunsubscribe":  # we never unsubscribe: Redis did, for a move
                    raise Resharded(f"Redis ended the subscription to {message['channel']}")
            elif now - heard > self.ping_interval_s + self.ping_timeout_s:
                raise Silent(f"no reply for {now - heard:.1f} s")
            elif now - heard > self.ping_interval_s and not pinged:
                await pubsub.ping()  # any reply counts as being heard
                pinged = True


class RedisBus(PubSubBus):
    """Events over Redis pub/sub, through ``client`` (a ``decode_responses`` client)."""

    def __init__(self, client: Redis) -> None:
        super().__init__()
        self._client = client
        db = client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"replay:bus:{db}"

    async def _send(self, wire: dict[str, str]) -> None:
        await self._client.publish(self.channel, json.dumps(wire, separators=(",", ":")))

    async def _subscription(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            await self._pump(pubsub)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
