"""Part ``reconnect-storm``: 2,000 Socket.IO clients follow 50 channels of a node on a real
``redis-server`` (append-only file, fsync always); the node is SIGKILLed and started again on
its port while a publisher keeps publishing, and every client reconnects at once and resumes
from its last offset + 1 with that offset's epoch.

Why it is built this way: SIGKILL, not SIGTERM, because a crash closes every socket in the
same instant (the kernel does it) and lets the node say goodbye to none, which is the worst
storm a deploy can cause; python-socketio clients in a few worker processes, not Node, so
that the client that judges its own stream is the campaign's one ``Follower`` (2,000 of them
connect in about 20 s on this 2-core machine, which is what the part needs, not raw speed);
the publisher gives every message an ``id`` and retries it until answered, so a publish lost
with the node is retried without a duplicate (IDM-6) and "acknowledged" stays exact.

Anomalies: a client that lost, duplicated or reordered a message (its offsets are not
exactly 1..head), saw an epoch change (the store is durable: DUR-2), did not reconnect or
catch up; an ``id`` stored at two offsets; ``GET /replay/v1/info`` failing while the node is
up; a traceback or an error in the node's log. ``rate_limited`` and ``unavailable`` answers
are allowed (EVT-11) and counted: the client retries them with backoff, as it retries a
refused connect.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.reliability.backend import Backend
from bench.reliability.processes import RedisProcess, ReferenceNode, RssSampler, cpu_seconds
from bench.reliability.result import PartResult, quantile, seconds

NAME = "reconnect-storm"
CLIENTS = int(os.environ.get("RELIABILITY_STORM_CLIENTS", "2000"))
WORKERS = 4
CHANNELS = [f"storm.{n}" for n in range(50)]
PRELOAD = 20  # messages per channel before the clients connect
PUBLISH_INTERVAL_S = 0.01  # 100 messages/s, round-robin over the channels
BEFORE_KILL_S = 3.0
AFTER_RESTART_S = 10.0
CATCH_UP_WAIT_S = 60.0  # at most, after the publisher stopped: a stuck client fails the part
PROBE_INTERVAL_S = 0.25
PROBE_TIMEOUT_S = 5.0
RETRY_S = 0.05
MAX_LISTED = 20  # anomalies of one kind listed before the rest are summed up


@dataclass
class Tally:
    published: int = 0
    publish_retries: int = 0
    heads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0))
    stored_at: dict[str, int] = field(default_factory=dict)  # id -> offset
    info_ok: int = 0
    info_failed: int = 0
    info_slowest_s: float = 0.0  # the slowest answer while the node was up
    anomalies: list[str] = field(default_factory=list)
    node_up: bool = True

    def acknowledged(self, channel: str, message_id: str, offset: int) -> None:
        """Record an answered publish; an ``id`` answered at two offsets is a duplicate."""
        seen = self.stored_at.setdefault(message_id, offset)
        if seen != offset:
            self.anomalies.append(f"{channel}: id {message_id} stored at {seen} and {offset}")
        self.heads[channel] = max(self.heads[channel], offset)


async def publish_until_answered(backend: Backend, channel: str, n: int, tally: Tally) -> None:
    message_id = f"{channel}-{n}"
    while True:
        try:
            status, body = await backend.publish(channel, {"n": n}, message_id)
        except (aiohttp.ClientError, OSError, TimeoutError):
            status, body = 0, None
        if status in (200, 201):
            tally.published += status == 201
            tally.acknowledged(channel, message_id, body["offset"])
            return
        if status >= 500 and status != 503 and tally.node_up:
            tally.anomalies.append(f"publish {message_id} answered {status} {body}")
        tally.publish_retries += 1
        await asyncio.sleep(RETRY_S)


async def publisher(backend: Backend, stop: asyncio.Event, tally: Tally) -> None:
    n = PRELOAD
    while not stop.is_set():
        n += 1
        for channel in CHANNELS:
            if stop.is_set():
                return
            await publish_until_answered(backend, channel, n, tally)
            await asyncio.sleep(PUBLISH_INTERVAL_S)


async def prober(backend: Backend, tally: Tally) -> None:
    """``GET /info`` throughout; a failure counts as an anomaly only while the node is up."""
    while True:
        up, asked = tally.node_up, time.monotonic()
        try:
            status = await backend.info_status(PROBE_TIMEOUT_S)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, problem = 0, repr(exc)
        else:
            problem = f"answered {status}"
        if status == 200:
            tally.info_ok += 1
            if up and tally.node_up:
                tally.info_slowest_s = max(tally.info_slowest_s, time.monotonic() - asked)
        else:
            tally.info_failed += 1
            if up and tally.node_up and len(tally.anomalies) < 100:
                tally.anomalies.append(f"GET /replay/v1/info {problem} while the node was up")
        await asyncio.sleep(PROBE_INTERVAL_S)


async def preload(backend: Backend, tally: Tally) -> None:
    for channel in CHANNELS:
        ids = [f"{channel}-{n}" for n in range(1, PRELOAD + 1)]
        entries: list[dict[str, Any]] = [{"data": {"n": n}, "id": i} for n, i in enumerate(ids, 1)]
        status, body = await backend.batch(channel, entries)
        if status != 201:
            raise RuntimeError(f"preloading {channel} answered {status} {body}")
        for message_id, result in zip(ids, body["results"], strict=True):
            tally.acknowledged(channel, message_id, result["offset"])
        tally.published += len(entries)


class Worker:
    """One ``storm_worker`` process and its JSON-lines pipe."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, setup: dict[str, Any]) -> None:
        with self.log.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.reliability.storm_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
                limit=64 * 1024 * 1024,
            )  # fmt: skip
        self.send(setup)

    @property
    def pid(self) -> int:
        return 0 if self.process is None else self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())

    async def receive(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"a storm worker exited: {tail}")
        return dict(json.loads(line))

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def judge_clients(clients: list[dict[str, Any]]) -> list[str]:
    """The anomalies in the workers' per-client verdicts: problems, no reconnect, no catch-up."""
    problems: list[str] = []
    for index, client in enumerate(clients):
        problems.extend(f"client {index}: {p}" for p in client["problems"])
        if client["reconnected_s"] <= 0:
            problems.append(f"client {index}: did not reconnect after the restart")
        elif client["caught_up_s"] is None:
            problems.append(f"client {index}: did not catch up after the restart")
    if len(problems) > MAX_LISTED:
        problems[MAX_LISTED:] = [f"... and {len(problems) - MAX_LISTED} more client anomalies"]
    return problems


