"""The store contract (``reference/store/base.py``): one suite, run on every store kind.

Data stays small (mongomock scans every document on each query). No timing asserts: age and
idempotency-window tests move the fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from reference.core.model import (
    Action,
    AutoSubscription,
    Cursor,
    Grant,
    Payload,
    Retention,
    Session,
)
from reference.core.payloads import RetentionUpdate, encode_payload

if TYPE_CHECKING:
    from reference.store import Store
    from tests.conftest import FakeClock, StoreFactory

WINDOW_S = 3600  # the stores' default idempotency window


def payload(value: Any) -> Payload:
    return encode_payload(value, 1 << 20)


async def fill(store: Store, channel: str, count: int) -> list[int]:
    return [(await store.append(channel, payload(i), None)).offset for i in range(count)]


def session(
    sid: str = "s1", *, token_hash: str = "h1", expires_at: int, client_id: str = "c1"
) -> Session:
    return Session(
        session_id=sid,
        client_id=client_id,
        grants=(Grant("orders:*", frozenset({Action.SUBSCRIBE, Action.HISTORY})),),
        subscribe=(AutoSubscription("orders:17", "beginning"),),
        token_hash=token_hash,
        expires_at=expires_at,
        incarnation=f"incarnation-{token_hash}",  # each registration proposes a new one
    )


# --- channels, offsets, reads -------------------------------------------------------------


async def test_first_touch_gives_epoch_and_empty_state(store: Store) -> None:
    state = await store.state("fresh")  # CHN-3
    assert isinstance(state.epoch, str)
    assert 1 <= len(state.epoch) <= 64  # EPO-1
    assert (state.head, state.first) == (0, None)
    again = await store.state("fresh")
    assert again == state  # CHN-4
    result = await store.append("fresh", payload("x"), None)
    assert result.epoch == state.epoch  # the epoch seen before the first publish stays


async def test_first_touch_by_read_gives_epoch(store: Store) -> None:
    result = await store.read("never", 1, 10)
    assert result.messages == ()
    assert (result.state.head, result.state.first) == (0, None)
    assert (await store.state("never")).epoch == result.state.epoch


async def test_offsets_are_dense_from_one(store: Store) -> None:
    results = [await store.append("c", payload(i), None) for i in range(3)]
    assert [r.offset for r in results] == [1, 2, 3]  # OFF-2
    assert {r.epoch for r in results} == {(await store.state("c")).epoch}
    assert all(r.duplicate is False and r.channel == "c" for r in results)
    state = await store.state("c")
    assert (state.first, state.head) == (1, 3)


async def test_concurrent_appends_get_distinct_dense_offsets(store: Store) -> None:
    results = await asyncio.gather(*(store.append("c", payload(i), None) for i in range(50)))
    assert sorted(r.offset for r in results) == list(range(1, 51))  # PUB-4
    read = await store.read("c", 1, 100)
    assert [m.offset for m in read.messages] == list(range(1, 51))
    by_offset = {r.offset: r.id for r in results}
    assert all(by_offset[m.offset] == m.id for m in read.messages)


async def test_read_returns_consecutive_messages_and_honours_limit(store: Store) -> None:
    await fill(store, "c", 10)
    result = await store.read("c", 3, 4)
    assert [m.offset for m in result.messages] == [3, 4, 5, 6]
    assert [m.data for m in result.messages] == [2, 3, 4, 5]
    assert (result.state.first, result.state.head) == (1, 10)
    tail = await store.read("c", 9, 100)
    assert [m.offset for m in tail.messages] == [9, 10]
    one = await store.read("c", 10, 1)
    assert [m.offset for m in one.messages] == [10]


async def test_read_above_head_is_empty_and_reports_state(store: Store) -> None:
    await fill(store, "c", 3)
    for start in (4, 100):
        result = await store.read("c", start, 10)
        assert result.messages == ()
        assert (result.state.first, result.state.head) == (1, 3)


async def test_read_below_first_after_trimming_is_empty(store: Store) -> None:
    await store.set_retention("c", RetentionUpdate(max_messages=3))
    await fill(store, "c", 10)
    for start in (1, 7):
        result = await store.read("c", start, 10)
        assert result.messages == ()
        assert (result.state.first, result.state.head) == (8, 10)
        assert result.state.first is not None
        assert result.state.first > start
    assert [m.offset for m in (await store.read("c", 8, 10)).messages] == [8, 9, 10]


VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**53 - 1,
    2**70,
    -(2**70),
    1.5,
    1.0,
    -0.0,
    1e300,
    2.220446049250313e-16,
    "",
    "héllo wörld ✓ 漢字 🎉👩‍💻",
    "\u0000 nul and \n newline",
    [],
    {},
    [1, "two", None, [3.25, {"four": 4}]],
    {"$set": 1, "a.b": {"$where": "x", "c.d": [1, {"$in": None}]}, "": "empty key"},
    {"nested": {"deep": {"deeper": {"deepest": ["🦄", 2**64, -2.5]}}}},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
async def test_data_round_trips_exactly(store: Store, value: Any) -> None:
    sent = payload(value)
    result = await store.append("c", sent, None)
    (message,) = (await store.read("c", result.offset, 1)).messages
    # MSG-2; comparing encodings also tells 1 from 1.0 and keeps key order
    assert json.dumps(message.data, separators=(",", ":"), ensure_ascii=False) == sent.encoded
    assert message.data == value
    assert message.size == sent.size
    assert message.wire == {"offset": 1, "id": result.id, "ts": message.ts, "data": message.data}


async def test_message_fields(store: Store, clock: FakeClock) -> None:
    result = await store.append("c", payload({"k": "v"}), "my-id")
    (message,) = (await store.read("c", 1, 1)).messages
    assert (message.offset, message.id, message.ts) == (1, "my-id", clock())  # MSG-3, MSG-4
    assert result.id == "my-id"


async def test_server_assigned_ids_are_unique(store: Store) -> None:
    results = [await store.append("c", payload(i), None) for i in range(30)]
    results += await asyncio.gather(*(store.append("c", payload(i), None) for i in range(20)))
    ids = [r.id for r in results]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)  # MSG-3
    read = await store.read("c", 1, 100)
    assert sorted(m.id for m in read.messages) == sorted(ids)


# --- idempotency --------------------------------------------------------------------------


async def test_duplicate_id_returns_original_offset(store: Store) -> None:
    first = await store.append("c", payload("original"), "k")
    await store.append("c", payload("other"), None)
    again = await store.append("c", payload("different"), "k")
    assert (again.offset, again.duplicate, again.id) == (first.offset, True, "k")  # IDM-6, IDM-7
    assert again.epoch == first.epoch
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["original", "other"]  # nothing stored
    assert read.state.head == 2


async def test_concurrent_same_id_stores_exactly_one(store: Store) -> None:
    results = await asyncio.gather(*(store.append("c", payload(i), "same") for i in range(20)))
    assert {r.offset for r in results} == {1}  # IDM-2
    assert sum(not r.duplicate for r in results) == 1
    read = await store.read("c", 1, 100)
    assert len(read.messages) == 1
    assert read.state.head == 1


async def test_mixed_concurrent_ids(store: Store) -> None:
    keys = [f"k{i % 5}" for i in range(25)]
    random.Random(7).shuffle(keys)
    results = await asyncio.gather(*(store.append("c", payload(k), k) for k in keys))
    offsets = {k: {r.offset for r in results if r.id == k} for k in set(keys)}
    assert all(len(o) == 1 for o in offsets.values())
    assert sorted(o.pop() for o in offsets.values()) == [1, 2, 3, 4, 5]
    assert (await store.state("c")).head == 5


async def test_same_id_on_another_channel_is_new(store: Store) -> None:
    await store.append("a", payload(1), "k")
    await store.append("a", payload(2), None)
    other = await store.append("b", payload(3), "k")
    assert (other.offset, other.duplicate) == (1, False)  # IDM-3


async def test_duplicate_detected_after_retention_removed_original(store: Store) -> None:
    await store.set_retention("c", RetentionUpdate(max_messages=1))
    await store.append("c", payload("original"), "k")
    await fill(store, "c", 2)
    assert (await store.state("c")).first == 3
    again = await store.append("c", payload("retry"), "k")
    assert (again.offset, again.duplicate) == (1, True)  # IDM-5
    assert (await store.state("c")).head == 3


async def test_a_server_assigned_id_is_no_key(store: Store) -> None:
    unkeyed = await store.append("c", payload("server id"), None)
    keyed = await store.append("c", payload("publisher id"), unkeyed.id)
    assert (keyed.offset, keyed.duplicate, keyed.id) == (2, False, unkeyed.id)  # IDM-8
    again = await store.append("c", payload("retry"), unkeyed.id)
    assert (again.offset, again.duplicate) == (2, True)  # now a publisher's key (IDM-6)
    read = await store.read("c", 1, 10)
    assert [m.data for m in read.messages] == ["server id", "publisher id"]


async def test_id_accepted_again_after_window(store: Store, clock: FakeClock) -> None:
    await store.append("c", payload(1), "k")
    clock.advance(WINDOW_S - 1)
    assert (await store.append("c", payload(2), "k")).duplicate is True
    clock.advance(2)
    later = await store.append("c", payload(3), "k")
    assert (later.offset, later.duplicate) == (2, False)
    assert (await store.append("c", payload(4), "k")).offset == 2  # the new key holds


async def test_window_is_configurable(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(idempotency_window_s=10)
    await store.append("c", payload(1), "k")
    clock.advance(9)
    assert (await store.append("c", payload(2), "k")).duplicate is True
    clock.advance(2)
    assert (await store.append("c", payload(3), "k")).duplicate is False


# --- retention ----------------------------------------------------------------------------


async def test_retention_by_count(store: Store) -> None:
    assert await store.set_retention("c", RetentionUpdate(max_messages=5)) == Retention(5, None)
    await fill(store, "c", 3)
    assert (await store.state("c")).first == 1
    await fill(store, "c", 9)
    state = await store.state("c")
    assert (state.first, state.head) == (state.head - 5 + 1, 12)  # RET-12
    read = await store.read("c", 8, 100)
    assert [m.offset for m in read.messages] == [8, 9, 10, 11, 12]


async def test_retention_applies_at_once(store: Store) -> None:
    await fill(store, "c", 10)
    await store.set_retention("c", RetentionUpdate(max_messages=3))
    assert (await store.state("c")).first == 8  # RET-1


async def test_lowering_max_messages_trims_before_the_next_append(store: Store) -> None:
    await store.set_retention("c", RetentionUpdate(max_messages=6))
    await fill(store, "c", 10)
    assert (await store.state("c")).first == 5
    await store.set_retention("c", RetentionUpdate(max_messages=2))
    state = await store.state("c")  # RET-6: at once, and exactly the 2 newest
    assert (state.first, state.head) == (9, 10)
    assert [m.offset for m in (await store.read("c", 9, 10)).messages] == [9, 10]
    assert (await store.read("c", 8, 10)).messages == ()


async def test_max_messages_on_an_empty_channel_leaves_first_null(store: Store) -> None:
    assert await store.set_retention("e", RetentionUpdate(max_messages=3)) == Retention(3, None)
    state = await store.state("e")  # OFF-4: head 0 means first null, whatever the settings
    assert (state.first, state.head) == (None, 0)


async def test_raising_or_removing_max_messages_restores_nothing(store: Store) -> None:
    await store.set_retention("c", RetentionUpdate(max_messages=2))
    await fill(store, "c", 5)
    for update in (RetentionUpdate(max_messages=10), RetentionUpdate(max_messages=None)):
        await store.set_retention("c", update)
        state = await store.state("c")  # RET-8: removal is final
        assert (state.first, state.head) == (4, 5)
        assert (await store.read("c", 1, 10)).messages == ()
    await fill(store, "c", 1)
    assert (await store.state("c")).first == 4


@pytest.mark.parametrize("new_age_s", [None, 100])
async def test_lifting_max_age_restores_nothing_even_unread(
    store: Store, clock: FakeClock, new_age_s: int | None
) -> None:
    await store.set_retention("c", RetentionUpdate(max_age_s=10))
    await fill(store, "c", 3)
    clock.advance(5)
    await fill(store, "c", 1)  # offset 4, younger
    clock.advance(6)  # 1..3 are 11 s old, and nothing read the channel since (RET-3)
    await store.set_retention("c", RetentionUpdate(max_age_s=new_age_s))
    state = await store.state("c")  # RET-8: what the old limit removed stays removed
    assert (state.first, state.head) == (4, 4)
    assert (await store.read("c", 1, 10)).messages == ()
    assert [m.offset for m in (await store.read("c", 4, 10)).messages] == [4]


async def test_expired_messages_do_not_count_as_retained(store: Store, clock: FakeClock) -> None:
    await store.set_retention("c", RetentionUpdate(max_age_s=10))
    await fill(store, "c", 2)
    clock.advance(11)
    state = await store.state("c")  # RET-7: expired, stored or not, is not retained
    assert (state.first, state.head) == (None, 2)
    read = await store.read("c", 1, 10)
    assert (read.messages, read.state.first) == ((), None)
    await fill(store, "c", 1)
    assert (await store.state("c")).first == 3


async def test_retention_by_age(store: Store, clock: FakeClock) -> None:
    await store.set_retention("c", RetentionUpdate(max_age_s=10))
    await fill(store, "c", 3)
    clock.advance(5)
    await fill(store, "c", 2)
    clock.advance(5)
    assert (await store.state("c")).first == 1  # exactly 10 s old: still retained
    clock.advance(1)  # 1-3 are now 11 s old (RET-3), enforced without another append
    state = await store.state("c")
    assert (state.first, state.head) == (4, 5)
    assert (await store.read("c", 1, 10)).messages == ()
    assert [m.offset for m in (await store.read("c", 4, 10)).messages] == [4, 5]
    clock.advance(10)
    state = await store.state("c")
    assert (state.first, state.head) == (None, 5)  # all gone; the head stays (OFF-4)
    assert (await store.read("c", 5, 10)).messages == ()
    assert (await store.append("c", payload("next"), None)).offset == 6  # never reused
    assert (await store.state("c")).first == 6


async def test_partial_retention_update_keeps_other_member(store: Store) -> None:
    both = await store.set_retention("c", RetentionUpdate(max_messages=5))
    assert both == Retention(5, None)
    both = await store.set_retention("c", RetentionUpdate(max_age_s=60))
    assert both == Retention(5, 60)  # RET-1
    assert await store.set_retention("c", RetentionUpdate(max_messages=None)) == Retention(None, 60)
    await fill(store, "c", 8)
    assert (await store.state("c")).first == 1  # the count limit is gone
    assert await store.set_retention("c", RetentionUpdate(max_age_s=None)) == Retention()


async def test_retention_does_not_touch_other_channels(store: Store, clock: FakeClock) -> None:
    await store.set_retention("a", RetentionUpdate(max_messages=2, max_age_s=5))
    await fill(store, "a", 5)
    await fill(store, "b", 5)
    clock.advance(60)
    assert (await store.state("a")).first is None
    state_b = await store.state("b")
    assert (state_b.first, state_b.head) == (1, 5)  # RET-5
    assert await store.set_retention("b", RetentionUpdate(max_age_s=None)) == Retention()


# --- sessions -----------------------------------------------------------------------------


async def test_session_upsert_created_then_replaced(store: Store, clock: FakeClock) -> None:
    expires = clock() + 3_600_000
    original = session(expires_at=expires)
    assert await store.upsert_session(original) is True  # SES-1
    assert await store.session("s1") == original
    assert await store.session_by_token_hash("h1") == original
    await store.advance_cursor("s1", "orders:17", "e1", 4)

    replacement = Session(
        session_id="s1",
        client_id="c1",
        grants=(Grant("chat:*", frozenset({Action.PUBLISH})),),
        subscribe=(AutoSubscription("chat:1", 3, allow_truncation=True),),
        token_hash="h2",
        expires_at=expires + 60_000,
        incarnation="proposed-by-the-update",
    )
    assert await store.upsert_session(replacement) is False  # SES-2
    # The same session, updated: it keeps the incarnation it was created with.
    stored = replace(replacement, incarnation=original.incarnation)
    assert await store.session("s1") == stored
    assert await store.session_by_token_hash("h2") == stored
    assert await store.session_by_token_hash("h1") is None  # SES-4
    assert await store.cursor("s1", "orders:17") == Cursor("e1", 4)  # ACK-6


async def test_reregistration_may_change_the_client_id(store: Store, clock: FakeClock) -> None:
    await store.upsert_session(session(expires_at=clock() + 1000, client_id="c1"))
    await store.advance_cursor("s1", "orders:17", "e1", 4)
    moved = session(token_hash="h2", expires_at=clock() + 2000, client_id="c2")
    assert await store.upsert_session(moved) is False  # SES-18: the same session, no error
    stored = await store.session("s1")
    assert stored is not None and stored.client_id == "c2"
    assert stored.incarnation == "incarnation-h1"
    assert await store.cursor("s1", "orders:17") == Cursor("e1", 4)


async def test_concurrent_upserts_create_one_session(store: Store, clock: FakeClock) -> None:
    sessions = [session(token_hash=f"h{i}", expires_at=clock() + 1000) for i in range(10)]
    created = await asyncio.gather(*(store.upsert_session(s) for s in sessions))
    assert sum(created) == 1  # SES-3
    winner = sessions[created.index(True)]
    stored = await store.session("s1")
    assert stored is not None and stored.incarnation == winner.incarnation


async def test_a_session_deleted_and_registered_again_is_a_new_incarnation(
    store: Store, clock: FakeClock
) -> None:
    await store.upsert_session(session(expires_at=clock() + 1000))
    assert await store.delete_session("s1")
    assert await store.upsert_session(session(token_hash="h2", expires_at=clock() + 1000))
    again = await store.session("s1")
    assert again is not None and again.incarnation == "incarnation-h2"  # SES-16


async def test_expired_session_is_replaced_as_new(store: Store, clock: FakeClock) -> None:
    await store.upsert_session(session(expires_at=clock() + 1000))
    await store.advance_cursor("s1", "orders:17", "e1", 4)
    clock.advance(2)
    expired = await store.session("s1")
    assert expired is not None
    assert not expired.is_live(clock())  # still there, but expired
    assert await store.session_by_token_hash("h1") == expired
    assert await store.upsert_session(session(token_hash="h2", expires_at=clock() + 1000))
    assert await store.cursor("s1", "orders:17") is None
    assert await store.session_by_token_hash("h1") is None
    renewed = await store.session("s1")
    assert renewed is not None and renewed.incarnation == "incarnation-h2"  # SES-1: a new one


async def test_delete_session(store: Store, clock: FakeClock) -> None:
    await store.upsert_session(session(expires_at=clock() + 1000))
    await store.advance_cursor("s1", "a", "e1", 1)
    await store.advance_cursor("s1", "b.c", "e1", 2)
    await store.advance_cursor("other", "a", "e1", 3)
    assert await store.delete_session("s1") is True  # SES-13
    assert await store.session("s1") is None
    assert await store.session_by_token_hash("h1") is None  # SES-23
    assert await store.cursor("s1", "a") is None
    assert await store.cursor("s1", "b.c") is None
    assert await store.cursor("other", "a") == Cursor("e1", 3)  # SES-12
    assert await store.delete_session("s1") is False
    assert await store.delete_session("never") is False
    assert await store.upsert_session(session(expires_at=clock() + 1000)) is True  # SES-16
    assert await store.cursor("s1", "a") is None


async def test_delete_expired_session_reports_false(store: Store, clock: FakeClock) -> None:
    await store.upsert_session(session(expires_at=clock() + 1000))
    clock.advance(1)
    assert await store.delete_session("s1") is False
    assert await store.session("s1") is None


# --- cursors ------------------------------------------------------------------------------


async def test_cursor_advances_by_max_within_epoch(store: Store) -> None:
    assert await store.cursor("s1", "c") is None
    assert await store.advance_cursor("s1", "c", "e1", 5) == Cursor("e1", 5)
    assert await store.advance_cursor("s1", "c", "e1", 3) == Cursor("e1", 5)  # ACK-4
    assert await store.advance_cursor("s1", "c", "e1", 7) == Cursor("e1", 7)
    assert await store.advance_cursor("s1", "c", "e2", 2) == Cursor("e2", 2)  # ACK-7
    assert await store.cursor("s1", "c") == Cursor("e2", 2)
    assert await store.cursor("s1", "d") is None
    assert await store.cursor("s2", "c") is None


async def test_racing_acks_keep_the_max(store: Store) -> None:
    offsets = list(range(1, 21))
    random.Random(3).shuffle(offsets)
    results = await asyncio.gather(*(store.advance_cursor("s1", "c", "e1", o) for o in offsets))
    assert await store.cursor("s1", "c") == Cursor("e1", 20)
    assert all(r.epoch == "e1" and r.offset >= o for r, o in zip(results, offsets, strict=True))


# --- sharing ------------------------------------------------------------------------------


async def test_shared_means_one_history(make_store: StoreFactory, clock: FakeClock) -> None:
    one, two = await make_store(), await make_store()
    assert one.shared == two.shared
    published = await one.append("c", payload("hi"), "k")
    await one.upsert_session(session(expires_at=clock() + 1000))
    if one.shared:  # CLU-1: another node sees the same channel, keys and sessions
        state = await two.state("c")
        assert (state.epoch, state.head) == (published.epoch, 1)
        assert (await two.append("c", payload("again"), "k")).duplicate is True
        assert (await two.append("c", payload("next"), None)).offset == 2
        assert (await one.state("c")).head == 2
        assert await two.session("s1") is not None
    else:  # two in-process stores are two servers: new epochs, nothing shared (DUR-3)
        state = await two.state("c")
        assert state.epoch != published.epoch
        assert (state.head, state.first) == (0, None)
        assert await two.session("s1") is None
