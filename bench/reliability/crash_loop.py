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
from bench.reliability.ledger import Ledger, Verdict, judge_channel, totals
from bench.reliability.processes import RedisProcess
from bench.reliability.result import PartResult

NAME = "crash-loop"
FULL_KILLS = 100
CHANNELS = ("crash:a", "crash:b")
PUBLISHERS = 6
LIFETIME_S = (0.1, 0.8)  # how long a node serves before its SIGKILL
SPARES = 2  # nodes starting while one serves: a start takes longer than a lifetime
DRAIN_TIMEOUT_S = 60.0  # for the retries still open when the kills stop


class Relay(Route):
    """The node the publishers talk to now; a kill moves it to the next one, and a publish the
    kill left unanswered is retried there, by its id."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._moved = asyncio.Event()

    def move(self, backend: Backend) -> None:
        self.backend = backend
        self._moved.set()
        self._moved = asyncio.Event()

    async def unanswered(self, backend: Backend) -> bool:
        while self.backend is backend:  # wait for the next node
            await self._moved.wait()
        return True


@dataclass
class Tally:
    seed: int
    answers: Answers
    kills: int = 0
    nodes: int = 0
    anomalies: list[str] = field(default_factory=list)


async def run(budget_s: float) -> PartResult:
    """SIGKILL nodes until ``FULL_KILLS`` or ``budget_s``; then read back and judge."""
    seed = campaign_seed()
    tally = Tally(seed, Answers(seed))
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
            stop = asyncio.Event()
            async with http_session() as http:
                relay = Relay(Backend(http, current.url))
                workers = [
                    asyncio.create_task(
                        publisher(f"w{w}", relay, CHANNELS, ledger, tally.answers, stop)
                    )
                    for w in range(PUBLISHERS)
                ]
                while tally.kills < FULL_KILLS and time.monotonic() - started < budget_s:
                    await asyncio.sleep(rng.uniform(*LIFETIME_S))
                    following = await spares.pop(0)
                    await current.kill()
                    tally.kills += 1
                    relay.move(Backend(http, following.url))
                    current = following
                    spares.append(asyncio.create_task(fresh_node()))
                killing_s = time.monotonic() - started
                stop.set()
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await asyncio.gather(*workers)
                verdicts = [
                    judge_channel(ledger, c, await relay.backend.history(c)) for c in CHANNELS
                ]
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
    answers = tally.answers
    counts, anomalies = totals(verdicts, answers.publishes)
    per_minute = tally.kills * 60 / max(killing_s, 1e-9)
    counts |= {
        "seed": tally.seed,
        "kills": tally.kills,
        "kills_per_minute": round(per_minute),
        "nodes_started": tally.nodes,
        **answers.counts(),
        "duplicate_answers": ledger.duplicate_answers,
    }
    anomalies += tally.anomalies + answers.anomalies + ledger.anomalies
    summary = (
        f"{tally.kills} SIGKILLs in {killing_s:.0f} s ({per_minute:.0f}/min, seed {tally.seed}); "
        f"{counts['acknowledged']:,} publishes acknowledged ({answers.unanswered} cut by a kill "
        f"and retried, {ledger.duplicate_answers} of them already stored); {counts['lost']} lost, "
        f"{counts['duplicated']} duplicated, {counts['gaps']} gaps, "
        f"{counts['epoch_changes']} epoch changes"
    )
    return PartResult(NAME, summary, counts, anomalies)
