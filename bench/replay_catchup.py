"""Catch-up throughput: N messages in one channel, one client subscribes from offset 1.

    python bench/replay_catchup.py                 # N = 100,000 on the embedded store
    python bench/replay_catchup.py --messages 20000 --payload 200

Prints messages per second from the subscribe until the last offset arrives, measured by a
python-socketio client in this process against a server in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import socketio
from _server import Backend, reference_server


async def main(messages: int, payload: int, store: str) -> None:
    async with reference_server(store) as (url, api_key), aiohttp.ClientSession() as http:
        backend = Backend(http, url, api_key)
        started = time.perf_counter()
        await backend.fill(
            "bench:catchup", ({"n": n, "pad": "x" * payload} for n in range(messages))
        )
        fill_s = time.perf_counter() - started
        print(
            f"filled {messages:,} messages of ~{payload} B in {fill_s:.1f} s "
            f"({messages / fill_s:,.0f} publishes/s over HTTP, 32 in flight)"
        )

        token = await backend.register()
        client = socketio.AsyncClient(reconnection=False)
        done = asyncio.Event()
        received = 0
        batches = 0

        def on_messages(event: dict[str, Any]) -> None:
            nonlocal received, batches
            received += len(event["messages"])
            batches += 1
            if event["messages"][-1]["offset"] == messages:
                done.set()

        client.on("replay:messages", on_messages)
        await client.connect(url, auth={"token": token}, transports=["websocket"])
        started = time.perf_counter()
        reply = await client.call(
            "replay:subscribe", {"channel": "bench:catchup", "from": "beginning"}
        )
        assert reply["ok"], reply
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        await client.disconnect()
        assert received == messages, (received, messages)
        print(
            f"caught up {received:,} messages in {elapsed:.2f} s: "
            f"{received / elapsed:,.0f} messages/s ({batches:,} replay:messages events)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--payload", type=int, default=64, help="bytes of padding per message")
    parser.add_argument("--store", default="memory")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.payload, args.store))
