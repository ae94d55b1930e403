"""Three reference nodes sharing one Redis (CLU-1 to CLU-4): in-process nodes, each with its
own RedisStore and RedisBus, and once as three real ``python -m reference`` processes.

The only timing asserts are the spec's own bounds: a revocation or a narrowing
re-registration takes effect on every node within 1 s (SES-15, CLU-4).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from harness import ALL_ACTIONS, API_KEY, Served, serve
from redis_server import RedisServer

from conformance import watchdog
from reference.bus.redis import RedisBus
from reference.store.redis import RedisStore

DB = 3
SPEC_BOUND_S = 1.0  # SES-15, CLU-4: "within 1 second"


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    """An empty database of the session's server for the cluster."""
    with redis_server.admin() as admin:
        admin.select(DB)
        admin.flushdb()
        yield redis_server.url(DB)
        admin.flushdb()


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[list[Served]]:
    """Three in-process nodes A, B, C, each with its own store, bus and connection pool."""
    async with contextlib.AsyncExitStack() as stack:
        served = []
        for _ in range(3):
            store = RedisStore.from_url(redis_url)
            served.append(await stack.enter_async_context(serve(store, bus=RedisBus(store.client))))
        yield served


async def history_state(node: Served, channel: str) -> tuple[str, int | None, int]:
    status, body = await node.call("GET", f"/replay/v1/channels/{channel}/messages?limit=1")
    assert status == 200, body
    return body["epoch"], body["first"], body["head"]


