"""`GET /replay/v1/info` (spec §4.2) and the transport it announces (§3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from conformance import (
    Target,
    case,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    expect_status,
    grant,
)
from conformance.protocol import (
    API,
    FEATURES,
    MAX_TTL_S,
    batches_path,
    messages_path,
    retention_path,
)

OPTIONAL_FEATURES = sorted(FEATURES - {"sessions", "cluster"})


@case("INF-1")
async def test_info_is_public_and_valid(target: Target) -> None:
    # No Authorization header; the backend client validates the body against its schema.
    status, body = await target.backend.request("GET", f"{API}/info", auth=False)
    expect(status == 200, clause="INF-1", expected="HTTP 200", received=f"HTTP {status}")
    expect(
        isinstance(body, dict) and body.get("protocol") == "replay/1",
        clause="INF-1",
        expected='"protocol": "replay/1"',
        received=body,
    )


async def _probe(target: Target, feature: str) -> bool:
    """Whether the target behaves as implementing ``feature`` (INF-2), by trying it."""
    channel = target.channel(feature)
    backend = target.backend
    if feature == "history":
        status, _ = await backend.request("GET", messages_path(channel), channel=channel)
        return status == 200
    if feature == "retention":
        body = {"max_messages": None}
        status, _ = await backend.request(
            "PUT", retention_path(channel), body=body, channel=channel
        )
        return status == 200
    if feature == "idempotency":
        first = await backend.publish(channel, {"n": 1}, id="probe-1")
        again = await backend.publish(channel, {"n": 1}, id="probe-1")
        return again.get("duplicate") is True and again.get("offset") == first.get("offset")
    if feature == "batch-publish":
        batch = {"messages": [{"data": {"n": 1}}]}
        path = batches_path(channel)
        status, _ = await backend.request("POST", path, body=batch, channel=channel)
        return status == 201
    client = await target.client(grants=[grant(channel)])
    if feature == "client-publish":
        return (await client.publish(channel, {"n": 1})).get("ok") is True
    if feature == "cursors":
        await backend.publish(channel, {"n": 1})
        return (await client.ack(channel, 1)).get("ok") is True
    raise AssertionError(f"no probe for {feature}")


@case("INF-2")
@pytest.mark.parametrize("feature", OPTIONAL_FEATURES)
async def test_features_match_behaviour(target: Target, feature: str) -> None:
    expect(
        "sessions" in target.features,
        clause="INF-2",
        expected='"sessions" in features',
        received=sorted(target.features),
    )
    claimed = feature in target.features
    works = await _probe(target, feature)
    expect(
        works == claimed,
        clause="INF-2",
        expected=f"feature {feature} {'working' if claimed else 'absent'}, as advertised",
        received=f"{feature} {'works' if works else 'does not work'}",
    )


@case("INF-3", "LIM-4", "LIM-5")
async def test_max_payload_bytes_is_enforced(target: Target) -> None:
    limit = target.limits["max_payload_bytes"]
    channel = target.channel()
    # A JSON string of n characters encodes as n + 2 bytes (its quotes; LIM-3).
    fits = "x" * (limit - 2)
    answer = await target.backend.publish_raw(channel, {"data": fits})
    expect_status(answer, 201, clause="LIM-5", channel=channel)
    too_big = await target.backend.publish_raw(channel, {"data": fits + "x"})
    expect_status(too_big, 413, clause="INF-3", code="payload_too_large", channel=channel)


async def _fill(target: Target, channel: str, count: int) -> None:
    """Publish ``count`` messages, in concurrent chunks (their order does not matter here)."""
    for start in range(0, count, 50):
        await target.backend.publish_concurrently(channel, min(50, count - start), start)


@case("INF-3", "DLV-2")
async def test_max_batch_is_enforced(target: Target) -> None:
    max_batch = target.limits["max_batch"]
    count = min(max_batch + 1, 2001)  # enough to need two events when max_batch is sane
    channel = target.channel()
    await _fill(target, channel, count)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="SUB-7")
    await client.wait_for_offset(channel, count, timeout=10)
    sizes = [
        len(payload["messages"])
        for name, payload in client.events
        if name == "replay:messages" and payload.get("channel") == channel
    ]
    expect(
        max(sizes) <= max_batch,
        clause="DLV-2",
        expected=f"at most {max_batch} messages per replay:messages",
        received=f"event sizes {sizes}",
        channel=channel,
    )
    expect_offsets(client.offsets(channel), range(1, count + 1), clause="INF-3", channel=channel)


@case("INF-3", "HIS-4", feature="history")
async def test_max_history_limit_is_enforced(target: Target) -> None:
    max_limit = target.limits["max_history_limit"]
    if max_limit > 5000:
        pytest.skip(f"max_history_limit {max_limit} is too large to fill in a case")
    channel = target.channel()
    await _fill(target, channel, max_limit + 1)
    page = await target.backend.history(channel, from_="beginning", limit=max_limit + 1)
    offsets = [m["offset"] for m in page["messages"]]
    expect_offsets(offsets, range(1, max_limit + 1), clause="INF-3", channel=channel)


@case("INF-3", "SUB-15")
async def test_max_subscriptions_is_enforced(target: Target) -> None:
    limit = target.limits.get("max_subscriptions")
    if limit is None or limit > 1000:
        pytest.skip("limits.max_subscriptions is not advertised (or too large to reach)")
    prefix = target.channel()
    client = await target.client(grants=[grant(f"{prefix}-*", "subscribe")])
    for n in range(limit):
        reply = await client.subscribe(f"{prefix}-{n}", from_="latest")
        expect_ok(reply, clause="SUB-15")
    over = await client.subscribe(f"{prefix}-{limit}", from_="latest")
    expect_error(over, "rate_limited", clause="INF-3")


@case("INF-3", "SES-6")
async def test_max_ttl_s_is_enforced(target: Target) -> None:
    # Without limits.max_ttl_s the maximum is the protocol's bound (SES-6).
    advertised = target.limits.get("max_ttl_s")
    max_ttl = MAX_TTL_S if advertised is None else advertised
    body: dict[str, Any] = {"client_id": "ttl", "grants": [], "ttl_s": max_ttl + 1}
    expect_status(await target.backend.register_raw(body), 400, clause="SES-6", code="bad_request")
    session = await target.register([], ttl_s=max_ttl)
    clause = "SES-1" if advertised is None else "INF-3"
    expect(session.status == 201, clause=clause, expected="HTTP 201", received=session.status)


@case("INF-5", "INF-6")
async def test_advertised_limits_are_within_the_protocols_bounds(target: Target) -> None:
    info = await target.backend.info()
    limits = info.get("limits", {})
    max_ttl = limits.get("max_ttl_s")
    expect(
        max_ttl is None or max_ttl <= MAX_TTL_S,
        clause="INF-5",
        expected=f"limits.max_ttl_s at most {MAX_TTL_S}",
        received=limits,
    )
    window = limits.get("idempotency_window_s")
    expect(
        "idempotency" not in info.get("features", []) or (isinstance(window, int) and window >= 1),
        clause="INF-6",
        expected="idempotency_window_s >= 1 while idempotency is advertised",
        received=limits,
    )


@case("INF-4", durable=True)
async def test_durable_claim_survives_restart(target: Target) -> None:
    if not target.restartable:
        pytest.skip("needs a target the suite launches (--target-cmd) to restart it")
    channel = target.channel()
    offsets = await target.backend.publish_many(channel, 3)
    epoch = (await target.backend.publish(channel, {"n": 3}))["epoch"]
    await target.restart()
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_="beginning"))
    expect(reply["epoch"] == epoch, clause="INF-4", expected=f"epoch {epoch}", received=reply)
    await client.wait_for_offset(channel, 4, clause="INF-4")
    expect_offsets(client.offsets(channel), [*offsets, 4], clause="INF-4", channel=channel)


@case("TRN-1")
async def test_socketio_v5_on_the_root_namespace(target: Target) -> None:
    expect(
        target.info.get("namespace") == "/",
        clause="TRN-1",
        expected='info.namespace "/"',
        received=target.info.get("namespace"),
    )
    session = await target.register([])
    # A raw Engine.IO v4 WebSocket handshake, then a Socket.IO v5 CONNECT to "/".
    url = f"{target.url}/socket.io/?EIO=4&transport=websocket"
    async with target.http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        opened = await asyncio.wait_for(ws.receive_str(), 10)
        handshake = json.loads(opened[1:]) if opened.startswith("0{") else {}
        expect(
            {"sid", "pingInterval", "pingTimeout"} <= handshake.keys(),
            clause="TRN-1",
            expected="an Engine.IO v4 open packet 0{sid, pingInterval, pingTimeout, ...}",
            received=opened[:200],
        )
        await ws.send_str("40" + json.dumps({"token": session.token}))
        connected = await asyncio.wait_for(ws.receive_str(), 10)
        expect(
            connected.startswith('40{"sid"') or connected.startswith("40{"),
            clause="TRN-1",
            expected="a Socket.IO v5 CONNECT reply 40{sid} on namespace /",
            received=connected[:200],
        )
    client = await target.client(session=session)
    expect(client.connected, clause="TRN-1", expected="connected", received="not connected")
