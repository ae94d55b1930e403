"""RedisStore specifics on a real ``redis-server``: the durable flag, lost history and new
epochs, atomic offsets, key layout and TTLs, and ``Unavailable`` when Redis is down.

The store contract itself runs on Redis too (``test_store_contract.py``, kind ``redis``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis_server import RedisServer, running_redis

from reference.core.errors import Unavailable
from reference.core.model import Action, Grant, Payload, Retention, Session
from reference.core.payloads import RetentionUpdate, encode_payload
from reference.store import open_store
from reference.store.redis import (
    RedisStore,
    channel_keys,
    idempotency_key,
    session_keys,
    token_key,
)

if TYPE_CHECKING:
    from tests.conftest import FakeClock

DB = 2  # the contract suite uses db 0 of the same server
Opener = Callable[..., Awaitable[RedisStore]]


def payload(value: object) -> Payload:
    return encode_payload(value, 1 << 16)


def session(expires_at: int, sid: str = "s1", token_hash: str = "h1") -> Session:
    grant = Grant("*", frozenset({Action.SUBSCRIBE}))
    return Session(sid, "c1", (grant,), (), token_hash, expires_at, f"i-{token_hash}")


@pytest.fixture
async def opener(redis_server: RedisServer) -> AsyncIterator[Opener]:
    """Open stores on a database of the session's server (empty at first), or on ``url``."""
    opened: list[RedisStore] = []
    admin = redis_server.admin()
    admin.select(DB)
    admin.flushdb()

    async def open_one(url: str | None = None, **kwargs: Any) -> RedisStore:
        store = RedisStore.from_url(url or redis_server.url(DB), **kwargs)
        opened.append(store)
        await store.open()
        return store

    try:
        yield open_one
    finally:
        for store in opened:
            await store.close()
        admin.flushdb()
        admin.close()


@pytest.fixture
def admin(redis_server: RedisServer) -> Any:
    client = redis_server.admin()
    client.select(DB)
    yield client
    client.close()


# --- durable ------------------------------------------------------------------------------


async def test_durable_only_with_aof(tmp_path: Path, opener: Opener) -> None:
    assert (await opener()).durable is False  # the session's server: no AOF
    with running_redis(tmp_path / "aof", aof=True) as server:
        store = await opener(server.url())
        assert (store.durable, store.shared) == (True, True)
        with server.admin() as client:  # allkeys eviction could drop a stream: not durable
            client.config_set("maxmemory", "100mb")
            client.config_set("maxmemory-policy", "allkeys-lru")
        assert (await opener(server.url())).durable is False


async def test_durable_read_from_info_when_config_is_disabled(
    tmp_path: Path, opener: Opener
) -> None:
    no_config = ("--rename-command", "CONFIG", "")
    with running_redis(tmp_path / "aof", aof=True, extra=no_config) as server:
        assert (await opener(server.url())).durable is True
    with running_redis(tmp_path / "plain", aof=False, extra=no_config) as server:
        assert (await opener(server.url())).durable is False


# --- lost history, new epochs -------------------------------------------------------------


async def test_flushall_gives_new_epoch(opener: Opener, admin: Any) -> None:
    store = await opener()
    for i in range(3):
        await store.append("c", payload(i), f"k{i}")
    old = await store.state("c")
    admin.flushall()  # history lost (EPO-3)
    new = await store.state("c")
    assert new.epoch != old.epoch
    assert (new.first, new.head) == (None, 0)
    again = await store.append("c", payload("new"), "k0")  # the old key went with it
    assert (again.offset, again.duplicate, again.epoch) == (1, False, new.epoch)


async def test_restarted_redis_without_persistence_gives_new_epochs(
    tmp_path: Path, opener: Opener
) -> None:
    with running_redis(tmp_path / "r", aof=False) as server:
        store = await opener(server.url())
        before = {ch: (await store.append(ch, payload(ch), None)).epoch for ch in "abc"}
        server.restart()  # SIGKILL, start again: the data is gone (DUR-3)
        for ch, epoch in before.items():
            state = await store.state(ch)  # the same store: its pooled connections were dead
            assert state.epoch != epoch
            assert (state.first, state.head) == (None, 0)


async def test_reloaded_snapshot_of_a_volatile_redis_gives_new_epochs(
    tmp_path: Path, opener: Opener
) -> None:
    with running_redis(tmp_path / "r", aof=False) as server:
        store = await opener(server.url())
        assert store.durable is False
        old = await store.append("c", payload("before"), "k")
        with server.admin() as client:
            client.save()  # an RDB snapshot that a restart loads back
        await store.append("c", payload("after the snapshot"), None)
        server.restart()
        with server.admin() as client:
            assert client.exists(channel_keys("c")[0])  # the stale meta is back
        state = await store.state("c")  # DUR-3: "after a restart, every channel ... new epoch"
        assert state.epoch != old.epoch
        assert (state.first, state.head) == (None, 0)
        fresh = await store.append("c", payload("new"), "k")
        assert (fresh.offset, fresh.duplicate) == (1, False)
        assert [m.data for m in (await store.read("c", 1, 10)).messages] == ["new"]


