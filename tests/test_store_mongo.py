"""MongoStore specifics, on mongomock and (with Docker) a real MongoDB: indexes, publishers
that die after their commit, idempotency claims, lost epochs; and ``open_store`` URLs.

The store contract itself is in ``test_store_contract.py``; races between nodes and failures
of the deployment are in ``test_store_mongo_races.py``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from reference.core.errors import Unavailable
from reference.core.model import Payload, Retention
from reference.core.payloads import RetentionUpdate, encode_payload
from reference.store import MemoryStore, Store, open_store
from reference.store.mongo import MongoStore
from reference.store.mongo_collection import Collection, Database
from reference.store.mongo_log import element

if TYPE_CHECKING:
    from tests.conftest import FakeClock, StoreFactory

WINDOW_MS = 3600 * 1000


def payload(value: object) -> Payload:
    return encode_payload(value, 1 << 16)


def raw(db: Any) -> Any:
    """The database without the test's task-switching wrapper (mongomock) or as is."""
    return getattr(db, "inner", db)


async def open_mongo(mongo: tuple[StoreFactory, Any]) -> tuple[MongoStore, Any]:
    make_store, db = mongo
    store = await make_store()
    assert isinstance(store, MongoStore)
    return store, raw(db)


def claim(
    channel: str, epoch: str, clock: FakeClock, *, age_s: float, offset: int | None = None
) -> dict[str, Any]:
    """An idempotency key document as another (perhaps dead) publisher left it ``age_s`` ago:
    the claim time on the server's clock, the window on the store's."""
    expires_ms = clock() - round(age_s * 1000) + WINDOW_MS
    return {
        "channel": channel,
        "id": "k",
        "epoch": epoch,
        "owner": "someone-else",
        "fence": 0,
        "offset": offset,
        "claimed_at": datetime.now(UTC) - timedelta(seconds=age_s),
        "expires_ms": expires_ms,
        "expires_at": datetime.fromtimestamp(expires_ms / 1000, tz=UTC),
    }


# --- indexes and documents ----------------------------------------------------------------


async def test_indexes_exist_after_open(mongo: tuple[StoreFactory, Any]) -> None:
    _, db = await open_mongo(mongo)

    async def indexes(name: str) -> dict[tuple[str, ...], Any]:
        info = await db[name].index_information()
        return {tuple(k for k, _ in spec["key"]): spec for spec in info.values()}

    messages = await indexes("messages")
    assert messages[("channel", "epoch", "offset")].get("unique") is True
    assert ("channel", "epoch", "id") in messages
    keys = await indexes("idempotency")
    assert keys[("channel", "id")].get("unique") is True
    assert keys[("expires_at",)].get("expireAfterSeconds") == 0
    sessions = await indexes("sessions")
    assert sessions[("token_hash",)].get("unique") is True
    assert sessions[("gone_at",)].get("expireAfterSeconds") == 0  # cursors go with them


async def test_open_is_idempotent(mongo: tuple[StoreFactory, Any]) -> None:
    store, _ = await open_mongo(mongo)
    await store.open()  # a second node, or a restart, opens the same database again


