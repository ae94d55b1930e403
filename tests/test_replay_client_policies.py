"""What cannot be resumed, against the real reference, with each policy: an epoch change (the
in-memory reference restarted on the same port, EPO-3), retention overtaking a disconnected
client (SUB-6, SUB-11) and a stored position ahead of the server (SUB-5). The application is
always told, and what it receives afterwards follows the policy it chose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from redis_server import free_port
from replay_client_support import REFERENCE_KEY, Application, Backend, eventually
from replay_client_support import reference_on as reference

from conformance.faults import FaultProxy
from replay_client import MemoryPositions, Position, ReplayClient, Subscription, connect

POLICIES = ("fail", "restart", "continue")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start(url: str, backend: Backend, **options: Any) -> ReplayClient:
    return await connect(
        url, backend.get_token(f"s-{uuid.uuid4().hex[:8]}"), min_delay=0.02, max_delay=0.2,
        **options,
    )  # fmt: skip


async def publish(backend: Backend, channel: str, count: int) -> dict[str, Any]:
    reply: dict[str, Any] = {}
    for _ in range(count):
        reply = await backend.publish(channel, {"n": 1})
    return reply


async def told(app: Application, sub: Subscription, code: str, policy: str) -> bool:
    """The application is told ``code`` first; with ``fail`` the subscription then ends with
    it as the reason (True), otherwise the policy's subscribe is confirmed (False)."""
    await app.until(lambda: app.named("error"), 15)
    assert [e.code for e in app.named("error")] == [code]
    if policy == "fail":
        await app.until(lambda: sub.state == "unsubscribed")
        assert [e.reason for e in app.named("unsubscribed")] == [code]
        return True
    await app.until(lambda: sub.state == "subscribed")
    return False


@pytest.mark.parametrize("policy", POLICIES)
async def test_epoch_change(policy: str, http: aiohttp.ClientSession) -> None:
    port = free_port()
    app, positions = Application(), MemoryPositions()
    async with reference(port) as url:
        backend = Backend(url, REFERENCE_KEY, http)
        old = await publish(backend, "room", 10)
        client = await start(url, backend, positions=positions)
        sub = app.watch(client.subscribe("room", on_messages=app.on_messages,
                                         on_unresumable=policy))  # type: ignore[arg-type]  # fmt: skip
        await app.until(lambda: len(app.delivered) == 10)
    try:
        async with reference(port) as url:  # a new memory store: a new epoch
            new = await publish(backend, "room", 5)
            assert new["epoch"] != old["epoch"]
            if await told(app, sub, "epoch_mismatch", policy):
                assert app.offsets() == list(range(1, 11))
                assert await positions.get("room") == Position(old["epoch"], 10)
                return
            await app.until(lambda: len(app.delivered) == 15)
            subscribed = app.named("subscribed")[-1]
            assert subscribed.epoch_changed and subscribed.epoch == new["epoch"]
            assert subscribed.from_ == 1 and not subscribed.recovered
            assert app.offsets(old["epoch"]) == list(range(1, 11))
            assert app.offsets(new["epoch"]) == list(range(1, 6))
            assert await positions.get("room") == Position(new["epoch"], 5)
            assert sub.state == "subscribed" and not app.named("unsubscribed")
    finally:
        await client.close()


@pytest.mark.parametrize("policy", POLICIES)
async def test_retention_overtakes_a_disconnected_client(
    policy: str, http: aiohttp.ClientSession
) -> None:
    app = Application()
    async with reference(0) as url:
        port = urlsplit(url).port
        assert port is not None
        backend = Backend(url, REFERENCE_KEY, http)
        async with FaultProxy("127.0.0.1", port) as proxy:
            client = await start(proxy.url, backend)
            try:
                sub = app.watch(client.subscribe("log", on_messages=app.on_messages,
                                                 on_unresumable=policy))  # type: ignore[arg-type]  # fmt: skip
                await publish(backend, "log", 10)
                await app.until(lambda: len(app.delivered) == 10)
                proxy.refuse()
                await proxy.cut()
                await eventually(lambda: not client.online)
                await publish(backend, "log", 20)
                await backend.retain("log", 5)  # first is now 26: 11 to 25 are gone
                proxy.heal()
                if await told(app, sub, "history_truncated", policy):
                    assert app.offsets() == list(range(1, 11))
                    return
                await app.until(lambda: len(app.delivered) == 15)
                subscribed = app.named("subscribed")[-1]
                assert subscribed.truncated and not subscribed.recovered
                assert subscribed.from_ == 26 and not subscribed.epoch_changed
                if policy == "continue":  # resumed from the position, allowing truncation
                    assert subscribed.truncation is not None
                    assert (
                        subscribed.truncation.requested,
                        subscribed.truncation.first_available,
                    ) == (11, 26)
                await publish(backend, "log", 1)
                await app.until(lambda: len(app.delivered) == 16)
                assert app.offsets() == [*range(1, 11), *range(26, 32)]
            finally:
                await client.close()


@pytest.mark.parametrize(("policy", "expected"), [
    ("fail", []), ("restart", [1, 2, 3, 4]), ("continue", [4]),
])  # fmt: skip
async def test_position_ahead_of_the_server(
    policy: str, expected: list[int], http: aiohttp.ClientSession
) -> None:
    app, positions = Application(), MemoryPositions()
    async with reference(0) as url:
        backend = Backend(url, REFERENCE_KEY, http)
        epoch = (await publish(backend, "ahead", 3))["epoch"]
        await positions.set("ahead", Position(epoch, 50))  # e.g. a store shared by mistake
        client = await start(url, backend, positions=positions)
        try:
            sub = app.watch(client.subscribe("ahead", on_messages=app.on_messages,
                                             on_unresumable=policy))  # type: ignore[arg-type]  # fmt: skip
            await told(app, sub, "offset_out_of_range", policy)
            await publish(backend, "ahead", 1)
            if expected:
                await app.until(lambda: len(app.delivered) == len(expected))
            assert app.offsets() == expected
            stored = await positions.get("ahead")
            assert stored == Position(epoch, 4 if expected else 50)
        finally:
            await client.close()
