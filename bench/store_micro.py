"""Micro-benchmark of the stores: appends/s and catch-up read messages/s.

    python bench/store_micro.py                      # MemoryStore, 100,000 messages
    python bench/store_micro.py --messages 2000 --store mongomock
    python bench/store_micro.py --store redis://127.0.0.1:6379/0   # a running redis-server

Numbers are for comparing changes on one machine, not for asserting anything.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from typing import Any

from reference.core.payloads import encode_payload
from reference.store import Store, open_store


def _store(kind: str) -> Store:
    if kind != "mongomock":
        return open_store(kind)  # memory, redis://..., mongodb://...
    from mongomock_motor import AsyncMongoMockClient

    from reference.store.mongo import MongoStore

    db: Any = AsyncMongoMockClient()["bench"]  # its stubs claim Motor's types, not ours
    return MongoStore(db)


async def run(kind: str, messages: int, batch: int) -> None:
    store = _store(kind)
    await store.open()
    payload = encode_payload({"text": "hello", "n": 12345, "tags": ["a", "b"]}, 1 << 16)
    run_id = secrets.token_hex(4)  # fresh channels on a shared server
    channel, keyed = f"bench-{run_id}", f"bench-ids-{run_id}"

    began = time.perf_counter()
    for _ in range(messages):
        await store.append(channel, payload, None)
    append_s = time.perf_counter() - began

    began = time.perf_counter()
    for i in range(messages):
        await store.append(keyed, payload, f"id-{i}")
    keyed_s = time.perf_counter() - began

    began = time.perf_counter()
    start, read = 1, 0
    while True:
        result = await store.read(channel, start, batch)
        if not result.messages:
            break
        read += len(result.messages)
        start = result.messages[-1].offset + 1
    read_s = time.perf_counter() - began
    assert read == messages
    await store.close()

    print(f"store={kind} messages={messages} batch={batch}")
    print(f"append (server ids):   {messages / append_s:>12,.0f} msg/s")
    print(f"append (publisher ids): {messages / keyed_s:>11,.0f} msg/s")
    print(f"catch-up read:         {read / read_s:>12,.0f} msg/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", default="memory", help="memory, mongomock, or a redis:// or mongodb:// URL"
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.store, args.messages, args.batch))


if __name__ == "__main__":
    main()
