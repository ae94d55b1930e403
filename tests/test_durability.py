"""Durability across restarts with the Redis store (DUR-1 to DUR-3, INF-4), end to end: a real
``python -m reference`` process publishing to a real ``redis-server``, either of which is
SIGKILLed mid-stream and started again on the same port.

With an append-only file fsynced on every write, every publish answered 201 must still be
there afterwards, at its offset, in the same epoch. Without persistence, every channel used
before must come back with a new epoch, and ``info.durable`` must say false.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from harness import API_KEY
from redis_server import free_port, running_redis

from conformance import watchdog

ENOUGH = 60  # acknowledged publishes before the crash


@dataclass
class Node:
    """A reference process on a fixed port, restartable."""

    store: str
    port: int
    logs: Path
    process: subprocess.Popen[str] | None = None
    guard: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> list[str]:
        self.starts += 1
        command = [sys.executable, "-m", "reference", "--port", str(self.port)]
        with (self.logs / f"node-{self.starts}.log").open("w") as log:
            self.process = subprocess.Popen(
                [*command, "--store", self.store, "--api-key", API_KEY],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        self.guard = watchdog.guard(self.process.pid)  # no orphan if pytest is SIGKILLed
        assert self.process.stdout is not None
        lines = [self.process.stdout.readline().strip() for _ in range(3)]
        assert lines[0].endswith(f" listening on {self.url}"), lines
        return lines

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        if self.process is not None:
            self.process.communicate(timeout=10)
        watchdog.dismiss(self.guard)
        self.guard = None


@contextlib.contextmanager
def node(store: str, logs: Path) -> Iterator[Node]:
    running = Node(store, free_port(), logs)
    running.start()
    try:
        yield running
    finally:
        running.kill(signal.SIGTERM)


@dataclass
class Publisher:
    """Publishes 0, 1, 2, ... to one channel until stopped; remembers what was acknowledged."""

    http: aiohttp.ClientSession
    url: str
    channel: str = "stream"
    acked: list[tuple[int, str, int]] = field(default_factory=list)  # (offset, epoch, n)
    statuses: set[int] = field(default_factory=set)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    async def run(self, *, until_error: bool) -> None:
        n = 0
        headers = {"Authorization": f"Bearer {API_KEY}"}
        path = f"{self.url}/replay/v1/channels/{self.channel}/messages"
        while not self.stopping:
            try:
                async with self.http.post(path, json={"data": n}, headers=headers) as response:
                    self.statuses.add(response.status)
                    if response.status == 201:
                        body = await response.json()
                        self.acked.append((body["offset"], body["epoch"], n))
                        self.progress.set()
                    else:
                        await asyncio.sleep(0.01)  # 503 while Redis is away: try the next one
            except (aiohttp.ClientError, ConnectionError):
                if until_error:
                    return
                await asyncio.sleep(0.01)
            n += 1

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.acked) < count:
                self.progress.clear()
                await self.progress.wait()


@contextlib.asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    # A fresh connection per request: a pooled one could outlive the node it points at.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield http


async def get(http: aiohttp.ClientSession, url: str, path: str) -> Any:
    """GET with the API key, retrying while the store answers 503 (it may be restarting)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with asyncio.timeout(10):
        while True:
            async with http.get(url + path, headers=headers) as response:
                if response.status != 503:
                    assert response.status == 200, await response.text()
                    return await response.json()
            await asyncio.sleep(0.05)


async def history(http: aiohttp.ClientSession, url: str, channel: str) -> dict[str, Any]:
    """The whole retained history of a channel, paged (HIS-8), with the last page's state."""
    messages: list[dict[str, Any]] = []
    start = "beginning"
    while True:
        body = await get(http, url, f"/replay/v1/channels/{channel}/messages?from={start}")
        messages += body["messages"]
        if not body["messages"] or messages[-1]["offset"] >= body["head"]:
            return {**body, "messages": messages}
        start = f"{messages[-1]['offset'] + 1}&epoch={body['epoch']}"  # an offset needs its epoch


def assert_all_acknowledged_kept(acked: list[tuple[int, str, int]], after: dict[str, Any]) -> None:
    """DUR-1, DUR-2: every acknowledged publish is there, at its offset, in its epoch."""
    assert len(acked) >= ENOUGH
    assert {epoch for _, epoch, _ in acked} == {after["epoch"]}
    offsets = [offset for offset, _, _ in acked]
    assert offsets == sorted(offsets)  # one publisher: acknowledged in order
    stored = {m["offset"]: m["data"] for m in after["messages"]}
    assert [m["offset"] for m in after["messages"]] == list(range(1, after["head"] + 1))
    assert all(stored.get(offset) == n for offset, _, n in acked)


async def test_sigkilled_node_loses_no_acknowledged_publish(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", aof=True) as redis, node(redis.url(), tmp_path) as n:
        async with http_session() as http:
            publisher = Publisher(http, n.url)
            publishing = asyncio.create_task(publisher.run(until_error=True))
            await publisher.wait_for(ENOUGH)
            n.kill()  # SIGKILL while publishes are in flight
            await asyncio.wait_for(publishing, 10)
            lines = n.start()
            assert lines[1] == f"store: {redis.url()} (durable: true)"
            assert (await get(http, n.url, "/replay/v1/info"))["durable"] is True  # INF-4
            assert_all_acknowledged_kept(publisher.acked, await history(http, n.url, "stream"))


async def test_sigkilled_redis_with_aof_loses_no_acknowledged_publish(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", aof=True) as redis, node(redis.url(), tmp_path) as n:
        async with http_session() as http:
            publisher = Publisher(http, n.url)
            publishing = asyncio.create_task(publisher.run(until_error=False))
            await publisher.wait_for(ENOUGH // 2)
            redis.kill()  # SIGKILL of redis-server itself, appendfsync always
            await asyncio.sleep(0.2)  # the node answers 503 meanwhile
            redis.start()
            await publisher.wait_for(ENOUGH)  # the same node publishes again
            publisher.stopping = True
            await asyncio.wait_for(publishing, 10)
            assert publisher.statuses == {201, 503}  # unavailable, never internal (§4.1)
            assert_all_acknowledged_kept(publisher.acked, await history(http, n.url, "stream"))


async def test_restarted_redis_without_aof_gives_every_channel_a_new_epoch(
    tmp_path: Path,
) -> None:
    channels = ["a", "b", "c:1"]
    with running_redis(tmp_path / "redis", aof=False) as redis, node(redis.url(), tmp_path) as n:
        async with http_session() as http:
            assert (await get(http, n.url, "/replay/v1/info"))["durable"] is False  # INF-4
            before = {}
            for channel in channels:
                headers = {"Authorization": f"Bearer {API_KEY}"}
                path = f"{n.url}/replay/v1/channels/{channel}/messages"
                async with http.post(path, json={"data": 1}, headers=headers) as response:
                    assert response.status == 201
                    before[channel] = (await response.json())["epoch"]
            redis.restart()  # SIGKILL, start again: the history is gone
            for channel in channels:
                after = await history(http, n.url, channel)
                assert after["epoch"] != before[channel]  # DUR-3, EPO-3
                assert (after["first"], after["head"], after["messages"]) == (None, 0, [])
