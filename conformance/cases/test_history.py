"""History reads (spec §6.5 `replay:history`, §4.6 `GET …/messages`; feature `history`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance import (
    ReplayClient,
    Target,
    case,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    grant,
)
from conformance.eventlog import KNOWN, KnownEpoch
from conformance.protocol import ERROR_STATUS, messages_path

ROUTES = ["socket", "http"]


async def _fill(target: Target, channel: str, count: int, start: int = 0) -> None:
    """Publish ``count`` messages in concurrent chunks (offsets follow on, data in any order)."""
    for first in range(start, start + count, 50):
        await target.backend.publish_concurrently(channel, min(50, start + count - first), first)


class _Reader:
    """History reads through one route: a socket's ``replay:history`` or the backend's GET."""

    def __init__(self, target: Target, route: str, client: ReplayClient | None) -> None:
        self.target = target
        self.route = route
        self.client = client

    async def raw(
        self,
        channel: str,
        from_: int | str | None = None,
        limit: int | None = None,
        epoch: str | KnownEpoch | None = KNOWN,
    ) -> tuple[str | None, dict[str, Any]]:
        """``(error code or None, reply or body)``; HTTP errors are checked against §4.1.
        An integer ``from`` goes with the epoch the case has seen, unless ``epoch`` says."""
        if self.client is not None:
            reply = await self.client.history(channel, from_, epoch=epoch, limit=limit)
            error = reply.get("error") if reply.get("ok") is False else None
            return (error.get("code") if isinstance(error, dict) else None), reply
        backend = self.target.backend
        status, body = await backend.history_raw(channel, from_, limit, epoch=epoch)
        if status == 200 and isinstance(body, dict):
            return None, body
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        expect(
            isinstance(code, str) and ERROR_STATUS.get(code) == status,
            clause="HIS-1",
            expected="an error body whose code matches its HTTP status",
            received=f"HTTP {status} {body}",
            channel=channel,
        )
        return str(code), body if isinstance(body, dict) else {}

    async def read(
        self, channel: str, from_: int | str | None = None, limit: int | None = None, *, clause: str
    ) -> dict[str, Any]:
        """A successful read (fails the case, citing ``clause``, otherwise)."""
        code, reply = await self.raw(channel, from_, limit)
        expect(
            code is None,
            clause=clause,
            expected=f"a history reply ({self.route})",
            received=reply,
            channel=channel,
        )
        return reply

    async def fails(
        self,
        channel: str,
        from_: int | str | None,
        code: str,
        *,
        clause: str,
        epoch: str | KnownEpoch | None = KNOWN,
    ) -> None:
        got, reply = await self.raw(channel, from_, epoch=epoch)
        expect(
            got == code,
            clause=clause,
            expected=f"error {code!r} ({self.route}, from {from_!r})",
            received=reply,
            channel=channel,
        )


async def _reader(target: Target, route: str, *channels: str) -> _Reader:
    client = None
    if route == "socket":
        client = await target.client(grants=[grant(c, "history") for c in channels])
    return _Reader(target, route, client)


def _offsets(reply: dict[str, Any]) -> list[int]:
    messages = reply.get("messages")
    if not isinstance(messages, list):
        return []
    return [
        m["offset"] for m in messages if isinstance(m, dict) and isinstance(m.get("offset"), int)
    ]


@case("HIS-3")
async def test_history_without_the_grant_is_forbidden(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(
        grants=[grant(channel, "subscribe", "publish"), grant(f"{channel}:*", "history")]
    )
    for from_ in (None, "beginning", 1):
        reply = await client.history(channel, from_)
        expect_error(reply, "forbidden", clause="HIS-3")
        expect("messages" not in reply, clause="HIS-3", expected="no messages", received=reply)
    # The history grant of the prefix family works there.
    expect_ok(await client.history(f"{channel}:x"), clause="HIS-3")


@case("HIS-4", "HIS-1")
@pytest.mark.parametrize("route", ROUTES)
async def test_limit_from_and_defaults(target: Target, route: str) -> None:
    channel = target.channel()
    await _fill(target, channel, 120)
    reader = await _reader(target, route, channel)
    default = min(100, target.limits["max_history_limit"])
    for start in (None, "beginning"):
        page = await reader.read(channel, start, clause="HIS-4")
        expect_offsets(_offsets(page), range(1, default + 1), clause="HIS-4", channel=channel)
    cases: list[tuple[int | str | None, int, range]] = [
        (5, 10, range(5, 15)),
        ("beginning", 3, range(1, 4)),
        (None, 1, range(1, 2)),
        (100, 50, range(100, 121)),  # fewer only because it reaches head
        (120, 1, range(120, 121)),
    ]
    for from_, limit, wanted in cases:
        page = await reader.read(channel, from_, limit, clause="HIS-4")
        expect_offsets(_offsets(page), wanted, clause="HIS-4", channel=channel)
    # From the middle with the default limit.
    page = await reader.read(channel, 60, clause="HIS-4")
    expect_offsets(
        _offsets(page), range(60, min(60 + default, 121)), clause="HIS-4", channel=channel
    )


@case("HIS-4", "HIS-1")
async def test_limit_is_clamped_to_max_history_limit(target: Target) -> None:
    max_limit = target.limits["max_history_limit"]
    if max_limit > 5000:
        pytest.skip(f"max_history_limit {max_limit} is too large to fill in a case")
    channel = target.channel()
    await _fill(target, channel, max_limit + 5)
    for route in ROUTES:
        reader = await _reader(target, route, channel)
        for limit in (max_limit + 1, 9007199254740991):
            page = await reader.read(channel, "beginning", limit, clause="HIS-4")
            expect_offsets(_offsets(page), range(1, max_limit + 1), clause="HIS-4", channel=channel)
        page = await reader.read(channel, 4, max_limit + 1, clause="HIS-4")
        expect_offsets(_offsets(page), range(4, max_limit + 4), clause="HIS-4", channel=channel)


@case("HIS-5", "HIS-4")
@pytest.mark.parametrize("route", ROUTES)
async def test_reply_describes_one_state_with_its_messages(target: Target, route: str) -> None:
    channel, empty = target.channel(), target.channel("empty")
    epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    await _fill(target, channel, 29, 1)
    reader = await _reader(target, route, channel, empty)
    state = await reader.read(empty, clause="HIS-5")
    expect(
        (state.get("first"), state.get("head"), _offsets(state)) == (None, 0, []),
        clause="HIS-5",
        expected="a never-used channel: first null, head 0, no messages",
        received=state,
        channel=empty,
    )
    # Reads race publishes: each reply must still be one consistent state.
    params = [(from_, limit) for from_ in (1, 10, 25) for limit in (5, 100)]
    reads = [
        reader.read(channel, f if f > 1 else "beginning", n, clause="HIS-5") for f, n in params
    ]
    racing = asyncio.ensure_future(_fill(target, channel, 50, 30))
    replies = await asyncio.gather(*reads)
    await racing
    for reply, (from_, limit) in zip(replies, params, strict=True):
        offsets = _offsets(reply)
        head, first = reply.get("head"), reply.get("first")
        consistent = (
            reply.get("epoch") == epoch
            and isinstance(head, int)
            and first == 1
            and bool(offsets)
            and offsets[0] == from_
            and offsets[-1] <= head
            # Fewer than the limit only when the read reached this state's head (HIS-4).
            and (len(offsets) == limit or offsets[-1] == head)
        )
        expect(
            consistent,
            clause="HIS-5",
            expected=f"epoch {epoch!r}, first 1, and a head that contains the messages read "
            f"from {from_} (limit {limit}), which reach it unless the limit stopped them",
            received=reply,
            channel=channel,
        )


@case("HIS-6", "HIS-1")
@pytest.mark.parametrize("route", ROUTES)
async def test_from_above_head(target: Target, route: str) -> None:
    channel, empty = target.channel(), target.channel("empty")
    await target.backend.publish_many(channel, 3)
    reader = await _reader(target, route, channel, empty)
    for name, head in ((channel, 3), (empty, 0)):
        await reader.read(name, "beginning", clause="HIS-6")  # learns the channel's epoch
        at_next = await reader.read(name, head + 1, clause="HIS-6")
        expect(
            _offsets(at_next) == [] and at_next.get("head") == head,
            clause="HIS-6",
            expected=f"no messages from head + 1 = {head + 1}",
            received=at_next,
            channel=name,
        )
        for beyond in (head + 2, head + 1000, 9007199254740991):
            await reader.fails(name, beyond, "offset_out_of_range", clause="HIS-6")


@case("HIS-9", "HIS-10", "EPO-6", "HIS-1")
@pytest.mark.parametrize("route", ROUTES)
async def test_an_integer_from_travels_with_its_epoch(target: Target, route: str) -> None:
    channel = target.channel()
    epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    await target.backend.publish_many(channel, 2)
    reader = await _reader(target, route, channel)
    for from_ in (1, 3, 4, 99):  # in range, at head, at head + 1, above: the epoch comes first
        await reader.fails(channel, from_, "bad_request", clause="HIS-9", epoch=None)
        await reader.fails(channel, from_, "epoch_mismatch", clause="HIS-10", epoch="gone")
    page = await reader.read(channel, 2, clause="HIS-10")
    expect(page.get("epoch") == epoch, clause="EPO-5", expected=f"epoch {epoch}", received=page)
    expect_offsets(_offsets(page), [2, 3], clause="HIS-4", channel=channel)
    # A keyword names no offset and needs no epoch.
    code, reply = await reader.raw(channel, "beginning", epoch=None)
    expect(code is None, clause="EPO-6", expected="a reply from beginning", received=reply)


@case("HIS-7", "HIS-4", "HIS-1", feature="retention")
@pytest.mark.parametrize("route", ROUTES)
async def test_from_below_first_is_truncated(target: Target, route: str) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    await target.backend.publish_many(channel, 10)  # retained: 8, 9, 10
    reader = await _reader(target, route, channel)
    for below in (1, 7):
        await reader.fails(channel, below, "history_truncated", clause="HIS-7")
    for from_ in ("beginning", None, 8):
        page = await reader.read(channel, from_, clause="HIS-7")
        expect(
            page.get("first") == 8 and page.get("head") == 10,
            clause="HIS-7",
            expected="first 8, head 10",
            received=page,
            channel=channel,
        )
        expect_offsets(_offsets(page), [8, 9, 10], clause="HIS-4", channel=channel)


@case("HIS-8", "HIS-1")
@pytest.mark.parametrize("route", ROUTES)
async def test_paging_is_lossless(target: Target, route: str) -> None:
    channel = target.channel()
    await _fill(target, channel, 250)
    reader = await _reader(target, route, channel)
    # 30 more publishes race the paging.
    racing = asyncio.ensure_future(_fill(target, channel, 30, 250))
    seen: list[int] = []
    ids: list[object] = []
    from_: int | str = "beginning"
    for _ in range(50):  # 280 messages need 8 pages; a paging that never ends is a failure
        page = await reader.read(channel, from_, 40, clause="HIS-8")
        offsets = _offsets(page)
        expect(len(offsets) <= 40, clause="HIS-4", expected="at most 40", received=offsets)
        seen += offsets
        ids += [m.get("id") for m in page.get("messages", []) if isinstance(m, dict)]
        from_ = offsets[-1] + 1 if offsets else from_
        if not offsets or offsets[-1] == page.get("head"):
            if racing.done():
                break
            await racing  # then read on up to the final head
    expect_offsets(seen, range(1, 281), clause="HIS-8", channel=channel)
    expect(
        len(set(map(str, ids))) == 280,
        clause="HIS-8",
        expected="280 distinct messages",
        received=f"{len(set(map(str, ids)))} distinct ids",
    )


@case("HIS-13", "HIS-2")
async def test_a_repeated_query_parameter_is_a_bad_request(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    epoch = target.log.epoch_of(channel)
    path = messages_path(channel)
    for query in (
        f"from=1&from=2&epoch={epoch}",
        f"from=1&epoch={epoch}&epoch={epoch}",
        "limit=1&limit=2",
    ):
        answer = await target.backend.request("GET", f"{path}?{query}", channel=channel)
        expect(
            answer.status == 400 and _code(answer.body) == "bad_request",
            clause="HIS-13",
            expected=f"400 bad_request for ?{query}",
            received=f"HTTP {answer.status} {answer.body}",
            channel=channel,
        )
    # Another name may be ignored or refused; ignored, the read is the read without it.
    answer = await target.backend.request("GET", f"{path}?limit=2&_=1", channel=channel)
    ignored = answer.status == 200 and isinstance(answer.body, dict)
    expect(
        ignored or (answer.status == 400 and _code(answer.body) == "bad_request"),
        clause="HIS-13",
        expected="200 as if without _=1, or 400 bad_request",
        received=f"HTTP {answer.status} {answer.body}",
        channel=channel,
    )
    if ignored:
        offsets = [m.get("offset") for m in answer.body.get("messages", [])]
        expect_offsets(offsets, [1, 2], clause="HIS-13", channel=channel)


def _code(body: object) -> object:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None