async def read_all(node: Served, channel: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    start: int | str = "beginning"
    while True:
        path = f"/replay/v1/channels/{channel}/messages?from={start}&limit=1000"
        status, body = await node.call("GET", path)
        assert status == 200, body
        messages += body["messages"]
        if not body["messages"] or messages[-1]["offset"] >= body["head"]:
            return messages
        start = messages[-1]["offset"] + 1


# --- the scenarios, shared by in-process nodes and real processes -------------------------


async def one_order_across_nodes(a: Served, b: Served, c: Served) -> None:
    """A client on B receives what A and C publish, in one gap-free order (CLU-2, CNS-2)."""
    client = await b.client()
    reply = await client.call("replay:subscribe", {"channel": "mix", "from": "beginning"})
    assert reply["ok"] and reply["from"] == 1, reply
    for n in range(30):
        await (a if n % 2 == 0 else c).publish("mix", n)
    await client.wait_for_offset("mix", 30)
    assert client.offsets("mix") == list(range(1, 31))
    assert [m["data"] for m in client.messages["mix"]] == list(range(30))


async def dense_offsets_under_concurrency(nodes: list[Served]) -> None:
    """Concurrent publishes through every node get distinct, dense offsets (PUB-4)."""
    replies = await asyncio.gather(
        *(node.publish("busy", [i, n]) for n in range(20) for i, node in enumerate(nodes))
    )
    assert sorted(r["offset"] for r in replies) == list(range(1, 61))
    assert len({r["epoch"] for r in replies}) == 1
    stored = await read_all(nodes[1], "busy")
    assert [m["offset"] for m in stored] == list(range(1, 61))
    by_offset = {r["offset"]: r["id"] for r in replies}
    assert all(by_offset[m["offset"]] == m["id"] for m in stored)


async def same_state_everywhere(nodes: list[Served], channels: list[str]) -> None:
    """Every node reports the same epoch, first and head (CLU-3)."""
    for channel in channels:
        states = {await history_state(node, channel) for node in nodes}
        assert len(states) == 1, states
    for node in nodes:
        _, info = await node.call("GET", "/replay/v1/info")
        assert "cluster" in info["features"]


async def revocation_reaches_every_node(a: Served, c: Served) -> None:
    """A session deleted through A loses its socket on C within 1 s (SES-15, CLU-4)."""
    client = await c.client(session_id="victim")
    reply = await client.call("replay:subscribe", {"channel": "r", "from": "latest"})
    assert reply["ok"], reply
    started = time.monotonic()
    status, _ = await a.call("DELETE", "/replay/v1/sessions/victim")
    assert status == 204
    await asyncio.wait_for(client.disconnected.wait(), 5)
    elapsed = time.monotonic() - started
    assert elapsed <= SPEC_BOUND_S, f"disconnected after {elapsed:.3f} s"
    await a.publish("r", "after")
    assert "r" not in client.messages  # SES-15: nothing after the delete


# --- in-process nodes ---------------------------------------------------------------------


async def test_client_on_b_gets_what_a_and_c_publish(nodes: list[Served]) -> None:
    await one_order_across_nodes(*nodes)


async def test_concurrent_publishes_through_all_nodes(nodes: list[Served]) -> None:
    await dense_offsets_under_concurrency(nodes)
    await same_state_everywhere(nodes, ["busy"])


async def test_subscribe_on_c_while_a_publishes(nodes: list[Served]) -> None:  # HND-2
    a, _, c = nodes
    for n in range(50):
        await a.publish("race", n)

    async def publisher() -> None:
        for n in range(50, 250):
            await a.publish("race", n)

    racing = asyncio.create_task(publisher())
    client = await c.client()
    reply = await client.call("replay:subscribe", {"channel": "race", "from": "beginning"})
    await racing
    assert reply["ok"] and reply["from"] == 1, reply
    await client.wait_for_offset("race", 250, timeout=15)
    assert client.offsets("race") == list(range(1, 251))
    assert [m["data"] for m in client.messages["race"]] == list(range(250))


async def test_revocation_through_a_disconnects_on_c(nodes: list[Served]) -> None:
    a, _, c = nodes
    await revocation_reaches_every_node(a, c)


async def test_narrowing_through_b_ends_the_subscription_on_c(nodes: list[Served]) -> None:
    a, b, c = nodes
    await a.register(session_id="narrow")
    client = await c.client(session_id="narrow")
    for channel in ("room:1", "other:1"):
        reply = await client.call("replay:subscribe", {"channel": channel, "from": "latest"})
        assert reply["ok"], reply
    started = time.monotonic()
    await b.register([{"channels": "other:*", "actions": ALL_ACTIONS}], session_id="narrow")
    ended = ("replay:unsubscribed", {"channel": "room:1", "reason": "revoked"})
    await client.wait_until(lambda: ended in client.events)  # ACC-6 on another node
    elapsed = time.monotonic() - started
    assert elapsed <= SPEC_BOUND_S, f"revoked after {elapsed:.3f} s"
    await a.publish("other:1", "still here")  # the covered subscription goes on
    await client.wait_for_offset("other:1", 1)
    assert not client.disconnected.is_set()


async def test_every_node_reports_the_same_state(nodes: list[Served]) -> None:
    a, b, c = nodes
    for n in range(5):
        await (a, b, c)[n % 3].publish("shared", n)
    status, _ = await b.call("PUT", "/replay/v1/channels/shared/retention", {"max_messages": 3})
    assert status == 200
    await same_state_everywhere(nodes, ["shared", "never-used"])
    _, first, head = await history_state(c, "shared")
    assert (first, head) == (3, 5)


# --- three real processes -----------------------------------------------------------------


@contextlib.contextmanager
def processes(redis_url: str, logs: Path, count: int = 3) -> Iterator[list[str]]:
    """``count`` ``python -m reference`` processes on one Redis; yields their URLs."""
    started: list[subprocess.Popen[str]] = []
    guards: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            command = [sys.executable, "-m", "reference", "--port", "0", "--store", redis_url]
            with (logs / f"node-{i}.log").open("w") as log:  # the child keeps its own copy
                started.append(
                    subprocess.Popen(
                        [*command, "--api-key", API_KEY],
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        start_new_session=True,
                    )
                )
            guards.append(watchdog.guard(started[-1].pid))  # no orphan if pytest is SIGKILLed
        urls = []
        for process in started:
            assert process.stdout is not None
            lines = [process.stdout.readline().strip() for _ in range(3)]
            assert " listening on " in lines[0], lines
            assert lines[1] == f"store: {redis_url} (durable: false)"
            urls.append(lines[0].rsplit(" ", 1)[1])
        yield urls
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        for guard in guards:
            watchdog.dismiss(guard)


def remote(url: str, http: aiohttp.ClientSession) -> Served:
    """``harness.Served`` for a node in another process (no store or app in reach)."""
    return Served(url, http, cast(Any, None), cast(Any, None))


async def test_three_real_processes(redis_url: str, tmp_path: Path) -> None:
    with processes(redis_url, tmp_path) as urls:
        async with aiohttp.ClientSession() as http:
            nodes = [remote(url, http) for url in urls]
            try:
                await one_order_across_nodes(*nodes)
                await dense_offsets_under_concurrency(nodes)
                await same_state_everywhere(nodes, ["mix", "busy"])
                await revocation_reaches_every_node(nodes[0], nodes[2])
            finally:
                for node in nodes:
                    for client in node.clients:
                        await client.close()
