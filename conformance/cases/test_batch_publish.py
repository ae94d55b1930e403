"""Batch publish (spec §4.8, feature `batch-publish`): many messages to one channel in one
request, atomically, in order, with idempotency per entry."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from conformance import Target, case, expect, expect_offsets, expect_ok, expect_status, grant
from conformance.protocol import batches_path

# Entries of every JSON kind, with and without an id (BAT-4 asks for them back as they were).
VALUES: list[object] = [None, 0, -1.5, "héllo \u2603 \U0001f600", [1, [2]], {"a": {"b": True}}]


def _id() -> str:
    return f"conformance-{secrets.token_hex(8)}"


async def _raw(target: Target, channel: str, body: object = None, raw: bytes | None = None) -> Any:
    """The batch route's ``(status, body)`` for ``body`` as JSON, or ``raw`` bytes as JSON."""
    if raw is not None:
        return await target.backend.request(
            "POST", batches_path(channel), raw=raw, channel=channel,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    return await target.backend.request("POST", batches_path(channel), body=body, channel=channel)


async def _next_offset(target: Target, channel: str, clause: str, expected: int) -> None:
    """A single publish lands at ``expected``: what failed before it stored nothing."""
    after = await target.backend.publish(channel, "probe")
    expect(
        after.get("offset") == expected,
        clause=clause,
        expected=f"the next publish at offset {expected}: the refused batch stored nothing",
        received=after,
        channel=channel,
    )


def _expect_index(body: Any, index: int, clause: str, why: str) -> None:
    """The error ``body`` names entry ``index`` in ``details.index`` (BAT-5, BAT-7)."""
    details = body["error"].get("details") or {}
    expect(
        details.get("index") == index, clause=clause, expected=f"details.index {index}: {why}",
        received=body,
    )  # fmt: skip


def _offsets(answer: Any, clause: str, channel: str, count: int) -> list[int]:
    results = answer.get("results") if isinstance(answer, dict) else None
    expect(
        isinstance(results, list) and len(results) == count,
        clause=clause,
        expected=f"{count} results, one per entry",
        received=answer,
        channel=channel,
    )
    assert isinstance(results, list)
    return [int(r["offset"]) for r in results]


@case("INF-7")
async def test_info_states_the_batch_limits(target: Target) -> None:
    limits = target.limits
    single = 6 * limits.get("max_payload_bytes", 0) + 16384
    size = limits.get("max_batch_publish_bytes", 0)
    expect(
        limits.get("max_batch_publish", 0) >= 1000 and size >= max(1 << 20, single),
        clause="INF-7",
        expected=f"max_batch_publish >= 1000, max_batch_publish_bytes >= {max(1 << 20, single)}",
        received=limits,
    )


@case("BAT-1", "BAT-2", "BAT-4", "BAT-12")
async def test_a_batch_is_stored_in_order_after_the_head(target: Target) -> None:
    channel = target.channel()
    reader = await target.client(grants=[grant(channel, "subscribe")])
    await target.backend.publish_many(channel, 2)
    entries = [{"data": v} if n % 2 else {"data": v, "id": _id()} for n, v in enumerate(VALUES)]
    answer = await target.backend.publish_batch(channel, entries)
    offsets = _offsets(answer, "BAT-1", channel, len(VALUES))
    expected = list(range(3, 3 + len(VALUES)))
    expect_offsets(offsets, expected, clause="BAT-2", channel=channel)
    epoch = await target.epoch(channel)
    results = answer["results"]
    expect(
        answer.get("channel") == channel
        and answer.get("epoch") == epoch
        and all(r.get("duplicate") is False for r in results)
        and all(r.get("id") == e["id"] for r, e in zip(results, entries, strict=True) if "id" in e),
        clause="BAT-1",
        expected=f"channel {channel!r}, epoch {epoch!r}, the given ids, duplicate false",
        received=answer,
        channel=channel,
    )
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    await reader.wait_for_offset(channel, expected[-1], clause="BAT-12")
    delivered = {m["offset"]: m for m in reader.messages(channel)}
    for result, entry in zip(results, entries, strict=True):
        message = delivered.get(result["offset"], {})
        expect(
            message.get("data") == entry["data"] and message.get("id") == result["id"],
            clause="BAT-4",
            expected=f"offset {result['offset']}: data {entry['data']!r}, id {result['id']!r}",
            received=message,
            channel=channel,
        )
    ids = [m.get("id") for m in delivered.values()]
    expect(len(set(ids)) == len(ids), clause="BAT-4", expected="distinct ids", received=ids)


@case("BAT-12", "BAT-2")
async def test_live_subscribers_receive_a_batch_in_order(target: Target) -> None:
    channel = target.channel()
    readers = [await target.client(grants=[grant(channel, "subscribe")]) for _ in range(2)]
    for reader in readers:
        expect_ok(await reader.subscribe(channel, from_="latest"))
    await target.backend.publish_batch(channel, [{"data": {"n": n}} for n in range(50)])
    for reader in readers:
        await reader.wait_for_offset(channel, 50, clause="BAT-12")
        expect_offsets(reader.offsets(channel), list(range(1, 51)), clause="BAT-12")
        data = [m["data"] for m in reader.messages(channel)]
        expect(
            data == [{"n": n} for n in range(50)],
            clause="BAT-12",
            expected="the batch's data in request order",
            received=data[:5],
        )


@case("BAT-5", "BAT-3")
async def test_a_bad_entry_fails_the_whole_batch_naming_it(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 1)
    bad: list[tuple[list[Any], int]] = [
        ([{"data": 1}, {"data": 2}, {"id": _id()}], 2),  # no data
        ([{"data": 1}, {"data": 2, "extra": True}], 1),  # an unknown member
        ([{"data": 1, "id": ""}, {"data": 2}], 0),  # an id too short
    ]
    for entries, index in bad:
        body = expect_status(
            await _raw(target, channel, {"messages": entries}), 400, clause="BAT-5",
            code="bad_request", channel=channel,
        )  # fmt: skip
        _expect_index(body, index, "BAT-5", "the lowest bad entry")
    not_i_json = b'{"messages": [{"data": 1}, {"data": {"a": 1, "a": 2}}]}'  # MSG-7 in entry 1
    body = expect_status(
        await _raw(target, channel, raw=not_i_json), 400, clause="BAT-5", code="bad_request"
    )
    _expect_index(body, 1, "BAT-5", "the entry that is not I-JSON")
    await _next_offset(target, channel, "BAT-3", 2)


@case("BAT-5")
async def test_malformed_bodies_are_bad_requests(target: Target) -> None:
    channel = target.channel()
    bodies: list[object] = [{"messages": []}, {}, [], {"messages": {"data": 1}}, {"x": 1}]
    for body in bodies:
        expect_status(
            await _raw(target, channel, body), 400, clause="BAT-5", code="bad_request",
            channel=channel,
        )  # fmt: skip
    twice = b'{"messages": [{"data": 1}], "messages": [{"data": 2}]}'
    expect_status(await _raw(target, channel, raw=twice), 400, clause="BAT-5", code="bad_request")
    await _next_offset(target, channel, "BAT-5", 1)


@case("BAT-6", "BAT-3")
async def test_too_many_entries_is_payload_too_large_and_the_maximum_fits(target: Target) -> None:
    channel = target.channel()
    most = target.limits["max_batch_publish"]
    over = {"messages": [{"data": n} for n in range(most + 1)]}
    expect_status(
        await _raw(target, channel, over), 413, clause="BAT-6", code="payload_too_large",
        channel=channel,
    )  # fmt: skip
    await _next_offset(target, channel, "BAT-3", 1)
    answer = await target.backend.publish_batch(channel, [{"data": n} for n in range(most)])
    expect_offsets(_offsets(answer, "BAT-6", channel, most), list(range(2, most + 2)),
                   clause="BAT-6", channel=channel)  # fmt: skip


@case("BAT-7", "BAT-3")
async def test_an_entry_too_large_fails_the_batch_naming_it(target: Target) -> None:
    channel = target.channel()
    too_large = "x" * (target.limits["max_payload_bytes"] - 1)  # two quotes make it one over
    entries = [{"data": 1}, {"data": too_large}, {"data": too_large}]
    body = expect_status(
        await _raw(target, channel, {"messages": entries}), 413, clause="BAT-7",
        code="payload_too_large", channel=channel,
    )  # fmt: skip
    _expect_index(body, 1, "BAT-7", "the lowest entry too large")
    await _next_offset(target, channel, "BAT-3", 1)


@case("BAT-10")
async def test_checks_run_in_order(target: Target) -> None:
    channel = target.channel()
    limits = target.limits
    too_large = {"data": "x" * limits["max_payload_bytes"]}
    many = [{"data": n} for n in range(limits["max_batch_publish"] + 1)]
    expect_status(  # a bad entry (400) before the count (413)
        await _raw(target, channel, {"messages": [*many, {"id": _id()}]}), 400, clause="BAT-10",
        code="bad_request", channel=channel,
    )  # fmt: skip
    known = _id()
    await target.backend.publish(channel, "original", id=known)
    expect_status(  # the size (413) before the ids: a repeat does not turn it into duplicates
        await _raw(target, channel, {"messages": [{"data": 1, "id": known}, too_large]}), 413,
        clause="BAT-10", code="payload_too_large", channel=channel,
    )  # fmt: skip
    await _next_offset(target, channel, "BAT-10", 2)


@case("BAT-8", "BAT-1", feature="idempotency")
async def test_known_and_repeated_ids_are_duplicates(target: Target) -> None:
    channel = target.channel()
    known, fresh = _id(), _id()
    original = await target.backend.publish(channel, "original", id=known)
    entries = [
        {"data": "a", "id": fresh},
        {"data": "again", "id": known},
        {"data": "b"},
        {"data": "a again", "id": fresh},
    ]
    answer = await target.backend.publish_batch(channel, entries)
    got = [(r.get("offset"), r.get("duplicate"), r.get("id")) for r in answer.get("results", [])]
    want = [
        (2, False, fresh),
        (original["offset"], True, known),
        (3, False, None),
        (2, True, fresh),
    ]
    expect(
        len(got) == 4
        and all(g[:2] == w[:2] and w[2] in (None, g[2]) for g, w in zip(got, want, strict=False)),
        clause="BAT-8",
        expected=f"(offset, duplicate, id) {want}",
        received=got,
        channel=channel,
    )
    retry = await target.backend.request(
        "POST", batches_path(channel), body={"messages": [entries[1], entries[0]]}, channel=channel
    )
    body = expect_status(retry, 200, clause="BAT-1", channel=channel)  # every entry a duplicate
    expect(
        [r.get("offset") for r in body.get("results", [])] == [1, 2],
        clause="BAT-8",
        expected="the original offsets 1 and 2",
        received=body,
        channel=channel,
    )
    await _next_offset(target, channel, "BAT-8", 4)


@case("BAT-9", "IDM-2", feature="idempotency")
async def test_racing_batches_and_publishes_store_one_id_once(target: Target) -> None:
    channel = target.channel()
    shared = _id()
    answers = await asyncio.gather(
        *(target.backend.publish_batch(channel, [{"data": n}, {"data": n, "id": shared}])
          for n in range(4)),
        *(target.backend.publish(channel, "single", id=shared) for _ in range(2)),
    )  # fmt: skip
    keyed = [a["results"][1] for a in answers[:4]] + list(answers[4:])
    stored = [r for r in keyed if r.get("duplicate") is False]
    singles = sum(a.get("duplicate") is False for a in answers[4:])
    expect(
        len(stored) == 1 and len({r.get("offset") for r in keyed}) == 1,
        clause="IDM-2" if singles > 1 else "BAT-9",  # two single publishes: no batch's doing
        expected="one of six publishes of one id stores it; the rest answer its offset",
        received=keyed,
        channel=channel,
    )
    await _next_offset(target, channel, "BAT-9", 6)


@case("BAT-2", "BAT-3")
async def test_racing_publishes_never_land_inside_a_batch(target: Target) -> None:
    channel = target.channel()
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    size = 25
    answers = await asyncio.gather(
        *(target.backend.publish_batch(channel, [{"data": f"b{b}.{n}"} for n in range(size)])
          for b in range(4)),
        target.backend.publish_concurrently(channel, 20),
    )  # fmt: skip
    *batches, singles = answers
    for batch in batches:
        offsets = _offsets(batch, "BAT-1", channel, size)
        expect_offsets(offsets, list(range(offsets[0], offsets[0] + size)), clause="BAT-2",
                       channel=channel)  # fmt: skip
    every = sorted([o for b in batches for o in _offsets(b, "BAT-1", channel, size)] + singles)
    expect_offsets(every, list(range(1, 121)), clause="BAT-2", channel=channel)
    await reader.wait_for_offset(channel, 120, clause="BAT-12")
    delivered = {m["offset"]: m["data"] for m in reader.messages(channel)}
    for b, batch in enumerate(batches):
        start = batch["results"][0]["offset"]
        data = [delivered.get(start + n) for n in range(size)]
        expect(
            data == [f"b{b}.{n}" for n in range(size)],
            clause="BAT-3",
            expected=f"batch {b} whole and in order at offsets {start}..{start + size - 1}",
            received=data[:4],
            channel=channel,
        )


@case("BAT-11", feature="retention")
async def test_retention_applies_after_the_whole_batch(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    await target.backend.publish_batch(channel, [{"data": n} for n in range(5)])
    reader = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await reader.subscribe(channel, from_="beginning"))
    expect(
        reply.get("from") == 3 and reply.get("head") == 5,
        clause="BAT-11",
        expected="from 3 (the 3 newest of the batch retained), head 5",
        received=reply,
        channel=channel,
    )
    await reader.wait_for_offset(channel, 5, clause="BAT-11")
    expect_offsets(reader.offsets(channel), [3, 4, 5], clause="BAT-11", channel=channel)
