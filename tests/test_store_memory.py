"""MemoryStore specifics: large reads, prefix compaction, per-instance epochs, key expiry.

The store contract itself is in ``test_store_contract.py``. No timing asserts here either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reference.core.model import Payload
from reference.core.payloads import RetentionUpdate, encode_payload
from reference.store import MemoryStore, open_store

if TYPE_CHECKING:
    from tests.conftest import FakeClock

WINDOW_S = 3600


def payload(value: object) -> Payload:
    return encode_payload(value, 1 << 16)


async def test_reads_100k_messages_in_order(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for i in range(100_000):
        await store.append("big", payload(i), None)
    seen: list[int] = []
    start = 1
    while True:
        result = await store.read("big", start, 500)
        if not result.messages:
            break
        assert len(result.messages) <= 500
        seen.extend(m.offset for m in result.messages)
        assert [m.data for m in result.messages] == [m.offset - 1 for m in result.messages]
        start = result.messages[-1].offset + 1
    assert seen == list(range(1, 100_001))
    assert (result.state.first, result.state.head) == (1, 100_000)


async def test_compaction_after_heavy_trimming_keeps_offsets(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    await store.set_retention("c", RetentionUpdate(max_messages=10))
    for i in range(10_000):
        await store.append("c", payload(i), None)
        if i % 997 == 0:  # check mid-way, right around compactions too
            state = await store.state("c")
            assert state.first == max(1, i + 1 - 10 + 1)
    ch = store._channels["c"]  # white-box: the dead prefix really was dropped
    assert len(ch.messages) <= 2 * 10 + 1
    result = await store.read("c", 9_991, 100)
    assert [m.offset for m in result.messages] == list(range(9_991, 10_001))
    assert [m.data for m in result.messages] == list(range(9_990, 10_000))
    assert (await store.read("c", 9_990, 100)).messages == ()


async def test_compaction_after_age_trimming(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    await store.set_retention("c", RetentionUpdate(max_age_s=1))
    for i in range(1_000):
        await store.append("c", payload(i), None)
        clock.advance(ms=100)
    state = await store.state("c")
    assert state.head == 1_000
    assert state.first is not None
    assert 985 <= state.first <= 992  # the last second or so
    assert len(store._channels["c"].messages) < 100
    result = await store.read("c", state.first, 100)
    assert [m.offset for m in result.messages] == list(range(state.first, 1_001))
    await store.set_retention("c", RetentionUpdate(max_age_s=None))
    clock.advance(3600)
    assert (await store.state("c")).first == state.first


async def test_epochs_differ_across_instances(clock: FakeClock) -> None:
    stores = [MemoryStore(clock=clock), MemoryStore(clock=clock), open_store("memory")]
    for channel in ("a", "b"):
        epochs = {(await s.state(channel)).epoch for s in stores}
        assert len(epochs) == len(stores)  # DUR-3, EPO-4
    one = stores[0]
    assert (await one.state("a")).epoch != (await one.state("b")).epoch


async def test_ts_never_decreases(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    await store.append("c", payload(1), None)
    clock.advance(-5)  # the wall clock stepped back
    await store.append("c", payload(2), None)
    first, second = (await store.read("c", 1, 2)).messages
    assert second.ts >= first.ts  # MSG-5


async def test_expired_keys_are_forgotten(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock, idempotency_window_s=WINDOW_S)
    for i in range(100):
        await store.append("c", payload(i), f"k{i}")
    clock.advance(WINDOW_S)
    await store.append("c", payload("new"), "fresh")
    assert set(store._channels["c"].ids) == {"fresh"}  # white-box: memory stays bounded


async def test_key_reused_after_expiry_survives_old_expiry_entry(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock, idempotency_window_s=WINDOW_S)
    await store.append("c", payload(1), "k")
    clock.advance(WINDOW_S + 1)
    assert (await store.append("c", payload(2), "k")).offset == 2
    await store.append("c", payload(3), "other")  # sweeps the first "k" entry
    again = await store.append("c", payload(4), "k")
    assert (again.offset, again.duplicate) == (2, True)


async def test_server_ids_unique_across_instances(clock: FakeClock) -> None:
    one, two = MemoryStore(clock=clock), MemoryStore(clock=clock)
    a = await one.append("c", payload(1), None)
    b = await two.append("c", payload(1), None)
    assert a.id != b.id


async def test_expired_sessions_are_forgotten() -> None:
    """A long-running embedded server must not keep every session it ever registered."""
    from reference.core.model import Session

    now = [1_000_000]
    store = MemoryStore(clock=lambda: now[0])

    def session(session_id: str, expires_at: int) -> Session:
        token_hash = f"hash-{session_id}-{expires_at}"
        return Session(session_id, "c", (), (), token_hash, expires_at, token_hash)

    await store.upsert_session(session("old", 1_000_500))
    await store.upsert_session(session("renewed", 1_000_500))
    await store.upsert_session(session("renewed", 1_005_000))  # re-registered: stays
    await store.advance_cursor("old", "c", "e", 3)
    now[0] = 1_001_000
    await store.upsert_session(session("new", 1_009_000))
    assert await store.session("old") is None
    assert await store.cursor("old", "c") is None
    assert await store.session_by_token_hash("hash-old-1000500") is None
    assert (await store.session("renewed")) is not None
    assert len(store._sessions) == 2
