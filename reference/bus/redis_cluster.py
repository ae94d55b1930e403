"""The bus of nodes sharing a ``RedisClusterStore``: sharded pub/sub on sixteen lanes.

Theory of operation
-------------------
Plain pub/sub on a cluster broadcasts every message to every node of the cluster, so its cost
grows with the cluster instead of spreading over it. Sharded pub/sub (``SSUBSCRIBE``,
``SPUBLISH``, Redis >= 7) keeps a shard channel's messages on the shard that owns its slot, but
then a message reaches only the subscribers of that shard channel. The bus therefore uses
``LANES`` shard channels (``LANE_NAMES``), whose hash tags are picked so that their slots are
spread evenly over the slot space: on any even assignment of slots, every shard carries a share
of the lanes. A node publishes each event to one lane (chosen by a hash of the channel name or
session id), and every node subscribes to every lane, so every node hears every event:
wake-ups, grant changes and deletions alike (CLU-2, CLU-4), whichever shard they pass through.
Per-channel subscriptions (a node subscribing only to the channels its sockets follow) would
scale further, but need the node to tell its bus what it follows; the lanes need nothing.

One listener holds one connection per master that owns a lane, and subscribes each lane there
(one ``SSUBSCRIBE`` per lane: lanes are in different slots). Once every lane is confirmed it
catches up (``RemoteBus._missed``), as ``RedisBus`` does on its one confirmation. Any loss ends
the whole subscription: a connection error or silence (a master crashed or is cut off), or a
``sunsubscribe`` Redis sends when a lane's slot moves (resharding, a failover that demotes a
master). The listener then re-reads the topology, waits with a growing delay, subscribes every
lane on its current owner and catches up again: a topology change costs each node one re-read
of its subscriptions and sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ClusterDownError

from reference.bus.redis import PubSubBus
from reference.store.redis import POOL_CONNECTIONS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from redis.asyncio.client import PubSub
    from redis.asyncio.cluster import ClusterNode, RedisCluster

LANES = 16


def _lane_names() -> tuple[str, ...]:
    """One shard channel name per sixteenth of the slot space, the first found for each."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < LANES:
        name = f"replay:bus:{{lane{n}}}"
        found.setdefault(key_slot(name.encode()) * LANES // REDIS_CLUSTER_HASH_SLOTS, name)
        n += 1
    return tuple(found[i] for i in range(LANES))


LANE_NAMES = _lane_names()


def lane_of(wire: dict[str, str]) -> str:
    """The lane that carries an event: by its channel or session, so one key keeps one lane."""
    return LANE_NAMES[key_slot(wire["key"].encode()) % LANES]


class ClusterBus(PubSubBus):
    """Events over sharded pub/sub, through ``cluster`` (a ``decode_responses`` client)."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__()
        self._cluster = cluster
        self._lanes_up = 0
        self._in_flight = asyncio.Semaphore(POOL_CONNECTIONS)  # see CLUSTER_CONNECTIONS

    async def _send(self, wire: dict[str, str]) -> None:
        async with self._in_flight:
            await self._cluster.spublish(lane_of(wire), json.dumps(wire, separators=(",", ":")))

    async def _confirmed(self) -> None:
        self._lanes_up += 1
        if self._lanes_up == LANES:
            await super()._confirmed()

    async def _subscription(self) -> None:
        await self._cluster.nodes_manager.initialize()  # the current owner of every lane
        owners: dict[str, tuple[ClusterNode, list[str]]] = {}
        for lane in LANE_NAMES:
            node = self._cluster.get_node_from_key(lane)
            if node is None:  # a slot no master covers (yet): wait for the topology to settle
                raise ClusterDownError(f"no master owns {lane}")
            owners.setdefault(node.name, (node, []))[1].append(lane)
        self._lanes_up = 0
        async with contextlib.AsyncExitStack() as stack:
            pumps = []
            for node, lanes in owners.values():
                pubsub = await stack.enter_async_context(_node_pubsub(node))
                for lane in lanes:
                    await pubsub.ssubscribe(lane)
                pumps.append(asyncio.ensure_future(self._pump(pubsub)))
            try:  # a pump only ever ends by raising: the first loss ends them all
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                for pump in done:
                    pump.result()
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)


@contextlib.asynccontextmanager
async def _node_pubsub(node: ClusterNode) -> AsyncIterator[PubSub]:
    """A pub/sub connection of its own to one cluster node, with the cluster's options.

    It never reconnects by itself (no retries): a silent resubscription would skip the
    catch-up that a lost subscription needs."""
    options = {**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    client = Redis.from_pool(ConnectionPool(connection_class=node.connection_class, **options))
    pubsub = client.pubsub()
    try:
        yield pubsub
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await client.aclose()
