"""Part ``crash-loop``: a publishing reference node on Redis (AOF, ``appendfsync always``) is
SIGKILLed again and again while concurrent publishers send publishes that each carry a unique
``id``; every publish whose answer was lost is retried, by the same ``id``, on the next node (a
new process), until acknowledged. Afterwards every channel is read back and judged: nothing
acknowledged lost, no ``id`` stored twice, dense offsets, one epoch.

The next node is started before the current one is killed (several nodes on one Redis is a
supported deployment, CLU-1), so a kill costs no start-up time and 100 kills fit in minutes;
the node's lifetime before its kill is drawn from a seeded ``random.Random``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.reliability.fleet import (
    Backend,
    NodeProcess,
    RedisProcess,
    campaign_seed,
    http_session,
    is_unavailable,
    log_anomalies,
)
from bench.reliability.ledger import Ledger, Verdict, judge_channel, totals
from bench.reliability.result import PartResult

NAME = "crash-loop"
FULL_KILLS = 100
CHANNELS = ("crash:a", "crash:b")
PUBLISHERS = 6
LIFETIME_S = (0.1, 0.8)  # how long a node serves before its SIGKILL
SPARES = 2  # nodes starting while one serves: a start takes longer than a lifetime
PAUSE_S = 0.005  # between one publisher's publishes, so the starting nodes get CPU too
DRAIN_TIMEOUT_S = 60.0  # for the retries still open when the kills stop


@dataclass
class Relay:
    """The node the publishers talk to now; a kill moves it to the next one."""

    url: str
    moved: asyncio.Event = field(default_factory=asyncio.Event)

    def move(self, url: str) -> None:
        self.url = url
        self.moved.set()
        self.moved = asyncio.Event()

    async def away_from(self, url: str) -> None:
        """Wait until the relay points at another node than ``url``."""
        while self.url == url:
            await self.moved.wait()


@dataclass
class Tally:
    seed: int
    kills: int = 0
    nodes: int = 0
    publishes: int = 0
    unanswered: int = 0  # requests a kill cut (no HTTP answer)
    unavailable: int = 0
    anomalies: list[str] = field(default_factory=list)


async def publisher(
    worker: int, http: aiohttp.ClientSession, relay: Relay, ledger: Ledger, tally: Tally,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    """Publish unique ids until ``stop``; each one retried by its id until acknowledged."""
    n = 0
    while not stop.is_set():
        n += 1
        channel, message_id = CHANNELS[n % len(CHANNELS)], f"{tally.seed}-{worker}-{n}"
        data = {"worker": worker, "n": n}
        ledger.send(channel, message_id, data)
        tally.publishes += 1
        while True:
            url = relay.url
            answer = await Backend(http, url).publish(channel, message_id, data)
            if answer.status in (200, 201):
                ledger.acknowledge(channel, message_id, answer.body)
                await asyncio.sleep(PAUSE_S)
                break
            if answer.status == 0:  # the node died under it: retry on a fresh one
                tally.unanswered += 1
                await relay.away_from(url)
            elif is_unavailable(answer):
                tally.unavailable += 1
                await asyncio.sleep(0.05)
            else:
                tally.anomalies.append(f"publish {message_id} answered {answer.status}: "
                                       f"{answer.body}")  # fmt: skip
                break


async def run(budget_s: float) -> PartResult:
    """SIGKILL nodes until ``FULL_KILLS`` or ``budget_s``; then read back and judge."""
    tally = Tally(seed=campaign_seed())
    rng = random.Random(tally.seed)
    ledger = Ledger()
    nodes: list[NodeProcess] = []
    with tempfile.TemporaryDirectory(prefix="crash-loop-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")

        async def fresh_node() -> NodeProcess:
            node = NodeProcess(redis.url, Path(tmp) / f"node-{len(nodes) + 1}.log")
            nodes.append(node)
            await node.start()
            return node

        started = time.monotonic()
        spares: list[asyncio.Task[NodeProcess]] = []
        try:
            await redis.start()
            current = await fresh_node()
            spares += [asyncio.create_task(fresh_node()) for _ in range(SPARES)]
            relay, stop = Relay(current.url), asyncio.Event()
            async with http_session() as http:
                workers = [asyncio.create_task(publisher(w, http, relay, ledger, tally, stop))
                           for w in range(PUBLISHERS)]  # fmt: skip
                while tally.kills < FULL_KILLS and time.monotonic() - started < budget_s:
                    await asyncio.sleep(rng.uniform(*LIFETIME_S))
                    following = await spares.pop(0)
                    await current.kill()
                    tally.kills += 1
                    relay.move(following.url)
                    current = following
                    spares.append(asyncio.create_task(fresh_node()))
                killing_s = time.monotonic() - started
                stop.set()
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await asyncio.gather(*workers)
                backend = Backend(http, current.url)
                verdicts = [judge_channel(ledger, c, await backend.history(c)) for c in CHANNELS]
        finally:
            for spare in spares:
                with contextlib.suppress(Exception):
                    await spare
            for node in nodes:
                await node.kill()
            await redis.kill()
        for node in nodes:
            tally.anomalies += log_anomalies(node.log)
    tally.nodes = len(nodes)
    return _result(tally, ledger, verdicts, killing_s)


def _result(tally: Tally, ledger: Ledger, verdicts: list[Verdict], killing_s: float) -> PartResult:
    counts, anomalies = totals(verdicts, tally.publishes)
    per_minute = tally.kills * 60 / max(killing_s, 1e-9)
    counts |= {
        "seed": tally.seed,
        "kills": tally.kills,
        "kills_per_minute": round(per_minute),
        "nodes_started": tally.nodes,
        "publishes": tally.publishes,
        "unanswered": tally.unanswered,
        "duplicate_answers": ledger.duplicate_answers,
        "unavailable": tally.unavailable,
    }
    anomalies += tally.anomalies + ledger.anomalies
    summary = (
        f"{tally.kills} SIGKILLs in {killing_s:.0f} s ({per_minute:.0f}/min, seed {tally.seed}); "
        f"{counts['acknowledged']:,} publishes acknowledged ({tally.unanswered} cut by a kill and "
        f"retried, {ledger.duplicate_answers} of them already stored); {counts['lost']} lost, "
        f"{counts['duplicated']} duplicated, {counts['gaps']} gaps, "
        f"{counts['epoch_changes']} epoch changes"
    )
    return PartResult(NAME, summary, counts, anomalies)
