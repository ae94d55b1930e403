"""ClusterBus on a real Redis Cluster: lanes on every shard, every event heard by every other
node, and a topology change (a replica taking over its master) followed by itself, with the
catch-up that a lost subscription needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis_cluster import RedisCluster
from test_bus import started

from reference.bus import open_bus
from reference.bus.base import HeadMoved, SessionChanged, SessionDeleted
from reference.bus.redis_cluster import LANE_NAMES, LANES, ClusterBus, lane_of
from reference.bus.remote import encode_bus_event
from reference.store.redis_cluster import RedisClusterStore


def test_lanes_spread_over_the_slot_space() -> None:
    sixteenths = [
        key_slot(lane.encode()) * LANES // REDIS_CLUSTER_HASH_SLOTS for lane in LANE_NAMES
    ]
    assert sixteenths == list(range(LANES)) and len(set(LANE_NAMES)) == LANES


def test_one_key_keeps_one_lane_and_keys_use_every_lane() -> None:
    wires = [encode_bus_event("n", HeadMoved(f"room:{n}")) for n in range(400)]
    assert {lane_of(wire) for wire in wires} == set(LANE_NAMES)
    assert lane_of(encode_bus_event("a", SessionChanged("s"))) == lane_of(
        encode_bus_event("b", SessionDeleted("s"))
    )


@pytest.fixture
async def stores(redis_cluster: RedisCluster) -> AsyncIterator[list[RedisClusterStore]]:
    """Two opened stores (two nodes' clients) on the session's cluster."""
    opened = [RedisClusterStore.from_cluster_url(redis_cluster.url()) for _ in range(2)]
    for store in opened:
        await store.open()
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_every_lane_is_on_a_live_master(redis_cluster: RedisCluster) -> None:
    masters = redis_cluster.masters()
    owned = [
        sum(any(lo <= key_slot(lane.encode()) <= hi for lo, hi in ranges) for lane in LANE_NAMES)
        for _, ranges in masters
    ]
    assert len(owned) == 3 and all(count >= 3 for count in owned), owned


async def test_every_event_reaches_the_other_node_once(stores: list[RedisClusterStore]) -> None:
    a, b = (open_bus("redis+cluster://seed:1", store) for store in stores)
    assert isinstance(a, ClusterBus) and isinstance(b, ClusterBus)
    events = [HeadMoved(f"room:{n}") for n in range(64)] + [SessionDeleted("s1")]
    async with started(a) as heard_a, started(b) as heard_b:
        assert (heard_a.missed, heard_b.missed) == (1, 1)  # the catch-up at subscription
        for event in events:
            await a.publish(event)
        await heard_b.until(lambda: len(heard_b.events) >= len(events))
        await b.publish(HeadMoved("barrier"))
        await heard_a.until(lambda: HeadMoved("barrier") in heard_a.events)
    heard = [event for event in heard_b.events if event != HeadMoved("barrier")]
    assert sorted(map(str, heard)) == sorted(map(str, events))
    assert heard_a.events.count(HeadMoved("room:1")) == 1  # its own, once: not echoed


async def test_a_failover_resubscribes_and_catches_up(
    redis_cluster: RedisCluster, stores: list[RedisClusterStore]
) -> None:
    a, b = ClusterBus(stores[0].cluster), ClusterBus(stores[1].cluster)
    async with started(a) as heard_a, started(b) as heard_b:
        replica = next(
            server
            for server in redis_cluster.servers
            if server.admin().info("replication")["role"] == "slave"
        )
        with contextlib.closing(replica.admin()) as admin:
            admin.execute_command("CLUSTER", "FAILOVER")  # the replica takes over, gracefully
        await heard_b.until(lambda: heard_b.missed >= 2, timeout=20)
        await heard_a.until(lambda: heard_a.missed >= 2, timeout=20)
        assert a.losses >= 1 and b.losses >= 1
        await asyncio.to_thread(redis_cluster.wait_until_settled)
        channels = [f"after:{n}" for n in range(32)]  # on every lane's new owner too
        for channel in channels:
            await a.publish(HeadMoved(channel))
        await heard_b.until(lambda: all(HeadMoved(c) in heard_b.events for c in channels), 10)