async def test_aof_redis_keeps_epochs_across_restart(tmp_path: Path, opener: Opener) -> None:
    with running_redis(tmp_path / "r", aof=True) as server:
        store = await opener(server.url())
        first = await store.append("c", payload(1), "k")
        server.restart()  # SIGKILL with appendfsync always: nothing acknowledged is lost
        state = await store.state("c")
        assert (state.epoch, state.head) == (first.epoch, 1)
        assert (await store.append("c", payload(1), "k")).duplicate is True


@pytest.mark.parametrize("lost", ["meta", "stream"])
async def test_no_stale_entries_leak_into_a_new_epoch(
    opener: Opener, admin: Any, lost: str
) -> None:
    store = await opener()
    await store.set_retention("c", RetentionUpdate(max_messages=10))
    for i in range(5):
        await store.append("c", payload(f"old {i}"), f"k{i}")
    old = await store.state("c")
    meta, stream = channel_keys("c")
    admin.delete(meta if lost == "meta" else stream)  # e.g. evicted under memory pressure
    new = await store.state("c")
    assert new.epoch != old.epoch
    assert (new.first, new.head) == (None, 0)
    assert admin.xlen(stream) == 0  # the old entries were deleted with the new epoch
    if lost == "stream":  # the keys outlived the history: they must not outlive the epoch
        assert admin.exists(idempotency_key("c", "k0"))
    results = [await store.append("c", payload(f"new {i}"), f"k{i}") for i in range(2)]
    assert [(r.offset, r.duplicate) for r in results] == [(1, False), (2, False)]  # IDM-9
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["new 0", "new 1"]
    # RET-11: the settings went with the history, as if never set
    assert await store.set_retention("c", RetentionUpdate(max_age_s=None)) == Retention()


# --- atomic offsets -----------------------------------------------------------------------


async def test_fifty_concurrent_appends_through_five_clients(opener: Opener, admin: Any) -> None:
    stores = [await opener() for _ in range(5)]
    results = await asyncio.gather(
        *(stores[i % 5].append("c", payload(i), None) for i in range(50))
    )
    assert sorted(r.offset for r in results) == list(range(1, 51))  # PUB-4
    assert len({r.epoch for r in results}) == 1
    entries = admin.xrange(channel_keys("c")[1])
    assert [e[0] for e in entries] == [f"{n}-0" for n in range(1, 51)]  # explicit ids
    by_offset = {r.offset: r.id for r in results}
    assert all(by_offset[int(e[0][:-2])] == e[1]["id"] for e in entries)


async def test_entries_hold_compact_json_and_retention_trims_the_stream(
    opener: Opener, admin: Any
) -> None:
    store = await opener()
    await store.set_retention("c", RetentionUpdate(max_messages=2))
    for value in ({"a": [1, 2.5]}, "x", 2**70):
        await store.append("c", payload(value), None)
    meta, stream = channel_keys("c")
    entries = admin.xrange(stream)
    assert [e[0] for e in entries] == ["2-0", "3-0"]  # XTRIM MINID
    assert entries[1][1]["data"] == "1180591620717411303424"
    assert admin.hgetall(meta)["max_messages"] == "2"
    assert all("{c}" in key for key in admin.keys("replay:*"))  # one hash tag per channel


# --- TTLs ---------------------------------------------------------------------------------


async def test_idempotency_key_lives_for_the_window(
    opener: Opener, admin: Any, clock: FakeClock
) -> None:
    store = await opener(idempotency_window_s=10, clock=clock)
    result = await store.append("c", payload(1), "k")
    key = idempotency_key("c", "k")
    assert 5_000 < admin.pttl(key) <= 10_000  # PX = the window, to collect it
    offset, expires, epoch = admin.get(key).split(":", 2)  # what decides, on the store clock
    assert (offset, int(expires), epoch) == ("1", clock() + 10_000, result.epoch)
    assert await store.append("c", payload(2), None)
    assert admin.pttl(key) > 5_000  # a keyless append records nothing


