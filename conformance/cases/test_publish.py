"""Client publish (spec §6.4, feature `client-publish`) and idempotent publishing (§10.8,
feature `idempotency`), through the backend route (§4.5) and `replay:publish` alike."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from conformance import (
    Target,
    case,
    expect,
    expect_duplicate_of,
    expect_error,
    expect_offsets,
    expect_ok,
    expect_status,
    fail,
    grant,
)

# JSON values a client may publish (MSG-2 asks for them back as they were).
VALUES: list[object] = [
    None,
    0,
    -1.5,
    "",
    "héllo \u2603 \U0001f600",
    [1, [2, [3]]],
    {"nested": {"list": [True, False, None], "n": 9007199254740991}},
]


def _message_id() -> str:
    return f"conformance-{secrets.token_hex(8)}"


# --- client publish (§6.4) ----------------------------------------------------------------------


@case("PUB-5")
async def test_publish_without_the_publish_grant_stores_nothing(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "subscribe", "history")])
    expect_error(await client.publish(channel, {"n": "x"}), "forbidden", clause="PUB-5")
    expect_error(
        await client.publish(channel, {"n": "y"}, id=_message_id()), "forbidden", clause="PUB-5"
    )
    after = await target.backend.publish(channel, {"n": 2})
    expect(
        after.get("offset") == 3,
        clause="PUB-5",
        expected="offset 3 for the next publish: the forbidden ones stored nothing",
        received=after,
        channel=channel,
    )


@case("PUB-6", "MSG-2", "MSG-3")
async def test_client_publish_stores_like_a_backend_publish(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "publish")])
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    first = await target.backend.publish(channel, "backend")
    sent: list[tuple[object, str | None]] = []
    replies: list[dict[str, Any]] = []
    for n, value in enumerate(VALUES):
        given = _message_id() if n % 2 else None  # with and without an id
        reply = expect_ok(await client.publish(channel, value, id=given), clause="PUB-6")
        sent.append((value, given))
        replies.append(reply)
    last = await target.backend.publish(channel, "backend again")
    expected_offsets = list(range(2, len(VALUES) + 2))
    for reply, offset, (_, given) in zip(replies, expected_offsets, sent, strict=True):
        expect(
            reply.get("channel") == channel
            and reply.get("offset") == offset
            and reply.get("epoch") == first["epoch"]
            and reply.get("duplicate") is False
            and (given is None or reply.get("id") == given),
            clause="PUB-6",
            expected=f"channel, offset {offset}, epoch {first['epoch']!r}, the id "
            f"{given!r} (or a server id), duplicate false",
            received=reply,
            channel=channel,
        )
    expect(
        last.get("offset") == len(VALUES) + 2,
        clause="PUB-6",
        expected=f"the backend's next offset {len(VALUES) + 2} (one order for both routes)",
        received=last,
    )
    await reader.wait_for_offset(channel, len(VALUES) + 2, clause="PUB-6")
    delivered = {m["offset"]: m for m in reader.messages(channel)}
    ids = [str(m.get("id")) for m in delivered.values()]
    expect(
        len(set(ids)) == len(ids),
        clause="MSG-3",
        expected="a distinct id per message",
        received=ids,
    )
    for reply, (value, _) in zip(replies, sent, strict=True):
        message = delivered.get(reply["offset"], {})
        expect(
            message.get("data") == value and message.get("id") == reply.get("id"),
            clause="MSG-2",
            expected=f"offset {reply['offset']}: data {value!r}, id {reply['id']!r}",
            received=message,
            channel=channel,
        )


@case("PUB-6")
async def test_concurrent_client_and_backend_publishes_are_dense(target: Target) -> None:
    channel = target.channel()
    clients = [await target.client(grants=[grant(channel, "publish")]) for _ in range(3)]
    answers = await asyncio.gather(
        *(
            c.publish(channel, {"client": i, "n": n})
            for i, c in enumerate(clients)
            for n in range(10)
        ),
        target.backend.publish_concurrently(channel, 10),
    )
    *replies, backend_offsets = answers
    offsets = [expect_ok(r, clause="PUB-6")["offset"] for r in replies] + list(backend_offsets)
    expect(
        sorted(offsets) == list(range(1, 41)),
        clause="PUB-6",
        expected="40 distinct, dense offsets 1..40 (PUB-4)",
        received=sorted(offsets),
        channel=channel,
    )


@case("PUB-6", "LIM-4", "LIM-5")
async def test_client_publish_enforces_max_payload_bytes(target: Target) -> None:
    limit = target.limits["max_payload_bytes"]
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "publish")])
    fits = "x" * (limit - 2)  # a JSON string encodes as its characters plus two quotes
    reply = expect_ok(await client.publish(channel, fits), clause="PUB-6")
    expect(reply.get("offset") == 1, clause="PUB-6", expected="offset 1", received=reply)
    expect_error(await client.publish(channel, fits + "x"), "payload_too_large", clause="PUB-6")
    after = await target.backend.publish(channel, {"n": 1})
    expect(after.get("offset") == 2, clause="PUB-6", expected="offset 2", received=after)


@case("PUB-7")
async def test_publish_needs_no_subscription(target: Target) -> None:
    channel = target.channel()
    publisher = await target.client(grants=[grant(channel, "publish")])
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="latest"))
    reply = expect_ok(await publisher.publish(channel, {"n": 0}), clause="PUB-7")
    expect(reply.get("offset") == 1, clause="PUB-7", expected="offset 1", received=reply)
    await reader.wait_for_offset(channel, 1, clause="PUB-7")


@case("PUB-7")
async def test_a_subscribed_publisher_receives_its_own_message(target: Target) -> None:
    channel = target.channel()
    publisher = await target.client(grants=[grant(channel, "subscribe", "publish")])
    other = await target.client(grants=[grant(channel, "subscribe")])
    for client in (publisher, other):
        expect_ok(await client.subscribe(channel, from_="latest"))
    for n in range(3):
        expect_ok(await publisher.publish(channel, {"n": n}))
    for client in (publisher, other):
        await client.wait_for_offset(channel, 3, clause="PUB-7")
        expect_offsets(client.offsets(channel), [1, 2, 3], clause="PUB-7", channel=channel)
    mine = [m.get("data") for m in publisher.messages(channel)]
    expect(
        mine == [{"n": 0}, {"n": 1}, {"n": 2}],
        clause="PUB-7",
        expected="its own three messages, as published",
        received=mine,
    )


# --- idempotency (§10.8) ------------------------------------------------------------------------


def _expect_reply_of_original(
    answer: object, original: dict[str, Any], *, channel: str, what: str
) -> None:
    """IDM-7: a repeat is answered with the stored message's channel, offset, epoch and id."""
    members = ("channel", "offset", "epoch", "id")
    wanted = {key: original.get(key) for key in members}
    got = {key: answer.get(key) for key in members} if isinstance(answer, dict) else answer
    expect(
        isinstance(answer, dict) and answer.get("duplicate") is True and got == wanted,
        clause="IDM-7",
        expected=f"{what}: duplicate true with the original's {wanted}",
        received=answer,
        channel=channel,
    )


