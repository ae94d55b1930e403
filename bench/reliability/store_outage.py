"""Part ``store-outage``: ``redis-server`` (AOF, ``appendfsync always``) is SIGKILLed and
started again on its port, over and over, while publishers on two reference nodes publish by
``id`` and one python-socketio subscriber per node follows the channels.

During an outage every request must be answered within ``ANSWER_BOUND_S``, with a typed
``unavailable`` (HTTP 503 and the error body of API-4, or the Socket.IO error reply) or a
success, never a 500 or a hang; publishers retry by the same ``id`` until acknowledged.
Afterwards nothing acknowledged is lost or stored twice, the channel keeps its epoch (with AOF
always no history is lost, DUR-2), and each subscriber's stream is dense, in order and caught
up, resubscribing where the server ended a subscription (LIF-5). Outages are timed by a seeded
``random.Random``; the Redis port and directory stay, as an operator's restart would keep them.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.fleet import (
    Answers,
    Backend,
    NodeProcess,
    Route,
    campaign_seed,
    http_session,
    log_anomalies,
    publisher,
)
from bench.reliability.ledger import Ledger, Verdict, stream_totals, totals
from bench.reliability.processes import RedisProcess
from bench.reliability.resubscriber import Resubscriber, settle
from bench.reliability.result import PartResult

NAME = "store-outage"
FULL_OUTAGES = 10
NODES = 2
PUBLISHERS_PER_NODE = 2
CHANNELS = ("outage:a", "outage:b")
UP_S = (1.0, 2.5)  # Redis serves this long between outages
DOWN_S = (0.3, 2.0)  # and is away this long
PROBE_PAUSE_S = 0.05
CATCH_UP_S = 30.0
GRANTS = [{"channels": "outage:*", "actions": ["subscribe", "history"]}]


@dataclass
class Tally:
    seed: int
    answers: Answers
    outages: int = 0
    down_s: float = 0.0
    socket_requests: int = 0
    socket_unavailable: int = 0
    anomalies: list[str] = field(default_factory=list)


async def prober(follower: Resubscriber, tally: Tally, stop: asyncio.Event) -> None:
    """Ask for history over Socket.IO until ``stop``: an ok or a typed ``unavailable`` each time."""
    while not stop.is_set():
        payload = {"channel": CHANNELS[0], "from": "beginning", "limit": 1}
        reply = await follower.ask("replay:history", payload)
        tally.socket_requests += 1
        if reply is not None and not reply.get("ok"):
            if reply.get("error", {}).get("code") == "unavailable":
                tally.socket_unavailable += 1
            else:
                tally.anomalies.append(f"{follower.name}: replay:history answered {reply}")
        await asyncio.sleep(PROBE_PAUSE_S)


async def outages(redis: RedisProcess, rng: random.Random, tally: Tally, budget_s: float) -> None:
    started = time.monotonic()
    while tally.outages < FULL_OUTAGES and time.monotonic() - started < budget_s:
        await asyncio.sleep(rng.uniform(*UP_S))
        await redis.kill()
        down = time.monotonic()
        tally.outages += 1
        await asyncio.sleep(rng.uniform(*DOWN_S))
        await redis.start()
        tally.down_s += time.monotonic() - down
    await asyncio.sleep(rng.uniform(*UP_S))  # a last stretch with Redis up


async def run(budget_s: float) -> PartResult:
    """``FULL_OUTAGES`` Redis crashes, or as many as fit ``budget_s``; then judge."""
    seed = campaign_seed()
    tally = Tally(seed, Answers(seed))
    rng = random.Random(tally.seed)
    ledger = Ledger()
    followers = [Resubscriber(f"subscriber-{i + 1}", CHANNELS) for i in range(NODES)]
    with tempfile.TemporaryDirectory(prefix="store-outage-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        nodes = [NodeProcess(redis.url, Path(tmp) / f"node-{i + 1}.log") for i in range(NODES)]
        try:
            await redis.start()
            urls = [await node.start() for node in nodes]
            async with http_session() as http:
                backends = [Backend(http, url) for url in urls]
                verdicts = await _attack(backends, followers, redis, rng, ledger, tally, budget_s)
        finally:
            for follower in followers:
                await follower.close()
            for node in nodes:
                await node.kill()
            await redis.kill()
        for node in nodes:
            tally.anomalies += log_anomalies(node.log)
    return _result(tally, ledger, verdicts, followers)


async def _attack(
    backends: list[Backend], followers: list[Resubscriber], redis: RedisProcess,
    rng: random.Random, ledger: Ledger, tally: Tally, budget_s: float,
) -> list[Verdict]:  # fmt: skip
    for i, (backend, follower) in enumerate(zip(backends, followers, strict=True)):
        await follower.join(backend, f"outage-{tally.seed}-{i}", GRANTS)
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(
            publisher(f"n{i}p{p}", Route(backend), CHANNELS, ledger, tally.answers, stop)
        )
        for i, backend in enumerate(backends)
        for p in range(PUBLISHERS_PER_NODE)
    ]
    workers += [asyncio.create_task(prober(f, tally, stop)) for f in followers]
    await outages(redis, rng, tally, budget_s)
    stop.set()
    return await settle(workers, backends[0], CHANNELS, followers, ledger, CATCH_UP_S)


def _result(
    tally: Tally, ledger: Ledger, verdicts: list[Verdict], followers: list[Resubscriber]
) -> PartResult:
    answers = tally.answers
    counts, anomalies = totals(verdicts, answers.publishes)
    streamed, stream_anomalies = stream_totals([s for f in followers for s in f.streams.values()])
    counts |= {
        "seed": tally.seed,
        "outages": tally.outages,
        "down_ms": round(tally.down_s * 1000),
        **answers.counts(),
        **streamed,
        "subscribes": sum(f.subscribes for f in followers),
        "subscribe_unavailable": sum(f.unavailable_replies for f in followers),
        "ended_unavailable": sum(f.reasons["unavailable"] for f in followers),
        "socket_requests": tally.socket_requests,
        "socket_unavailable": tally.socket_unavailable,
        "slowest_socket_reply_ms": round(max(f.slowest_reply_s for f in followers) * 1000),
    }
    anomalies += tally.anomalies + answers.anomalies + ledger.anomalies + stream_anomalies
    anomalies += [a for f in followers for a in f.anomalies]
    summary = (
        f"{tally.outages} Redis SIGKILLs ({tally.down_s:.0f} s down, seed {tally.seed}); "
        f"{answers.requests:,} HTTP requests, {answers.unavailable:,} answered unavailable, "
        f"slowest {answers.slowest_s:.1f} s; {tally.socket_requests:,} Socket.IO requests, "
        f"{tally.socket_unavailable:,} answered unavailable; {counts['acknowledged']:,} "
        f"acknowledged, {counts['lost']} lost, {counts['duplicated']} duplicated, "
        f"{counts['epoch_changes']} epoch changes; {counts['delivered']:,} delivered to "
        f"{len(followers)} subscribers ({counts['ended_unavailable']} subscriptions ended "
        f"unavailable and resumed), {counts['stream_gaps']} gaps, "
        f"{counts['stream_duplicates']} duplicates"
    )
    return PartResult(NAME, summary, counts, anomalies)
