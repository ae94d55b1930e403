"""Live fan-out: one publisher, K subscribers on one channel.

    python bench/live_fanout.py                          # K = 100, 2,000 messages at 200/s
    python bench/live_fanout.py --subscribers 20 --rate 1000

Prints delivered messages per second (summed over subscribers) and the p50/p99 latency from
sending a publish to each subscriber receiving it. Publisher and subscribers share this
process's clock; the server runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
import socketio
from _server import Backend, reference_server

CHANNEL = "bench:fanout"


async def main(subscribers: int, messages: int, rate: float, store: str) -> None:
    async with reference_server(store) as (url, api_key), aiohttp.ClientSession() as http:
        backend = Backend(http, url, api_key)
        latencies: list[float] = []
        remaining = subscribers * messages
        all_delivered = asyncio.Event()

        def on_messages(event: dict[str, Any]) -> None:
            nonlocal remaining
            now = time.perf_counter()
            for message in event["messages"]:
                latencies.append(now - message["data"]["sent"])
            remaining -= len(event["messages"])
            if remaining == 0:
                all_delivered.set()

        clients = []
        for _ in range(subscribers):
            client = socketio.AsyncClient(reconnection=False)
            client.on("replay:messages", on_messages)
            await client.connect(
                url, auth={"token": await backend.register()}, transports=["websocket"]
            )
            reply = await client.call("replay:subscribe", {"channel": CHANNEL, "from": "latest"})
            assert reply["ok"], reply
            clients.append(client)

        interval = 1 / rate
        started = time.perf_counter()
        pending = set()
        for n in range(messages):
            # Open loop: publish on schedule whatever the replies do, like real producers.
            due = started + n * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(
                backend.publish(CHANNEL, {"n": n, "sent": time.perf_counter()})
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        try:
            await asyncio.wait_for(all_delivered.wait(), 60)
        except TimeoutError:
            # Overloaded: usually this process's clients, which then miss Engine.IO pings and
            # are disconnected. Report what arrived rather than nothing.
            dropped = sum(1 for client in clients if not client.connected)
            print(f"incomplete: {remaining:,} deliveries missing, {dropped} clients disconnected")
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.disconnect()

        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        delivered = subscribers * messages - remaining
        print(f"{subscribers} subscribers, {messages:,} messages published at {rate:,.0f}/s")
        rate_out = delivered / elapsed
        print(f"delivered {delivered:,} messages in {elapsed:.2f} s: {rate_out:,.0f} messages/s")
        worst = latencies[-1] * 1000
        print(f"publish-to-deliver latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="publishes per second")
    parser.add_argument("--store", default="memory")
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.messages, args.rate, args.store))
