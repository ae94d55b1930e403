"""The cross-node buses: RedisBus on a real ``redis-server``, MongoBus on mongomock (polling).

Every wait is bounded; nothing asserts on time. "Not twice to itself" is checked behind a
barrier: an event published later by another node, which the medium delivers after any echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from harness import serve
from redis_server import RedisServer

from conformance.faults import FaultProxy
from reference.bus import LocalBus, open_bus
from reference.bus.base import BusEvent, HeadMoved, SessionChanged, SessionDeleted
from reference.bus.mongo import MongoBus
from reference.bus.redis import RedisBus
from reference.bus.remote import RemoteBus, decode_bus_event, encode_bus_event
from reference.core.errors import Unavailable
from reference.core.model import Grant
from reference.core.payloads import encode_payload
from reference.store import MemoryStore
from reference.store.mongo import MongoStore
from reference.store.redis import RedisStore

DB = 4


class Recorder:
    """A bus handler that records events, and counts catch-ups."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.missed = 0
        self._changed = asyncio.Event()

    async def __call__(self, event: BusEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def on_missed(self) -> None:
        self.missed += 1
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def started(bus: RemoteBus) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    bus.attach(recorder)
    bus.on_missed(recorder.on_missed)
    await bus.start()
    try:
        yield recorder
    finally:
        await bus.stop()


@pytest.fixture
async def redis_stores(redis_server: RedisServer) -> AsyncIterator[list[RedisStore]]:
    """Three opened stores (three connection pools) on one empty database."""
    stores = [RedisStore.from_url(redis_server.url(DB)) for _ in range(3)]
    for store in stores:
        await store.open()
    await stores[0].client.flushdb()
    try:
        yield stores
    finally:
        await stores[0].client.flushdb()
        for store in stores:
            await store.close()


async def kill_subscriptions(redis_server: RedisServer) -> None:
    with redis_server.admin() as admin:
        assert admin.client_kill_filter(_type="pubsub") >= 1


def test_wire_form_round_trips() -> None:
    for event in (HeadMoved("a:b"), SessionChanged("s"), SessionDeleted("s")):
        assert decode_bus_event(encode_bus_event("n1", event)) == ("n1", event)
    for junk in (None, [], {"node": "n", "kind": "what", "key": "k"}, {"kind": "head"}):
        assert decode_bus_event(junk) is None


# --- RedisBus -----------------------------------------------------------------------------


async def test_redis_bus_reaches_other_nodes_once(redis_stores: list[RedisStore]) -> None:
    a, b = RedisBus(redis_stores[0].client), RedisBus(redis_stores[1].client)
    assert a.channel == f"replay:bus:{DB}" and a.node_id != b.node_id
    sent: list[BusEvent] = [HeadMoved("c"), SessionChanged("s1"), SessionDeleted("s1")]
    async with started(a) as at_a, started(b) as at_b:
        assert (at_a.missed, at_b.missed) == (1, 1)  # the first subscription catches up too
        for event in sent:
            await a.publish(event)
        assert at_a.events == sent  # handled locally at once
        await at_b.until(lambda: len(at_b.events) == 3)
        assert at_b.events == sent
        await b.publish(HeadMoved("barrier"))  # delivered to a after any echo of a's own
        await at_a.until(lambda: HeadMoved("barrier") in at_a.events)
        assert at_a.events == [*sent, HeadMoved("barrier")]


async def test_redis_bus_resubscribes_and_catches_up(
    redis_server: RedisServer, redis_stores: list[RedisStore]
) -> None:
    a, b = RedisBus(redis_stores[0].client), RedisBus(redis_stores[1].client)
    async with started(a) as at_a, started(b):
        assert a.subscriptions == 1
        await kill_subscriptions(redis_server)  # CLIENT KILL TYPE pubsub
        await at_a.until(lambda: at_a.missed == 2)
        assert a.subscriptions == 2
        await b.publish(HeadMoved("after"))  # and it hears again
        await at_a.until(lambda: HeadMoved("after") in at_a.events)


async def test_redis_bus_notices_a_silent_connection(
    redis_server: RedisServer, redis_stores: list[RedisStore]
) -> None:
    """A half-open connection hears nothing: the bus PINGs, gives up on it and resubscribes."""
    async with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        store = RedisStore.from_url(f"redis://127.0.0.1:{proxy.port}/{DB}")
        try:
            a, b = RedisBus(store.client), RedisBus(redis_stores[1].client)
            a.ping_interval_s, a.ping_timeout_s = 0.2, 0.3
            async with started(a) as at_a, started(b):
                proxy.stall()  # bytes held both ways, nothing closed
                async with asyncio.timeout(5):
                    while a.losses == 0:  # noqa: ASYNC110 - a loss sets no event
                        await asyncio.sleep(0.05)
                proxy.heal()
                await at_a.until(lambda: at_a.missed >= 2)
                await b.publish(HeadMoved("after"))
                await at_a.until(lambda: HeadMoved("after") in at_a.events)
        finally:
            await store.close()


async def test_redis_bus_resends_what_it_could_not_send(
    redis_stores: list[RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = RedisBus(redis_stores[0].client), RedisBus(redis_stores[1].client)
    async with started(a) as at_a, started(b) as at_b:
        real_publish = a._client.publish
        failures = iter([True, True])

        async def flaky_publish(channel: str, message: str) -> Any:
            if next(failures, False):
                raise ConnectionError("simulated")
            return await real_publish(channel, message)

        monkeypatch.setattr(a._client, "publish", flaky_publish)
        await a.publish(SessionDeleted("s1"))
        assert at_a.events == [SessionDeleted("s1")]  # locally at once, whatever the medium
        assert a.pending == 1
        await at_b.until(lambda: SessionDeleted("s1") in at_b.events)  # from the outbox
        assert a.pending == 0


async def test_redis_bus_resubscribes_soon_after_a_partition_heals(
    redis_server: RedisServer, redis_stores: list[RedisStore]
) -> None:
    """Cut and refused for a while, the bus keeps trying often enough that the catch-up after
    the heal can apply a revocation within CLU-4's 1 s (it used to back off to 2 s)."""
    assert RedisBus.resubscribe_max_s < 1
    async with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        store = RedisStore.from_url(f"redis://127.0.0.1:{proxy.port}/{DB}")
        try:
            a = RedisBus(store.client)
            async with started(a) as at_a:
                await proxy.cut()
                proxy.refuse()  # every try to subscribe again is reset meanwhile
                await asyncio.sleep(3 * a.resubscribe_max_s + a.retry_max_s)
                assert at_a.missed == 1 and a.losses >= 3
                proxy.heal()
                await at_a.until(lambda: at_a.missed == 2, timeout=5)
        finally:
            await store.close()


class Unreachable(RemoteBus):
    """A bus whose medium is this test: events arrive through ``_received``."""

    async def _send(self, wire: dict[str, str]) -> None:
        pass


async def test_an_event_the_store_could_not_serve_is_handled_again() -> None:
    """Handling re-reads the store: while it is unavailable the event waits, not vanishes
    (a narrowed grant or a delete that arrived during a partition used to be lost)."""
    bus, handled, failures = Unreachable(), asyncio.Event(), iter([True, True])

    async def handler(event: BusEvent) -> None:
        if next(failures, False):
            raise Unavailable("the store cannot be reached")
        handled.set()

    bus.attach(handler)
    bus.redispatch_s = 0.01
    try:
        await bus._received(json.dumps(encode_bus_event("other-node", SessionChanged("s1"))))
        assert not handled.is_set()
        await asyncio.wait_for(handled.wait(), 5)
        assert not bus._retries or all(r.done() for r in bus._retries)
    finally:
        await bus.stop()


async def test_node_catches_up_on_events_it_never_heard(
    redis_server: RedisServer, redis_stores: list[RedisStore]
) -> None:
    """What a node does after a drop: wake every subscription, re-read every session."""
    store, quiet = redis_stores[0], redis_stores[1]  # ``quiet`` writes without a bus
    async with serve(store, bus=RedisBus(store.client)) as node:
        reader = await node.client(session_id="reader")
        narrowed = await node.client(session_id="narrowed")
        deleted = await node.client(session_id="deleted")
        recreated = await node.client(session_id="recreated")
        for client in (reader, narrowed):
            reply = await client.call("replay:subscribe", {"channel": "c", "from": "beginning"})
            assert reply["ok"], reply
        # Another node appends, narrows a session, deletes one, and deletes and registers one
        # again under the same id; no event reaches this one.
        await quiet.append("c", encode_payload("unheard", 1024), None)
        old = await quiet.session("narrowed")
        assert old is not None
        await quiet.upsert_session(dataclasses.replace(old, grants=(Grant("other", frozenset()),)))
        assert await quiet.delete_session("deleted")
        before = await quiet.session("recreated")
        assert before is not None and await quiet.delete_session("recreated")
        await quiet.upsert_session(
            dataclasses.replace(before, token_hash="new-hash", incarnation="new-incarnation")
        )
        await kill_subscriptions(redis_server)
        await reader.wait_for_offset("c", 1)
        assert reader.messages["c"][0]["data"] == "unheard"
        await narrowed.wait_until(
            lambda: (
                ("replay:unsubscribed", {"channel": "c", "reason": "revoked"}) in narrowed.events
            )
        )
        await asyncio.wait_for(deleted.disconnected.wait(), 5)
        await asyncio.wait_for(recreated.disconnected.wait(), 5)  # SES-15: not the new session's
        assert not narrowed.disconnected.is_set()  # re-registered, the same session (SES-2)


# --- MongoBus -----------------------------------------------------------------------------


@pytest.fixture
def mock_db() -> Any:
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["bus_test"]


def fast(bus: MongoBus) -> MongoBus:
    bus.poll_interval_s = 0.01
    bus.gap_wait_s = 0.2
    return bus


async def test_mongo_bus_reaches_other_nodes_once(mock_db: Any) -> None:
    one, two = MongoStore(mock_db), MongoStore(mock_db)  # two nodes, one database
    a, b = fast(MongoBus(one.database)), fast(MongoBus(two.database))
    sent: list[BusEvent] = [HeadMoved("c"), SessionChanged("s1"), SessionDeleted("s1")]
    async with started(a) as at_a, started(b) as at_b:
        for event in sent:
            await a.publish(event)
        assert at_a.events == sent
        await at_b.until(lambda: len(at_b.events) == 3)
        assert at_b.events == sent  # in order
        await b.publish(HeadMoved("barrier"))
        await at_a.until(lambda: HeadMoved("barrier") in at_a.events)
        assert at_a.events == [*sent, HeadMoved("barrier")]
        assert (at_a.missed, at_b.missed) == (0, 0)


async def test_mongo_bus_skips_a_number_that_never_arrives(mock_db: Any) -> None:
    a, b = fast(MongoBus(mock_db)), fast(MongoBus(mock_db))
    async with started(a), started(b) as at_b:
        # A publisher took a number and died before inserting its event.
        await mock_db["bus_seq"].update_one({"_id": "bus"}, {"$inc": {"seq": 1}}, upsert=True)
        await a.publish(HeadMoved("later"))
        await at_b.until(lambda: HeadMoved("later") in at_b.events)  # not held back by the gap
        await at_b.until(lambda: at_b.missed == 1)  # and once it gave up waiting: catch up
        await a.publish(HeadMoved("next"))
        await at_b.until(lambda: HeadMoved("next") in at_b.events)
        assert at_b.missed == 1


async def test_mongo_bus_ignores_events_from_before_it_started(mock_db: Any) -> None:
    a = fast(MongoBus(mock_db))
    async with started(a):
        await a.publish(HeadMoved("old"))
    b = fast(MongoBus(mock_db))
    async with started(b) as at_b:
        await a.publish(HeadMoved("new"))  # a is stopped: it only sends
        await at_b.until(lambda: bool(at_b.events))
        assert at_b.events == [HeadMoved("new")]


async def test_two_nodes_over_one_mongomock_database(mock_db: Any) -> None:
    one, two = MongoStore(mock_db), MongoStore(mock_db)
    buses = [fast(MongoBus(one.database)), fast(MongoBus(two.database))]
    async with serve(one, bus=buses[0]) as a, serve(two, bus=buses[1]) as b:
        client = await b.client(session_id="s")
        assert (await client.call("replay:subscribe", {"channel": "c", "from": "beginning"}))["ok"]
        await a.publish("c", "through a")  # CLU-2
        await client.wait_for_offset("c", 1)
        status, _ = await a.call("DELETE", "/replay/v1/sessions/s")
        assert status == 204
        await asyncio.wait_for(client.disconnected.wait(), 5)  # CLU-4


async def test_two_nodes_over_real_mongodb(mongodb_url: str) -> None:
    """The cross-node bus on a real MongoDB (change streams where it is a replica set, the
    polled event log otherwise); skipped, saying so, where no Docker engine runs."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        database = client[f"bus_{secrets.token_hex(4)}"]
        one, two = MongoStore(database), MongoStore(database)
        buses = [fast(MongoBus(one.database)), fast(MongoBus(two.database))]
        async with serve(one, bus=buses[0]) as a, serve(two, bus=buses[1]) as b:
            subscriber = await b.client(session_id="s")
            reply = await subscriber.call("replay:subscribe", {"channel": "c", "from": "beginning"})
            assert reply["ok"]
            await a.publish("c", "through a")  # CLU-2
            await subscriber.wait_for_offset("c", 1)
            status, _ = await a.call("DELETE", "/replay/v1/sessions/s")
            assert status == 204
            await asyncio.wait_for(subscriber.disconnected.wait(), 5)  # CLU-4
        await client.drop_database(database.name)
    finally:
        await client.close()


# --- open_bus -----------------------------------------------------------------------------


async def test_open_bus_picks_the_store_s_bus(redis_server: RedisServer, mock_db: Any) -> None:
    assert isinstance(open_bus("memory", MemoryStore()), LocalBus)
    store = RedisStore.from_url(redis_server.url(DB))
    try:
        assert isinstance(open_bus(redis_server.url(DB), store), RedisBus)
        with pytest.raises(ValueError, match="no cross-node bus"):
            open_bus("mongodb://h/x", store)
    finally:
        await store.close()
    assert isinstance(open_bus("mongodb://h/x", MongoStore(mock_db)), MongoBus)
