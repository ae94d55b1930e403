"""One worker process of the reconnect storm: runs many ``Follower`` clients on one event loop.

It speaks JSON lines. stdin gives the setup ``{"url", "token", "channels", "clients",
"first"}``, then ``{"heads": {channel: head}, "killed_at": t, "wait_s": s}`` once the
publisher stopped. stdout answers ``{"ready": n}`` once every client is connected and
subscribed, then one ``{"clients": [...], "counts": {...}, "cpu_s": s}`` with each client's
times (``time.monotonic``, one clock for every process of the machine), the verdict on its
stream, and the CPU time the worker used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

from bench.reliability.follower import Follower
from bench.reliability.raw_protocol import check_order

CONNECTS_AT_ONCE = 50  # the first connects only: the storm after the restart is not paced


async def _line() -> dict[str, Any]:
    raw = await asyncio.to_thread(sys.stdin.readline)
    return dict(json.loads(raw))


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _first_connect(follower: Follower, gate: asyncio.Semaphore) -> None:
    async with gate:
        await follower.connect()


def verdict(follower: Follower, heads: dict[str, int], killed_at: float) -> dict[str, Any]:
    """One client's times (from the kill) and problems, judged against the final heads."""
    problems = list(follower.problems)
    for channel in follower.channels:
        for problem in check_order(follower.offsets[channel], heads.get(channel, 0)):
            problems.append(f"{channel}: {problem}")
    caught = follower.caught_up_at - killed_at if follower.caught_up_at > killed_at else None
    return {
        "reconnected_s": follower.connected_at - killed_at,
        "caught_up_s": caught,
        "received": sum(len(o) for o in follower.offsets.values()),
        "problems": problems,
    }


async def main() -> None:
    setup = await _line()
    channels: list[str] = setup["channels"]
    first, url, token = setup["first"], setup["url"], setup["token"]
    followers = [
        Follower(url, token, [channels[(first + i) % len(channels)]], seed=first + i)
        for i in range(setup["clients"])
    ]
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    await asyncio.gather(*(_first_connect(f, gate) for f in followers))
    stop = asyncio.Event()
    runs = [asyncio.ensure_future(f.follow(stop, connected=True)) for f in followers]
    _say({"ready": len(followers)})
    final = await _line()
    heads: dict[str, int] = final["heads"]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(final["wait_s"]):
            await asyncio.gather(
                *(f.wait_for({c: heads[c] for c in f.channels}) for f in followers)
            )
    counts: Counter[str] = Counter()
    for follower in followers:
        counts.update(follower.counts)
    results = [verdict(f, heads, final["killed_at"]) for f in followers]
    _say({"clients": results, "counts": dict(counts), "cpu_s": time.process_time()})
    stop.set()
    await asyncio.gather(*(f.close() for f in followers), return_exceptions=True)
    for run in runs:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