@case("IDM-6", "IDM-7")
async def test_backend_duplicate_answers_the_original(target: Target) -> None:
    channel = target.channel()
    message_id = _message_id()
    original = expect_status(
        await target.backend.publish_raw(channel, {"data": {"v": 1}, "id": message_id}),
        201,
        clause="PUB-1",
    )
    # The same id again, with the same data and then with other data: a repeat either way.
    for data in ({"v": 1}, {"v": 2}):
        again = expect_status(
            await target.backend.publish_raw(channel, {"data": data, "id": message_id}),
            200,
            clause="IDM-7",
        )
        _expect_reply_of_original(again, original, channel=channel, what=f"data {data}")
    # Nothing was stored: the next message gets offset 2, and a reader sees the original
    # unchanged at offset 1.
    after = await target.backend.publish(channel, {"v": 3})
    expect(after.get("offset") == 2, clause="IDM-6", expected="offset 2", received=after)
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    await reader.wait_for_offset(channel, 2, clause="IDM-6")
    first = reader.messages(channel)[0]
    expect(
        first.get("data") == {"v": 1} and first.get("id") == message_id,
        clause="IDM-6",
        expected=f"offset 1 is the original ({message_id!r}, data {{'v': 1}})",
        received=first,
    )


@case("IDM-6", "IDM-7", "PUB-6")
async def test_client_duplicate_answers_the_original(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "publish")])
    message_id = _message_id()
    await target.backend.publish(channel, {"v": 0})
    original = expect_ok(await client.publish(channel, {"v": 1}, id=message_id))
    expect(
        original.get("duplicate") is False,
        clause="PUB-6",
        expected="duplicate false",
        received=original,
    )
    for data in ({"v": 1}, {"v": "other"}):
        again = expect_ok(await client.publish(channel, data, id=message_id), clause="IDM-7")
        _expect_reply_of_original(again, original, channel=channel, what=f"data {data}")
    after = await target.backend.publish(channel, {"v": 2})
    expect(after.get("offset") == 3, clause="IDM-6", expected="offset 3", received=after)


