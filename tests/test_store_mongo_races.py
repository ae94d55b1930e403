"""The MongoDB store where one call at a time is not enough: races between nodes, a slow
publisher, a deployment that fails, retention that runs meanwhile, and what stays behind.

Two ``MongoStore`` instances on one database stand for two nodes; ``FaultyDatabase`` holds
one of them at an exact step, or answers with PyMongo's errors as a step-down or an outage
would. Each test is one defect of issue 13, named in its docstring. They run on mongomock-motor
here and, where a Docker engine runs, on a real MongoDB too (``mongo`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from harness import serve
from mongo_faults import FaultyDatabase, writes
from pymongo import ReadPreference
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from reference.bus.base import BusEvent, HeadMoved
from reference.bus.mongo import MongoBus
from reference.core.errors import InternalError, Unavailable
from reference.core.model import Action, Grant, Payload, Session
from reference.core.payloads import RetentionUpdate, encode_payload
from reference.store import open_store
from reference.store.mongo import MongoStore

if TYPE_CHECKING:
    from tests.conftest import FakeClock, StoreFactory

Node = Callable[..., Awaitable[tuple[MongoStore, FaultyDatabase]]]


def payload(value: object) -> Payload:
    return encode_payload(value, 1 << 16)


def raw(db: Any) -> Any:
    return getattr(db, "inner", db)


def is_mongomock(db: Any) -> bool:
    from mongomock_motor import AsyncMongoMockDatabase  # it masquerades as Motor's class

    return isinstance(raw(db), AsyncMongoMockDatabase)


def session(token_hash: str, expires_at: int) -> Session:
    return Session(
        session_id="s1",
        client_id="c1",
        grants=(Grant("*", frozenset({Action.SUBSCRIBE})),),
        subscribe=(),
        token_hash=token_hash,
        expires_at=expires_at,
        incarnation=f"incarnation-{token_hash}",
    )


@pytest.fixture
async def node(mongo: tuple[StoreFactory, Any], clock: FakeClock) -> AsyncIterator[Node]:
    """``await node()``: another opened store (another node) on the test's database, behind
    its own ``FaultyDatabase``."""
    _, db = mongo
    opened: list[MongoStore] = []

    async def make(**kwargs: Any) -> tuple[MongoStore, FaultyDatabase]:
        faulty = FaultyDatabase(db)
        store = MongoStore(faulty, clock=clock, **kwargs)
        await store.open()
        opened.append(store)
        return store, faulty

    yield make
    for store in opened:
        await store.close()


# --- offsets ------------------------------------------------------------------------------


async def test_a_trim_between_reading_the_head_and_storing_cannot_reuse_an_offset(
    node: Node,
) -> None:
    """An offset handed out twice, and an acknowledged publish lost (OFF-3, DUR-1, PUB-10):
    node B is slow between deciding its offset and storing; meanwhile node A publishes twice
    and its trim (``max_messages=1``) deletes offset 1, which B then stored again."""
    a, _ = await node()
    b, b_db = await node()
    await a.set_retention("c", RetentionUpdate(max_messages=1))
    gate = b_db.hold(writes())  # B's append, before its first write
    late = asyncio.create_task(b.append("c", payload("b"), None))
    await gate.reached.wait()
    results = [await a.append("c", payload(f"a{i}"), None) for i in (1, 2)]
    gate.release()
    results.append(await late)
    assert sorted(r.offset for r in results) == [1, 2, 3]  # OFF-3, PUB-4
    state = await b.state("c")
    assert (state.first, state.head) == (3, 3)
    newest = await a.read("c", 3, 10)
    at = {r.offset: r.id for r in results}
    assert [m.id for m in newest.messages] == [at[3]]  # DUR-1: the acknowledged one is there


async def test_concurrent_appends_cost_a_bounded_number_of_writes_each(node: Node) -> None:
    """Quadratic under contention: n concurrent appends to one channel took n(n+1)/2 insert
    attempts; now each append costs a bounded number of writes, whatever the contention."""
    a, a_db = await node()
    b, b_db = await node()
    await a.state("c")
    n = 40
    stores = [a, b] * (n // 2)
    results = await asyncio.gather(*(s.append("c", payload(i), None) for i, s in enumerate(stores)))
    assert sorted(r.offset for r in results) == list(range(1, n + 1))  # PUB-4
    made = a_db.count(writes()) + b_db.count(writes())
    assert made <= 4 * n, f"{made} writes for {n} appends"
    read = await a.read("c", 1, n)
    assert [m.offset for m in read.messages] == list(range(1, n + 1))


# --- idempotency --------------------------------------------------------------------------


async def test_a_publisher_slower_than_the_takeover_does_not_store_its_id_twice(
    node: Node, clock: FakeClock
) -> None:
    """One idempotency id stored twice (IDM-2, IDM-6): node A claims ``k`` and stalls past the
    claim's takeover time (an election, a clock off by seconds); B takes the claim over and
    stores ``k``; then A wakes up and must not store it again, nor answer ``duplicate: false``."""
    a, a_db = await node()
    b, _ = await node()
    for store in (a, b):
        store.claims.stale_ms = 50
    await b.state("c")  # the channel exists, so A's first write is its claim
    gate = a_db.hold(writes(besides="idempotency"))
    slow = asyncio.create_task(a.append("c", payload("from a"), "k"))
    await gate.reached.wait()  # A holds the claim and has stored nothing yet
    clock.advance(11)  # the takeover time passes on the store's clock...
    await asyncio.sleep(0.2)  # ...and on the database server's
    fast = await b.append("c", payload("from b"), "k")
    gate.release()
    late = await slow
    assert sorted([fast.duplicate, late.duplicate]) == [False, True]  # IDM-2
    assert fast.offset == late.offset == 1
    assert (await a.state("c")).head == 1
    assert [m.data for m in (await a.read("c", 1, 10)).messages] == ["from b"]


# --- durability, read concern, read preference ----------------------------------------------


async def test_durable_is_decided_from_the_deployment(
    node: Node, mongo: tuple[StoreFactory, Any]
) -> None:
    """``durable: true`` claimed on any deployment (INF-4, DUR-2): mongomock keeps nothing
    across a restart of its process; the real test server journals every write."""
    store, _ = await node()
    assert store.durable is (not is_mongomock(mongo[1]))


async def test_open_store_enforces_primary_reads_and_short_timeouts() -> None:
    """A connection string with ``secondaryPreferred`` broke read-your-writes (PUB-10), and
    an election or outage took the default 30 s of server selection to answer."""
    store = open_store("mongodb://localhost:1/x?readPreference=secondaryPreferred")
    try:
        assert isinstance(store, MongoStore)
        assert store.database.read_preference == ReadPreference.PRIMARY
        options = store.database.client.options  # type: ignore[attr-defined]
        assert options.server_selection_timeout <= 5
    finally:
        await store.close()


# --- errors -------------------------------------------------------------------------------

TRANSIENT: list[Callable[[], BaseException]] = [
    lambda: AutoReconnect("connection reset"),
    lambda: NotPrimaryError("not primary"),
    lambda: NetworkTimeout("timed out"),
    lambda: ServerSelectionTimeoutError("no primary"),
    lambda: ExecutionTimeout("operation exceeded time limit", 50),
    lambda: WTimeoutError("waiting for replication timed out", 64),
    lambda: WriteConcernError("write concern failed", 64),
    lambda: OperationFailure("interrupted at shutdown", 11600),
    lambda: OperationFailure("primary stepped down", 189),
]


def _calls(store: MongoStore) -> list[Callable[[], Awaitable[object]]]:
    return [
        lambda: store.state("c"),
        lambda: store.read("c", 1, 10),
        lambda: store.append("c", payload("x"), None),
        lambda: store.append("c", payload("x"), "k"),
        lambda: store.set_retention("c", RetentionUpdate(max_messages=3)),
        lambda: store.session("s1"),
        lambda: store.delete_session("s1"),
        lambda: store.advance_cursor("s1", "c", "e", 1),
    ]


@pytest.mark.parametrize("error", TRANSIENT)
async def test_transient_errors_answer_unavailable(
    node: Node, error: Callable[[], BaseException]
) -> None:
    """No MongoDB error became ``unavailable``: a step-down, a timeout or a lost connection
    answered ``internal``. Each is transient, and says so (§4.1)."""
    store, faulty = await node()
    await store.append("c", payload("before"), None)
    faulty.fail(lambda coll, method: True, error)
    for call in _calls(store):
        with pytest.raises(Unavailable):
            await call()


async def test_other_errors_answer_internal(node: Node) -> None:
    store, faulty = await node()
    faulty.fail(lambda coll, method: True, lambda: OperationFailure("not authorized", 13))
    for call in _calls(store):
        with pytest.raises(InternalError):
            await call()


async def test_bookkeeping_after_the_message_is_stored_never_fails_the_publish(
    node: Node,
) -> None:
    """Steps after the message is stored (the head, the claim's offset, the trim) failed the
    publish, so the publisher stored it again on retry (DUR-1, IDM-6)."""
    store, faulty = await node()
    await store.set_retention("c", RetentionUpdate(max_messages=1))
    await store.append("c", payload(0), None)
    stepped_down = faulty.fail(
        lambda coll, method: (
            method == "delete_many" or (coll == "channels" and method == "update_one")
        ),
        lambda: AutoReconnect("primary stepped down"),
    )
    assert (await store.append("c", payload(1), None)).offset == 2
    assert stepped_down.hits > 0
    stepped_down.stop()
    claim_lost = faulty.fail(  # the claim itself is written; recording its offset fails
        lambda coll, method: coll == "idempotency" and method == "update_one",
        lambda: AutoReconnect("primary stepped down"),
        skip=1,
    )
    result = await store.append("c", payload("kept"), "k")
    assert (result.offset, result.duplicate, claim_lost.hits) == (3, False, 1)
    claim_lost.stop()
    again = await store.append("c", payload("retry"), "k")
    assert (again.offset, again.duplicate) == (3, True)  # IDM-6: stored once
    assert [m.data for m in (await store.read("c", 3, 10)).messages] == ["kept"]


async def test_a_message_stored_but_not_yet_copied_out_is_read_and_completed(
    node: Node, clock: FakeClock
) -> None:
    """The offset and the message are stored together in the channel's document; copying the
    message out may fail, and until someone completes it the message is read from there."""
    a, a_db = await node()
    b, _ = await node()
    copy_failed = a_db.fail(
        lambda coll, method: coll == "messages" and method.startswith("insert"),
        lambda: AutoReconnect("connection reset"),
        times=1,
    )
    stored = await a.append("c", payload("only in the channel document"), None)
    assert (stored.offset, copy_failed.hits) == (1, 1)
    read = await b.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["only in the channel document"]
    clock.advance(a.leftover_s + 1)  # the copy is left over: the next publisher completes it
    await b.append("c", payload("next"), None)
    assert [m.offset for m in (await b.read("c", 1, 10)).messages] == [1, 2]
    copied = await raw(a_db.inner)["messages"].count_documents({"channel": "c"})
    assert copied == 2  # both copied out now


async def test_a_subscription_retries_through_a_step_down(node: Node) -> None:
    """Delivery ended every subscription on a store error, so one routine step-down ended
    every live subscription on every node; ``unavailable`` is retried instead."""
    store, faulty = await node()
    async with serve(store) as served:
        client = await served.client()
        await served.publish("c", "before")
        assert (await client.call("replay:subscribe", {"channel": "c", "from": "beginning"}))["ok"]
        await client.wait_for_offset("c", 1)
        outage = faulty.fail(
            lambda coll, method: coll == "messages" and method == "find",
            lambda: NotPrimaryError("not primary"),
        )
        await served.publish("c", "during")  # the subscription wakes up and cannot read
        await asyncio.wait_for(outage.hit.wait(), 5)
        outage.stop()
        await client.wait_for_offset("c", 2)
        assert [name for name, _ in client.events if name == "replay:unsubscribed"] == []


# --- retention ------------------------------------------------------------------------------


async def test_reading_an_idle_channel_removes_its_expired_prefix(
    node: Node, mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    """``first`` with ``max_age_s`` scanned the whole expired prefix of an idle channel on
    every read: the first read past the age limit now removes it, and later reads start above
    it (RET-3, RET-4)."""
    store, _ = await node()
    await store.set_retention("c", RetentionUpdate(max_age_s=10))
    for i in range(5):
        await store.append("c", payload(i), None)
    clock.advance(60)
    state = await store.state("c")
    assert (state.first, state.head) == (None, 5)
    assert await raw(mongo[1])["messages"].count_documents({"channel": "c"}) == 0


# --- sessions and cursors -----------------------------------------------------------------


async def test_an_ack_racing_a_delete_leaves_no_cursor_to_the_next_session(
    node: Node, clock: FakeClock
) -> None:
    """A racing ack left cursors that a re-registered session inherited (SES-16): node B
    answers an ack of the session after node A deleted it."""
    a, _ = await node()
    b, _ = await node()
    await a.upsert_session(session("h1", clock() + 60_000))
    await a.advance_cursor("s1", "c", "e1", 4)
    assert await a.delete_session("s1") is True
    await b.advance_cursor("s1", "c", "e1", 5)  # in flight when the session was deleted
    assert await a.upsert_session(session("h2", clock() + 60_000)) is True
    assert await a.cursor("s1", "c") is None  # SES-16: a new session, without cursors


async def test_a_delete_that_dies_halfway_leaves_no_cursor_to_the_next_session(
    node: Node, clock: FakeClock
) -> None:
    """A crash between deleting a session and deleting its cursors left cursors that a
    re-registered session inherited (SES-16)."""
    a, a_db = await node()
    b, _ = await node()
    await b.upsert_session(session("h1", clock() + 60_000))
    await b.advance_cursor("s1", "c", "e1", 4)
    gate = a_db.hold(writes(), skip=1)  # whatever a deletion writes after its first write
    dying = asyncio.create_task(a.delete_session("s1"))
    reached = asyncio.create_task(gate.reached.wait())
    await asyncio.wait([dying, reached], return_when=asyncio.FIRST_COMPLETED)
    for task in (dying, reached):  # node A dies here, whatever it had left to do
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await b.upsert_session(session("h2", clock() + 60_000)) is True
    assert await b.cursor("s1", "c") is None


async def test_expired_sessions_are_removed_by_a_ttl_index(
    node: Node, mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    """Sessions and cursors were never removed: ``expires_at`` is an integer, and a TTL index
    needs a date. A session expired for longer than the grace period goes, cursors and all."""
    store, _ = await node()
    sessions = raw(mongo[1])["sessions"]
    info = await sessions.index_information()
    assert [spec for spec in info.values() if spec.get("expireAfterSeconds") == 0]
    await store.upsert_session(session("h1", clock() - 3 * 3_600_000))  # expired 3 h ago
    if is_mongomock(mongo[1]):  # its TTL emulation acts at once; a server's monitor, per minute
        assert await sessions.find_one({"_id": "s1"}) is None


# --- the bus --------------------------------------------------------------------------------


async def test_a_burst_of_bus_events_takes_few_counter_increments(
    mongo: tuple[StoreFactory, Any],
) -> None:
    """The bus incremented one document per publish for the whole cluster; a node's events
    sent while another send is under way now go together, under one number."""
    db = mongo[1]
    sender, receiver = MongoBus(db), MongoBus(db)
    heard: list[BusEvent] = []
    all_heard = asyncio.Event()
    events = [HeadMoved(f"c{i}") for i in range(20)]

    async def record(event: BusEvent) -> None:
        heard.append(event)
        if len(heard) == 2 * len(events):  # the sender's own, and the receiver's
            all_heard.set()

    sender.attach(record)
    receiver.attach(record)
    await sender.start()
    await receiver.start()
    try:
        await asyncio.gather(*(sender.publish(e) for e in events))
        counter = await raw(db)["bus_seq"].find_one({"_id": "bus"})
        assert counter["seq"] <= 5
        await asyncio.wait_for(all_heard.wait(), 5)
        assert sorted(heard, key=str) == sorted(events * 2, key=str)
    finally:
        await sender.stop()
        await receiver.stop()