async def test_documents_hold_json_text_and_token_hashes_only(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    await store.append("c", payload({"$key": 2**70}), None)
    doc = await db["messages"].find_one({"channel": "c"})
    assert doc["data"] == '{"$key":1180591620717411303424}'  # MSG-2: BSON-proof
    channel = await db["channels"].find_one({"_id": "c"})
    assert (channel["head"], channel["epoch"]) == (1, (await store.state("c")).epoch)


def test_driver_objects_fit_the_protocols() -> None:
    from mongomock_motor import AsyncMongoMockClient
    from pymongo import AsyncMongoClient

    mock_db: Any = AsyncMongoMockClient()["x"]
    assert isinstance(mock_db, Database)
    assert isinstance(mock_db["c"], Collection)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://localhost:1")
    assert isinstance(client["x"], Database)
    assert isinstance(client["x"]["c"], Collection)


# --- offsets after a crash ----------------------------------------------------------------


async def test_a_publisher_that_dies_after_its_commit_leaves_no_hole(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    for i in range(3):
        await store.append("c", payload(i), None)
    # A publisher committed offset 4 and died before copying its message out.
    ghost = await store.log.commit("c", element("ghost", clock(), '"ghost"', 7, None))
    assert ghost is not None and ghost.offset == 4
    assert await db["messages"].find_one({"channel": "c", "offset": 4}) is None
    state = await store.state("c")
    assert (state.first, state.head) == (1, 4)  # OFF-4
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == [0, 1, 2, "ghost"]  # DUR-1: served from pending
    assert (await store.append("c", payload("after"), None)).offset == 5  # OFF-2
    clock.advance(store.leftover_s + 1)
    assert (await store.append("c", payload("later"), None)).offset == 6
    # The next publisher past the leftover time copied it out, and pending is empty again.
    assert await db["messages"].count_documents({"channel": "c"}) == 6
    assert (await db["channels"].find_one({"_id": "c"}))["pending"] == []
    assert [m.offset for m in (await store.read("c", 1, 10)).messages] == [1, 2, 3, 4, 5, 6]


async def test_a_left_over_message_past_the_age_limit_is_trimmed_not_reused(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    await store.set_retention("c", RetentionUpdate(max_age_s=10))
    await store.append("c", payload(1), None)
    assert await store.log.commit("c", element("ghost", clock(), "0", 1, None)) is not None
    clock.advance(60)
    await store.set_retention("c", RetentionUpdate(max_age_s=10))  # trims everything
    state = await store.state("c")
    assert (state.first, state.head) == (None, 2)
    assert await db["messages"].find_one({"channel": "c"}) is None
    assert (await store.append("c", payload(3), None)).offset == 3  # OFF-3: 2 not reused
    assert await db["messages"].count_documents({"channel": "c"}) == 1  # the ghost stays gone
    assert [m.data for m in (await store.read("c", 1, 10)).messages] == []
    assert [m.data for m in (await store.read("c", 3, 10)).messages] == [3]


async def test_lost_channel_document_gives_new_epoch(mongo: tuple[StoreFactory, Any]) -> None:
    store, db = await open_mongo(mongo)
    await store.set_retention("c", RetentionUpdate(max_messages=10))
    await store.append("c", payload("keyed"), "k")
    for i in range(2):
        await store.append("c", payload(i), None)
    old = await store.state("c")
    await db["channels"].delete_one({"_id": "c"})  # history lost (EPO-3)
    new = await store.state("c")
    assert new.epoch != old.epoch
    assert (new.first, new.head) == (None, 0)
    assert (await store.append("c", payload("new"), None)).offset == 1
    assert [m.data for m in (await store.read("c", 1, 10)).messages] == ["new"]
    assert await db["idempotency"].find_one({"channel": "c", "id": "k"}) is not None
    again = await store.append("c", payload("keyed again"), "k")
    assert (again.offset, again.duplicate) == (2, False)  # IDM-9: the key died with its epoch
    # RET-11: the settings went with the channel's document, as if never set
    assert await store.set_retention("c", RetentionUpdate(max_age_s=None)) == Retention()


# --- idempotency claims -------------------------------------------------------------------


async def test_stale_pending_claim_is_taken_over(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    epoch = (await store.state("c")).epoch
    await db["idempotency"].insert_one(claim("c", epoch, clock, age_s=11))
    result = await store.append("c", payload("mine"), "k")
    assert (result.offset, result.duplicate) == (1, False)
    key = await db["idempotency"].find_one({"channel": "c", "id": "k"})
    assert (key["offset"], key["owner"] != "someone-else") == (1, True)
    assert key["fence"] == (await db["channels"].find_one({"_id": "c"}))["fence"] == 1
    assert (await store.append("c", payload("again"), "k")).duplicate is True


@pytest.mark.parametrize("where", ["pending", "copied"])
async def test_stale_claim_with_committed_message_is_completed(
    mongo: tuple[StoreFactory, Any], clock: FakeClock, where: str
) -> None:
    store, db = await open_mongo(mongo)
    epoch = (await store.state("c")).epoch
    await db["idempotency"].insert_one(claim("c", epoch, clock, age_s=11))
    # The dead publisher had committed its message, but not recorded it (nor, perhaps, copied).
    theirs = element("k", clock() - 11_000, '"theirs"', 8, "someone-else")
    committed = await store.log.commit("c", theirs, epoch=epoch, fence=0)
    assert committed is not None
    if where == "copied":
        await store.log.settle(committed)
    result = await store.append("c", payload("retry"), "k")
    assert (result.offset, result.duplicate) == (1, True)  # IDM-6: stored once
    assert [m.data for m in (await store.read("c", 1, 10)).messages] == ["theirs"]
    assert (await db["idempotency"].find_one({"channel": "c", "id": "k"}))["offset"] == 1


async def test_pending_claim_is_awaited(mongo: tuple[StoreFactory, Any], clock: FakeClock) -> None:
    store, db = await open_mongo(mongo)
    epoch = (await store.state("c")).epoch
    await db["idempotency"].insert_one(claim("c", epoch, clock, age_s=0))
    waiting = asyncio.create_task(store.append("c", payload("second"), "k"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await db["idempotency"].update_one({"channel": "c", "id": "k"}, {"$set": {"offset": 7}})
    result = await waiting
    assert (result.offset, result.duplicate) == (7, True)  # IDM-2


async def test_pending_claim_that_never_completes(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    store.claims.wait_s = 0.05
    epoch = (await store.state("c")).epoch
    await db["idempotency"].insert_one(claim("c", epoch, clock, age_s=0))
    with pytest.raises(Unavailable):
        await store.append("c", payload("x"), "k")
    assert (await store.state("c")).head == 0


async def test_key_from_a_lost_epoch_is_ignored(
    mongo: tuple[StoreFactory, Any], clock: FakeClock
) -> None:
    store, db = await open_mongo(mongo)
    await db["idempotency"].insert_one(claim("c", "old-epoch", clock, age_s=0, offset=5))
    result = await store.append("c", payload("x"), "k")
    assert (result.offset, result.duplicate) == (1, False)


# --- open_store ---------------------------------------------------------------------------


async def test_open_store_memory() -> None:
    store = open_store("memory", idempotency_window_s=60)
    assert isinstance(store, MemoryStore)
    assert store.idempotency_window_s == 60
    assert (store.durable, store.shared) == (False, False)


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("mongodb://localhost:1/chat", "chat"),
        ("mongodb://user:pw@h1:1,h2:2/other?replicaSet=rs0&connect=false", "other"),
        ("mongodb://localhost:1", "replay"),
        ("mongodb://localhost:1/", "replay"),
        ("mongodb://localhost:1/?tls=false", "replay"),
    ],
)
async def test_open_store_mongodb(url: str, database: str, clock: FakeClock) -> None:
    store = open_store(url, clock=clock, idempotency_window_s=60)  # constructed, not connected
    try:
        assert isinstance(store, MongoStore)
        assert store.database_name == database
        assert (store.durable, store.shared) == (False, True)  # decided by open()
        assert (store.clock, store.idempotency_window_s) == (clock, 60)
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["memcached://localhost", "postgres://u:secret@h/db", "", "memroy"])
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="expected one of") as info:
        open_store(url)
    message = str(info.value)
    assert "memory" in message
    assert "mongodb://" in message
    assert "secret" not in message  # a URL's credentials are never echoed


def test_open_store_without_pymongo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymongo", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'socketio-replay\[mongodb\]'"):
        open_store("mongodb://localhost:1/x")


def test_store_is_reexported() -> None:
    assert issubclass(MemoryStore, Store)
    assert issubclass(MongoStore, Store)