@case("IDM-2")
async def test_concurrent_publishes_of_one_id_store_one_message(target: Target) -> None:
    channel = target.channel()
    message_id = _message_id()
    await target.backend.publish(channel, {"n": "before"})
    answers = await asyncio.gather(
        *(
            target.backend.publish_raw(channel, {"data": {"n": n}, "id": message_id})
            for n in range(20)
        )
    )
    statuses = sorted(status for status, _ in answers)
    expect(
        statuses == [200] * 19 + [201],
        clause="IDM-2",
        expected="one 201 (stored) and nineteen 200 (duplicates)",
        received=statuses,
        channel=channel,
    )
    offsets = {body.get("offset") for _, body in answers if isinstance(body, dict)}
    expect(
        offsets == {2},
        clause="IDM-2",
        expected="every answer carries the one stored message's offset, 2",
        received=sorted(offsets, key=str),
        channel=channel,
    )
    after = await target.backend.publish(channel, {"n": "after"})
    expect(
        after.get("offset") == 3,
        clause="IDM-2",
        expected="offset 3 next: exactly one message was stored",
        received=after,
        channel=channel,
    )


@case("IDM-2", "IDM-4", feature="client-publish")
async def test_concurrent_backend_and_client_publishes_of_one_id(target: Target) -> None:
    channel = target.channel()
    message_id = _message_id()
    clients = [await target.client(grants=[grant(channel, "publish")]) for _ in range(2)]
    answers = await asyncio.gather(
        *(target.backend.publish(channel, {"n": n}, id=message_id) for n in range(10)),
        *(c.publish(channel, {"n": n}, id=message_id) for c in clients for n in range(5)),
    )
    offsets = [a.get("offset") for a in answers]
    stored = [a for a in answers if a.get("duplicate") is False]
    expect(
        set(offsets) == {1} and len(stored) == 1,
        clause="IDM-2",
        expected="one message stored (one duplicate false), every answer with offset 1",
        received=f"offsets {offsets}, {len(stored)} not duplicate",
        channel=channel,
    )
    after = await target.backend.publish(channel, {"n": "after"})
    expect(after.get("offset") == 2, clause="IDM-2", expected="offset 2", received=after)


@case("IDM-3")
async def test_ids_are_scoped_to_a_channel(target: Target) -> None:
    first, second = target.channel("first"), target.channel("second")
    message_id = _message_id()
    for channel in (first, second):
        status, body = await target.backend.publish_raw(channel, {"data": 1, "id": message_id})
        expect(
            status == 201 and isinstance(body, dict) and body.get("duplicate") is False,
            clause="IDM-3",
            expected=f"HTTP 201, duplicate false on {channel} (another channel's id)",
            received=f"HTTP {status} {body}",
            channel=channel,
        )
    # Each channel still knows its own: a third publish on either is a duplicate.
    again = await target.backend.publish(second, 1, id=message_id)
    expect(again.get("duplicate") is True, clause="IDM-3", expected="duplicate", received=again)