class Unfinished(Exception):
    """A wait of the part ran past its budget: the part reports it as its one anomaly."""


async def run(budget_s: float) -> PartResult:
    """Storm a fresh node on Redis with ``CLIENTS`` clients; ``budget_s`` bounds each wait."""
    try:
        return await _storm(budget_s)
    except Unfinished as exc:
        return PartResult(NAME, f"unfinished: {exc}", {"clients": CLIENTS}, [str(exc)])


async def _storm(budget_s: float) -> PartResult:
    tally = Tally()
    counts: Counter[str] = Counter()
    clients: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
        redis = RedisProcess(Path(tmp))
        node = ReferenceNode(secrets.token_hex(16), store=redis.url)
        workers = [Worker(Path(tmp) / f"worker-{n}.log") for n in range(WORKERS)]
        rss = RssSampler(lambda: node.pid)
        side: list[asyncio.Task[None]] = []
        try:
            await redis.start()
            await node.start()
            if not node.durable:
                tally.anomalies.append("the node on Redis with AOF does not report durable")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                backend = Backend(http, node.url, node.api_key)
                await preload(backend, tally)
                started = time.monotonic()
                share = -(-CLIENTS // WORKERS)
                for n, worker in enumerate(workers):
                    token = await backend.register("storm.*", client_id=f"storm-{n}")
                    size = min(share, CLIENTS - n * share)
                    await worker.start({"url": node.url, "token": token, "channels": CHANNELS,
                                        "clients": size, "first": n * share})  # fmt: skip
                ready = await _receive_all(workers, budget_s, "connect and subscribe")
                counts["ready"] = sum(r["ready"] for r in ready)
                connect_s = time.monotonic() - started
                rss.start()
                stop = asyncio.Event()
                side = [asyncio.ensure_future(prober(backend, tally)),
                        asyncio.ensure_future(publisher(backend, stop, tally))]  # fmt: skip
                await asyncio.sleep(BEFORE_KILL_S)
                counts["rss_before"] = rss.peak
                tally.node_up = False
                killed_at = time.monotonic()
                clients_cpu = sum(cpu_seconds(w.pid) for w in workers)
                await node.stop(signal.SIGKILL)
                await node.start()
                restart_s = time.monotonic() - killed_at
                rss.reset()
                tally.node_up = True
                await asyncio.sleep(AFTER_RESTART_S)
                stop.set()
                await side[1]
                wait_s = min(CATCH_UP_WAIT_S, max(10.0, budget_s - (time.monotonic() - started)))
                for worker in workers:
                    worker.send({"heads": tally.heads, "killed_at": killed_at, "wait_s": wait_s})
                results = await _receive_all(workers, wait_s + 30, "report their verdicts")
                # Which side the storm costs more: the clients' processes or the node's one core.
                clients_cpu = sum(r["cpu_s"] for r in results) - clients_cpu  # they exit now
                counts["clients_cpu_ms"] = round(1000 * clients_cpu)
                counts["node_cpu_ms"] = round(1000 * cpu_seconds(node.pid))  # since its restart
                if not node.running():
                    tally.anomalies.append(f"the node exited with {node.process.returncode}")  # type: ignore[union-attr]
                counts["rss_after"] = rss.peak
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await rss.stop()
            for worker in workers:
                await worker.stop()
            await node.stop(signal.SIGTERM)
            await redis.stop()
    for result in results:
        clients.extend(result["clients"])
        counts.update(result["counts"])
    anomalies = tally.anomalies + judge_clients(clients) + node.problems
    last_caught = max((c["caught_up_s"] or 0.0 for c in clients), default=0.0)
    # How busy the node was from its restart until the last client caught up: near 100%
    # means the storm is bound by the node's one core, not by the clients.
    counts["node_busy_pct"] = round(100 * rss.busy(killed_at + restart_s, killed_at + last_caught))
    return _result(tally, counts, clients, anomalies, connect_s, restart_s)


async def _receive_all(workers: list[Worker], limit_s: float, what: str) -> list[dict[str, Any]]:
    try:
        async with asyncio.timeout(limit_s):
            return [await w.receive() for w in workers]
    except TimeoutError:
        raise Unfinished(f"the workers' clients did not {what} within {limit_s:g} s") from None


def _result(tally: Tally, counts: Counter[str], clients: list[dict[str, Any]],
            anomalies: list[str], connect_s: float, restart_s: float) -> PartResult:  # fmt: skip
    caught = [c["caught_up_s"] for c in clients if c["caught_up_s"] is not None]
    back = [c["reconnected_s"] for c in clients if c["reconnected_s"] > 0]
    received = sum(c["received"] for c in clients)
    lossy = sum(1 for c in clients if c["problems"])
    mib = 1024 * 1024
    summary = (
        f"{len(clients):,} clients on {len(CHANNELS)} channels (connected in {connect_s:.1f} s); "
        f"node SIGKILLed and back in {restart_s:.1f} s; reconnected p50 "
        f"{seconds(quantile(back, 0.5))}, caught up p50 {seconds(quantile(caught, 0.5))} "
        f"p99 {seconds(quantile(caught, 0.99))} max {seconds(quantile(caught, 1.0))} after "
        f"the kill; {tally.published:,} published, {received:,} delivered, {lossy:,} clients "
        f"with loss/duplicates/reordering; {counts['rate_limited']:,} rate_limited and "
        f"{counts['unavailable']:,} unavailable answers retried, "
        f"{counts['connect_retries']:,} connect retries, {counts['epoch_changes']:,} epoch "
        f"changes; info {tally.info_ok:,} ok/{tally.info_failed:,} failed (slowest while up "
        f"{tally.info_slowest_s:.2f} s); node busy {counts['node_busy_pct']}% of a core until "
        f"the last caught up; CPU from the kill on: clients {counts['clients_cpu_ms'] / 1000:.0f} "
        f"s, node {counts['node_cpu_ms'] / 1000:.0f} s; node RSS peak "
        f"{counts['rss_before'] / mib:.0f} MiB before, {counts['rss_after'] / mib:.0f} MiB after"
    )
    numbers = {
        "clients": len(clients),
        "caught_up": len(caught),
        "published": tally.published,
        "publish_retries": tally.publish_retries,
        "delivered": received,
        "clients_with_problems": lossy,
        "info_ok": tally.info_ok,
        "info_failed": tally.info_failed,
        "info_slowest_ms": round(1000 * tally.info_slowest_s),
        "caught_up_p50_ms": round(1000 * (quantile(caught, 0.5) or 0)),
        "caught_up_p99_ms": round(1000 * (quantile(caught, 0.99) or 0)),
        "caught_up_max_ms": round(1000 * (quantile(caught, 1.0) or 0)),
        "connect_ms": round(1000 * connect_s),
        "restart_ms": round(1000 * restart_s),
        # the followers' counters, each present even at 0
        **{
            k: 0
            for k in (
                "reconnects",
                "connect_retries",
                "rate_limited",
                "unavailable",
                "epoch_changes",
            )
        },
        **counts,
    }
    return PartResult(NAME, summary, numbers, anomalies)
