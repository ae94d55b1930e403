"""Publish throughput of three reference nodes on a three-shard Redis Cluster next to three
nodes on one Redis: the same load, in the same run.

    python bench/cluster_throughput.py                  # 6,000 publishes, 48 channels, 32 in flight
    python bench/cluster_throughput.py --messages 20000 --concurrency 64 --json c.json

For each setup this starts its own Redis (one ``redis-server``, or three masters with one
replica each, ``bench/_redis.py``), three ``python -m reference`` processes on it, and posts
single publishes round-robin over the nodes and over the channels (whose slots spread over
every shard), C in flight, then checks that every channel holds dense offsets. A single-server
benchmark: there is no stock peer to compare with.

On one small machine the cluster's six ``redis-server`` processes share the cores with the
three nodes and this load process, so the figure shows that the cluster path works under load
and what it costs, not how it scales: the scaling happens when each shard has its own machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import Any

import _report as report
import aiohttp
from _redis import redis_cluster_url, redis_url
from _server import reference_server

NODES = 3


@contextlib.asynccontextmanager
async def nodes(store: str) -> AsyncIterator[list[tuple[str, str]]]:
    """``NODES`` reference processes on ``store``; yields their (url, api key)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(reference_server(store)) for _ in range(NODES)]


async def publish_all(targets: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    run = secrets.token_hex(4)  # fresh channels: the warm-up's offsets are not this run's
    channels = [f"bench-cluster-{run}-{n}" for n in range(args.channels)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.messages):
        queue.put_nowait(n)
    answers_ms: list[float] = []
    offsets: dict[str, list[int]] = {channel: [] for channel in channels}
    padding = "x" * args.payload

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            url, api_key = targets[n % len(targets)]
            channel = channels[n % len(channels)]
            sent = time.perf_counter()
            async with http.post(
                f"{url}/replay/v1/channels/{channel}/messages",
                json={"data": {"n": n, "pad": padding}},
                headers={"Authorization": f"Bearer {api_key}"},
            ) as response:
                answer = await response.json()
                assert response.status == 201, answer
            answers_ms.append((time.perf_counter() - sent) * 1000)
            offsets[channel].append(answer["offset"])

    async with aiohttp.ClientSession() as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
    for channel, seen in offsets.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), f"{channel}: offsets not dense"
    cuts = statistics.quantiles(answers_ms, n=100)
    return {
        "publishes_per_s": args.messages / elapsed,
        "answer_p50_ms": cuts[49],
        "answer_p99_ms": cuts[98],
    }


SETUPS: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "3 nodes, one Redis": redis_url,
    "3 nodes, 3-shard cluster": redis_cluster_url,
}


async def measure(
    setup: Callable[[], AbstractContextManager[str]], args: argparse.Namespace
) -> Any:
    with setup() as store:
        async with nodes(store) as targets:
            await publish_all(targets, _warm_up(args))
            return {"store": store.split("://")[0], **await publish_all(targets, args)}


def _warm_up(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "messages": max(args.messages // 10, 100)})


def main(args: argparse.Namespace) -> None:
    results = [
        {"target": name, **asyncio.run(measure(setup, args))} for name, setup in SETUPS.items()
    ]
    rows = [
        [
            r["target"],
            report.number(r["publishes_per_s"]),
            report.number(r["answer_p50_ms"], " ms"),
            report.number(r["answer_p99_ms"], " ms"),
        ]
        for r in results
    ]
    report.print_table(
        f"publish through {NODES} nodes: {args.messages:,} publishes of ~{args.payload} B over"
        f" {args.channels} channels, {args.concurrency} in flight",
        ["setup", "publishes/s", "answer p50", "answer p99"],
        rows,
    )

    def draw(axes: Any) -> None:
        axes.bar([r["target"] for r in results], [r["publishes_per_s"] for r in results],
                 label=f"publishes/s, {args.concurrency} in flight")  # fmt: skip
        axes.set_ylabel("publishes/s")
        axes.set_title("three nodes: one Redis vs a three-shard cluster")

    report.write_outputs(args, "cluster_throughput", results, draw)


def parse() -> argparse.Namespace:
    parser = report.bench_parser(__doc__)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=32, help="publishes in flight")
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per message")
    args = parser.parse_args()
    if args.store != "memory":
        parser.error("--store: this benchmark starts its own Redis and Redis Cluster")
    return args


if __name__ == "__main__":
    main(parse())