async def test_session_keys_expire_after_the_session(
    opener: Opener, admin: Any, clock: FakeClock
) -> None:
    store = await opener(clock=clock)
    expires_at = clock() + 60_000
    await store.upsert_session(session(expires_at))
    await store.advance_cursor("s1", "c", "e1", 3)
    keep_until = expires_at + store.session_grace_ms
    for key in (*session_keys("s1"), token_key("h1")):
        assert admin.pexpiretime(key) == keep_until, key
    assert await store.session_by_token_hash("h1") is not None
    admin.delete(session_keys("s1")[0])  # as if Redis had collected it
    assert await store.session_by_token_hash("h1") is None


async def test_session_hash_layout(opener: Opener, admin: Any, clock: FakeClock) -> None:
    """The hash a session is written as: JSON for grants and auto-subscriptions, decimal text
    for the expiry, which ``UPSERT_SESSION`` and ``ADVANCE_CURSOR`` compare with tonumber."""
    store = await opener(clock=clock)
    expires_at = clock() + 60_000
    await store.upsert_session(session(expires_at))
    assert admin.hgetall(session_keys("s1")[0]) == {
        "client_id": "c1",
        "grants": '[{"channels": "*", "actions": ["subscribe"]}]',
        "subscribe": "[]",
        "token_hash": "h1",
        "expires_at": str(expires_at),
        "incarnation": "i-h1",
    }
    assert await store.session("s1") == session(expires_at)


async def test_stale_token_index_is_not_trusted(opener: Opener, clock: FakeClock) -> None:
    store = await opener(clock=clock)
    await store.upsert_session(session(clock() + 60_000, token_hash="h1"))
    await store.upsert_session(session(clock() + 60_000, token_hash="h2"))
    # An index entry left behind by a crash mid-registration points at the session...
    await store.client.set(token_key("h1"), "s1")
    assert await store.session_by_token_hash("h1") is None  # ...but its hash is not current
    assert await store.session_by_token_hash("h2") is not None


# --- Redis down ---------------------------------------------------------------------------


async def test_unavailable_while_redis_is_down(tmp_path: Path, opener: Opener) -> None:
    with running_redis(tmp_path / "r", aof=False) as server:
        store = await opener(server.url())
        await store.append("c", payload(1), None)
        server.kill()
        calls = [
            store.state("c"),
            store.append("c", payload(2), None),
            store.append("c", payload(2), "k"),
            store.read("c", 1, 10),
            store.set_retention("c", RetentionUpdate(max_messages=1)),
            store.upsert_session(session(store.clock() + 1000)),
            store.session_by_token_hash("h1"),
            store.session("s1"),
            store.delete_session("s1"),
            store.cursor("s1", "c"),
            store.advance_cursor("s1", "c", "e", 1),
        ]
        for call in calls:
            with pytest.raises(Unavailable):
                await call
        server.start()
        assert (await store.state("c")).head == 0  # back, with a new epoch


async def test_a_reset_connection_under_uvloop_is_unavailable() -> None:
    """uvloop raises RuntimeError for a write to a connection the peer reset, and redis-py
    passes it on: that is a lost connection (``unavailable``), not an internal error."""
    from redis_server import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    reset = "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
    tries: list[int] = []

    async def write() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError(reset)
        return "done"

    async def broken() -> str:
        raise RuntimeError("something else")

    try:
        assert await store._guard(write, idempotent=True) == "done"  # tried again, once
        tries.clear()
        with pytest.raises(Unavailable):
            await store._guard(write, idempotent=False)  # an append is never resent
        with pytest.raises(RuntimeError, match="something else"):
            await store._guard(broken, idempotent=True)
    finally:
        await store.close()


async def test_unreachable_at_open() -> None:
    from redis_server import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(Unavailable):
            await store.open()
    finally:
        await store.close()


async def test_out_of_memory_is_unavailable(tmp_path: Path, opener: Opener) -> None:
    with running_redis(tmp_path / "r", aof=False) as server:
        store = await opener(server.url())
        with server.admin() as client:
            client.config_set("maxmemory", "1")  # noeviction: every write is refused
        with pytest.raises(Unavailable):
            await store.append("c", payload(1), None)


# --- open_store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "db", "ssl"),
    [("redis://localhost:1/3", 3, False), ("redis://h:1", 0, False), ("rediss://h:1/1", 1, True)],
)
async def test_open_store_redis(url: str, db: int, ssl: bool, clock: FakeClock) -> None:
    store = open_store(url, clock=clock, idempotency_window_s=60)  # constructed, not connected
    try:
        assert isinstance(store, RedisStore)
        assert (store.shared, store.clock, store.idempotency_window_s) == (True, clock, 60)
        pool = store.client.connection_pool
        assert pool.connection_kwargs.get("db", 0) == db
        assert ("SSL" in pool.connection_class.__name__) is ssl
    finally:
        await store.close()


def test_open_store_without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"pip install 'socketio-replay\[redis\]'"):
        open_store("redis://localhost:1/0")
