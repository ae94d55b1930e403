"""Batch publish throughput over HTTP (spec §4.8): messages/s into one channel.

    python bench/batch_publish.py                 # 100,000 messages, batches of 1,000, 4 in flight
    python bench/batch_publish.py --store redis   # a redis-server of its own, on a free port
    python bench/batch_publish.py --store redis://127.0.0.1:6379/0 --batch 500 --concurrency 8

The reference runs in its own process (``_server.reference_server``); this process posts
``POST /replay/v1/channels/{channel}/batches`` with C batches in flight and checks that the
channel ends with exactly the messages sent, at dense offsets. A single-server benchmark: the
stock socket.io peer has no batch route to compare with (``publish.py`` is the single-publish
figure). Numbers are for comparing changes on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
from _redis import redis_url
from _server import reference_server


@contextlib.contextmanager
def store_url(store: str) -> Iterator[str]:
    """``store`` as given, or for ``redis`` a ``redis-server`` of this run's own, stopped after."""
    if store != "redis":
        yield store
        return
    with redis_url() as url:
        yield url


async def publish_all(url: str, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    channel = f"bench-batch-{secrets.token_hex(4)}"
    route = f"{url}/replay/v1/channels/{channel}/batches"
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    padding = "x" * args.payload
    bodies = [
        json.dumps({"messages": [{"data": {"n": n, "pad": padding}}
                                 for n in range(start, min(start + args.batch, args.messages))]})
        for start in range(0, args.messages, args.batch)
    ]  # fmt: skip
    queue: asyncio.Queue[str] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    answers_ms: list[float] = []
    offsets: list[int] = []

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            sent = time.perf_counter()
            async with http.post(route, data=body, headers=headers) as response:
                answer = await response.json()
                assert response.status == 201, answer
            answers_ms.append((time.perf_counter() - sent) * 1000)
            offsets.extend(r["offset"] for r in answer["results"])

    async with aiohttp.ClientSession() as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
    assert sorted(offsets) == list(range(1, args.messages + 1)), "offsets are not dense"
    cuts = statistics.quantiles(answers_ms, n=100) if len(answers_ms) > 1 else answers_ms * 99
    return {
        "messages": args.messages,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "messages_per_s": args.messages / elapsed,
        "answer_p50_ms": cuts[49],
        "answer_p99_ms": cuts[98],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with store_url(args.store) as store:
        async with reference_server(store) as (url, api_key):
            return await publish_all(url, api_key, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="memory", help="memory, redis, or a store URL")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="messages per request")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per message")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(
        f"batch publish, store {args.store}: {args.messages:,} messages of ~{args.payload} B in"
        f" batches of {args.batch:,}, {args.concurrency} in flight"
    )
    print(f"messages/s:  {figures['messages_per_s']:>10,.0f}")
    print(f"answer p50:  {figures['answer_p50_ms']:>10,.1f} ms per batch")
    print(f"answer p99:  {figures['answer_p99_ms']:>10,.1f} ms per batch")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"benchmark": "batch_publish", "store": args.store, **figures}, out)


if __name__ == "__main__":
    main()