@case("IDM-4", feature="client-publish")
async def test_backend_and_client_share_one_key_space(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "publish")])
    backend_first, client_first = _message_id(), _message_id()
    original = await target.backend.publish(channel, {"v": "b"}, id=backend_first)
    reply = expect_ok(await client.publish(channel, {"v": "b"}, id=backend_first), clause="IDM-4")
    expect_duplicate_of(
        reply, original, clause="IDM-4", channel=channel, what="client publish of the backend's id"
    )
    mine = expect_ok(await client.publish(channel, {"v": "c"}, id=client_first))
    body = expect_status(
        await target.backend.publish_raw(channel, {"data": {"v": "c"}, "id": client_first}),
        200,
        clause="IDM-4",
        channel=channel,
    )
    expect_duplicate_of(
        body, mine, clause="IDM-4", channel=channel, what="backend publish of the client's id"
    )


@case("IDM-5", feature="retention")
async def test_duplicate_recognised_after_retention_removed_the_original(target: Target) -> None:
    channel = target.channel()
    message_id = _message_id()
    await target.backend.set_retention(channel, max_messages=2)
    original = await target.backend.publish(channel, {"v": "original"}, id=message_id)
    await target.backend.publish_many(channel, 3)  # offsets 2..4; retained: 3, 4
    reader = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await reader.subscribe(channel, from_="beginning"))
    expect(
        reply.get("from") == 3,
        clause="IDM-5",
        expected="the original (offset 1) removed by retention: beginning is 3",
        received=reply,
    )
    again = expect_status(
        await target.backend.publish_raw(channel, {"data": {"v": "again"}, "id": message_id}),
        200,
        clause="IDM-5",
        channel=channel,
    )
    expect_duplicate_of(again, original, clause="IDM-5", channel=channel)
    after = await target.backend.publish(channel, {"v": "after"})
    expect(after.get("offset") == 5, clause="IDM-5", expected="offset 5", received=after)
    await reader.wait_for_offset(channel, 5, clause="IDM-5")
    expect_offsets(reader.offsets(channel), [3, 4, 5], clause="IDM-5", channel=channel)


@case("IDM-8", "IDM-6")
async def test_a_server_assigned_id_is_no_idempotency_key(target: Target) -> None:
    channel = target.channel()
    unkeyed = await target.backend.publish(channel, {"v": "no id"})
    server_id = unkeyed.get("id")
    if not isinstance(server_id, str) or not server_id:
        fail("PUB-1", "a server-assigned id in the publish answer", unkeyed, channel=channel)
    # The server's id given back by a publisher: no publisher gave it before, so a new message.
    status, keyed = await target.backend.publish_raw(channel, {"data": {"v": 2}, "id": server_id})
    expect(
        status == 201
        and isinstance(keyed, dict)
        and keyed.get("duplicate") is False
        and keyed.get("offset") == unkeyed["offset"] + 1,
        clause="IDM-8",
        expected=f"HTTP 201, duplicate false at offset {unkeyed['offset'] + 1}: the id "
        f"{server_id!r} was assigned by the server, not given by a publisher",
        received=f"HTTP {status} {keyed}",
        channel=channel,
    )
    # From now on it is a publisher's key like any other.
    again = await target.backend.publish(channel, {"v": 3}, id=server_id)
    expect_duplicate_of(again, keyed, clause="IDM-6", channel=channel, what="the key given again")


@case("IDM-9", timeout=60)
async def test_a_key_does_not_outlive_its_epoch(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    message_id = _message_id()
    before = await target.backend.publish(channel, {"v": "before"}, id=message_id)
    await target.restart()
    probe = await target.backend.publish(channel, {"v": "probe"})
    if probe.get("epoch") == before.get("epoch"):
        pytest.skip("the epoch did not change across the restart (IDM-6 still binds the key)")
    status, body = await target.backend.publish_raw(
        channel, {"data": {"v": "again"}, "id": message_id}
    )
    expect(
        status == 201
        and isinstance(body, dict)
        and body.get("duplicate") is False
        and body.get("epoch") == probe.get("epoch")
        and body.get("offset") == probe["offset"] + 1,
        clause="IDM-9",
        expected=f"HTTP 201, duplicate false at offset {probe['offset'] + 1} of the new epoch "
        f"{probe.get('epoch')!r}: the key {message_id!r} died with epoch {before.get('epoch')!r}",
        received=f"HTTP {status} {body}",
        channel=channel,
    )
