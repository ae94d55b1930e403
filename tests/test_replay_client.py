"""The client end to end against the reference: tokens, refused connects, stores that
outlive a process, history pages, acks moving the server cursor, close()."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from replay_client_support import REFERENCE_KEY, Application, Backend, eventually
from replay_client_support import reference_on as reference

from conformance.faults import FaultProxy
from replay_client import (
    AckOptions,
    FilePositions,
    MemoryPositions,
    Message,
    MessagesEvent,
    Position,
    ReplayClientError,
    SqlitePositions,
    connect,
)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with reference(0) as url, aiohttp.ClientSession() as http:
        yield Backend(url, REFERENCE_KEY, http)


async def fill(backend: Backend, channel: str, count: int) -> str:
    epoch = ""
    for n in range(count):
        epoch = (await backend.publish(channel, {"n": n}))["epoch"]
    return epoch


async def test_a_refused_token_is_reported_and_retried_with_a_new_one(backend: Backend) -> None:
    tokens = itertools.chain(["not-a-token-of-any-session", "also-not-a-token-at-all"])
    real = backend.get_token("s1")

    async def get_token() -> str:
        return next(tokens, None) or await real()

    errors: list[Any] = []
    client = await connect(backend.url, get_token, min_delay=0.01, max_delay=0.05)
    client.on("error", errors.append)
    try:
        await eventually(lambda: client.online)
        assert [e.code for e in errors] == ["unauthorized", "unauthorized"]  # CON-2
        assert client.stats.token_calls == 3 and client.stats.refused == 2
    finally:
        await client.close()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
async def test_a_new_process_resumes_from_the_stored_position(
    backend: Backend, tmp_path: Path, kind: str
) -> None:
    def store() -> Any:
        if kind == "file":
            return FilePositions(tmp_path / "positions.json")
        return SqlitePositions(tmp_path / "positions.sqlite")

    epoch = await fill(backend, "orders", 5)
    first = Application()
    client = await connect(backend.url, backend.get_token("s1"), positions=store())
    first.watch(client.subscribe("orders", on_messages=first.on_messages))
    await first.until(lambda: len(first.delivered) == 5)
    await client.close()
    await fill(backend, "orders", 3)
    second = Application()
    client = await connect(backend.url, backend.get_token("s2"), positions=store())
    try:
        second.watch(client.subscribe("orders", on_messages=second.on_messages))
        await second.until(lambda: len(second.delivered) == 3)
        assert second.offsets() == [6, 7, 8]
        assert second.named("subscribed")[0].recovered
        async with asyncio.timeout(5):  # set once the handler returned, just after it
            while await store().get("orders") != Position(epoch, 8):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await client.close()


async def test_history_pages_up_to_the_head(backend: Backend) -> None:
    epoch = await fill(backend, "h", 7)
    client = await connect(backend.url, backend.get_token("s1"))
    try:
        pages = [page async for page in client.history("h", limit=3)]
        assert [[m.offset for m in p.messages] for p in pages] == [[1, 2, 3], [4, 5, 6], [7]]
        assert all(p.epoch == epoch and p.head == 7 for p in pages)
        after = [p async for p in client.history("h", from_=Position(epoch, 5))]
        assert [m.offset for p in after for m in p.messages] == [6, 7]
        with pytest.raises(ReplayClientError) as raised:
            _ = [p async for p in client.history("h", from_=Position("not-the-epoch", 1))]
        assert raised.value.code == "epoch_mismatch"
    finally:
        await client.close()


async def test_acks_move_the_server_cursor(backend: Backend) -> None:
    """A second device resuming through the cursor gets only what was not finished."""
    await fill(backend, "a", 5)
    app = Application()
    client = await connect(backend.url, backend.get_token("shared"))
    ack = AckOptions(max_delay=0.05)
    sub = client.subscribe("a", from_="beginning", on_messages=app.on_messages, ack=ack)
    await app.until(lambda: len(app.delivered) == 5)
    await eventually(lambda: sub.stats.cursor == 5)  # the batch's timer, then its reply
    await client.close()
    await fill(backend, "a", 2)
    other = Application()
    client = await connect(backend.url, backend.get_token("shared"), positions=MemoryPositions())
    try:
        other.watch(client.subscribe("a", on_messages=other.on_messages, ack=True))
        # Without the cursor an omitted `from` is "latest" (SUB-9) and 6, 7 never come.
        await other.until(lambda: len(other.delivered) == 2)
        assert other.offsets() == [6, 7] and other.named("subscribed")[0].from_ == 6
    finally:
        await client.close()


async def test_close_ends_every_subscription(backend: Backend) -> None:
    client = await connect(backend.url, backend.get_token("s1"))
    app = Application()
    subs = [app.watch(client.subscribe(c, on_messages=app.on_messages)) for c in ("x", "y")]
    await eventually(lambda: all(s.state == "subscribed" for s in subs))
    await client.close()
    assert [s.state for s in subs] == ["unsubscribed", "unsubscribed"]
    assert [e.reason for e in app.named("unsubscribed")] == ["closed", "closed"]
    with pytest.raises(ReplayClientError):
        client.subscribe("z")


async def test_one_subscription_per_channel(backend: Backend) -> None:
    client = await connect(backend.url, backend.get_token("s1"))
    try:
        sub = client.subscribe("x")
        with pytest.raises(ReplayClientError) as raised:
            client.subscribe("x")
        assert raised.value.code == "already_subscribed"
        await sub.unsubscribe()
        assert sub.state == "unsubscribed"
        client.subscribe("x")  # a new one, once the first ended
    finally:
        await client.close()


async def test_an_auto_subscription_that_fits_stands_for_the_subscribe(backend: Backend) -> None:
    """Reading through the cursor, the session's auto-subscription (§8) is the subscription:
    no repair, every message once; after a reconnect, which auto-subscribes again from the
    cursor, still every message once."""
    await fill(backend, "auto", 3)
    get_token = backend.get_token("s1", subscribe=[{"channel": "auto", "from": "beginning"}])
    port = urlsplit(backend.url).port
    assert port is not None
    app = Application()
    async with FaultProxy("127.0.0.1", port) as proxy:
        client = await connect(proxy.url, get_token, min_delay=0.01, max_delay=0.05)
        try:
            sub = app.watch(client.subscribe("auto", on_messages=app.on_messages, ack=True))
            await app.until(lambda: len(app.delivered) == 3)
            assert [e.from_ for e in app.named("subscribed")] == [1] and not app.named("error")
            assert sub.stats.stale == 0
            await fill(backend, "auto", 2)
            await app.until(lambda: len(app.delivered) == 5)
            await proxy.cut()
            await fill(backend, "auto", 2)
            await app.until(lambda: len(app.delivered) == 7)
            assert app.offsets() == list(range(1, 8)) and client.stats.disconnects == 1
        finally:
            await client.close()


async def test_an_auto_subscription_that_does_not_fit_is_replaced(backend: Backend) -> None:
    """The application asked for "latest"; the session auto-subscribes from the beginning:
    the library unsubscribes it and subscribes as asked (already_subscribed, repaired)."""
    await fill(backend, "auto", 3)
    get_token = backend.get_token("s1", subscribe=[{"channel": "auto", "from": "beginning"}])
    client = await connect(backend.url, get_token)
    app = Application()
    try:
        sub = app.watch(client.subscribe("auto", from_="latest", on_messages=app.on_messages))
        await app.until(lambda: sub.state == "subscribed")
        assert [e.code for e in app.named("error")] == ["already_subscribed"]
        assert app.named("subscribed")[-1].from_ == 4
        await fill(backend, "auto", 1)
        await app.until(lambda: len(app.delivered) == 1)
        assert app.offsets() == [4]
    finally:
        await client.close()


async def test_close_and_unsubscribe_from_inside_a_handler(backend: Backend) -> None:
    await fill(backend, "inside", 2)
    client = await connect(backend.url, backend.get_token("s1"))
    app = Application()

    async def handler(messages: list[Message], ctx: MessagesEvent) -> None:
        await app.on_messages(messages, ctx)
        await (first.unsubscribe() if ctx.channel == "inside" else client.close())

    first = app.watch(client.subscribe("inside", on_messages=handler))
    await app.until(lambda: first.state == "unsubscribed")
    assert [e.reason for e in app.named("unsubscribed")] == ["client"]
    second = app.watch(client.subscribe("other", on_messages=handler))
    await backend.publish("other", {"n": 1})
    await app.until(lambda: second.state == "unsubscribed")
    assert [e.reason for e in app.named("unsubscribed")] == ["client", "closed"]
    await eventually(lambda: all(task.done() for task in client._tasks))
    assert client.stats.disconnects == 0
