"""Part ``partition``: three reference nodes on one Redis, one of them (node 1) behind a
``FaultProxy`` that cuts, stalls and delays its link to Redis on a seeded schedule, while a
publisher and a subscriber on every node publish by ``id`` and follow the channels.

During each fault a victim socket on node 1 is revoked through node 2: its session deleted
(SES-15: disconnected) or re-registered with grants that no longer cover its channel (ACC-6:
``replay:unsubscribed`` ``revoked``). The revocation must take effect within 1 s of the later
of its answer and the heal (CLU-4), and no message may reach the victim after it. Afterwards
every subscriber, node 1's included, must have caught up with everything published on any
node, densely and in order (the node resynchronises by itself), and nothing acknowledged may
be lost or stored twice. The proxy runs in this process, between node 1 and Redis only, so
the other nodes see a healthy store and keep publishing through the partition.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import socketio

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
from conformance.faults import FaultProxy

NAME = "partition"
FULL_FAULTS = 30
NODES = 3
CHANNELS = ("part:a", "part:b")
REVOKED, KEPT = CHANNELS
FAULT_S = (0.5, 3.0)
LONG_STALL_S = 6.0  # past the store's 5 s socket timeout, one fault in LONG_SHARE
LONG_SHARE = 0.15
QUIET_S = (0.3, 1.2)
EFFECT_BOUND_S = 1.0  # CLU-4, SES-15, ACC-6
EFFECT_WAIT_S = 15.0
CATCH_UP_S = 40.0
FOLLOW = [{"channels": "part:*", "actions": ["subscribe", "history"]}]
NARROWED = [{"channels": KEPT, "actions": ["subscribe"]}]


@dataclass
class Tally:
    seed: int
    faults: dict[str, int] = field(default_factory=lambda: {"cut": 0, "stall": 0, "delay": 0})
    revocations: dict[str, int] = field(default_factory=lambda: {"delete": 0, "narrow": 0})
    slowest_effect_s: float = 0.0
    stale: int = 0
    anomalies: list[str] = field(default_factory=list)


async def fault(proxy: FaultProxy, rng: random.Random, tally: Tally) -> tuple[str, float]:
    """Start a seeded fault on the link; its kind and how long it lasts."""
    kind = rng.choice(sorted(tally.faults))
    tally.faults[kind] += 1
    duration = rng.uniform(*FAULT_S)
    if kind == "cut":
        await proxy.cut()
        proxy.refuse()  # and no new connection until the heal
    elif kind == "stall":
        duration = LONG_STALL_S if rng.random() < LONG_SHARE else duration
        proxy.stall()
    else:
        proxy.delay(rng.uniform(0.02, 0.4), rng.uniform(0, 0.2), seed=rng.randrange(2**32))
    return kind, duration


async def revocation(
    n: int, proxy: FaultProxy, via: Backend, node: Backend, rng: random.Random, tally: Tally
) -> None:
    """One fault on node 1's link with one revocation through node 2 during it, judged."""
    session = f"victim-{tally.seed}-{n}"
    registered = await via.register(session, FOLLOW)
    victim = await _connect(session, node, registered.body["token"])
    try:
        kind, duration = await fault(proxy, rng, tally)
        await asyncio.sleep(duration / 2)
        how = rng.choice(sorted(tally.revocations))
        tally.revocations[how] += 1
        if how == "delete":
            answer = await via.delete(session)
        else:
            answer = await via.register(session, NARROWED)
        revoked_at = time.monotonic()
        if answer.status not in (200, 204):
            tally.anomalies.append(f"{how} of {session} answered {answer.status}")
        await asyncio.sleep(duration / 2)
        proxy.heal()
        healed_at = time.monotonic()
        what = f"{how} of {session} during a {duration:.1f} s {kind}"
        effect = await _effect(victim, how, EFFECT_WAIT_S)
        if effect is None:
            tally.anomalies.append(f"{what}: no effect {EFFECT_WAIT_S:.0f} s after the heal")
            return
        late = effect - max(revoked_at, healed_at)
        tally.slowest_effect_s = max(tally.slowest_effect_s, late)
        if late > EFFECT_BOUND_S:
            tally.anomalies.append(f"{what}: took effect {late:.2f} s after the heal")
        stream = victim.streams[REVOKED]
        await asyncio.sleep(rng.uniform(*QUIET_S))  # time for a stale delivery to show
        tally.stale += stream.stale
        tally.anomalies += [f"{what}: {a}" for a in victim.anomalies + stream.anomalies]
    finally:
        proxy.heal()
        await victim.close()


async def _connect(session: str, node: Backend, token: str) -> Resubscriber:
    """A victim connected to node 1 and subscribed, retrying while node 1 still recovers from
    the last fault (a connect is refused while its store is unreachable)."""
    async with asyncio.timeout(EFFECT_WAIT_S):
        while True:
            victim = Resubscriber(session, (REVOKED,))
            try:
                await victim.start(node.base.removesuffix("/replay/v1"), token)
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.2)
                continue
            if await victim.subscribed():
                return victim
            await victim.close()


async def _effect(victim: Resubscriber, how: str, timeout_s: float) -> float | None:
    """When the revocation reached the victim: its disconnect, or its ``revoked`` end."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if how == "delete" and victim.disconnected_at is not None:
            return victim.disconnected_at
        if how == "narrow" and victim.reasons["revoked"]:
            return victim.ended_at[REVOKED]
        await asyncio.sleep(0.01)
    return None


async def run(budget_s: float) -> PartResult:
    """``FULL_FAULTS`` faults, or as many as fit ``budget_s``; then judge every stream."""
    tally = Tally(seed=campaign_seed())
    answers = Answers(tally.seed)
    rng = random.Random(tally.seed)
    ledger = Ledger()
    followers = [Resubscriber(f"subscriber-{i + 1}", CHANNELS) for i in range(NODES)]
    with tempfile.TemporaryDirectory(prefix="partition-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        proxy: FaultProxy | None = None
        nodes: list[NodeProcess] = []
        try:
            await redis.start()
            proxy = FaultProxy("127.0.0.1", redis.port)
            await proxy.start()
            stores = [f"redis://127.0.0.1:{proxy.port}/0"] + [redis.url] * (NODES - 1)
            nodes = [NodeProcess(s, Path(tmp) / f"node-{i + 1}.log") for i, s in enumerate(stores)]
            urls = [await node.start() for node in nodes]
            async with http_session() as http:
                backends = [Backend(http, url) for url in urls]
                verdicts = await _attack(
                    backends, followers, proxy, rng, ledger, tally, answers, budget_s
                )
        finally:
            for follower in followers:
                await follower.close()
            for node in nodes:
                await node.kill()
            if proxy is not None:
                await proxy.close()
            await redis.kill()
        for node in nodes:
            tally.anomalies += log_anomalies(node.log)
    return _result(tally, answers, ledger, verdicts, followers)


async def _attack(
    backends: list[Backend], followers: list[Resubscriber], proxy: FaultProxy, rng: random.Random,
    ledger: Ledger, tally: Tally, answers: Answers, budget_s: float,
) -> list[Verdict]:  # fmt: skip
    for i, (backend, follower) in enumerate(zip(backends, followers, strict=True)):
        await follower.join(backend, f"follower-{tally.seed}-{i}", FOLLOW)
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(publisher(f"n{i}", Route(backend), CHANNELS, ledger, answers, stop))
        for i, backend in enumerate(backends)
    ]
    started, n = time.monotonic(), 0
    while n < FULL_FAULTS and time.monotonic() - started < budget_s:
        n += 1
        await revocation(n, proxy, backends[1], backends[0], rng, tally)
    stop.set()
    return await settle(workers, backends[1], CHANNELS, followers, ledger, CATCH_UP_S)


def _result(
    tally: Tally, answers: Answers, ledger: Ledger, verdicts: list[Verdict],
    followers: list[Resubscriber],
) -> PartResult:  # fmt: skip
    counts, anomalies = totals(verdicts, answers.publishes)
    streamed, stream_anomalies = stream_totals([s for f in followers for s in f.streams.values()])
    faults = sum(tally.faults.values())
    counts |= {
        "seed": tally.seed,
        "faults": faults,
        **{f"faults_{k}": v for k, v in tally.faults.items()},
        **{f"revoked_{k}": v for k, v in tally.revocations.items()},
        "slowest_effect_ms": round(tally.slowest_effect_s * 1000),
        "stale": tally.stale,
        **answers.counts(),
        **streamed,
        "resubscribes": sum(f.subscribes for f in followers) - len(CHANNELS) * len(followers),
    }
    anomalies += tally.anomalies + answers.anomalies + ledger.anomalies + stream_anomalies
    anomalies += [a for f in followers for a in f.anomalies]
    kinds = ", ".join(f"{v} {k}" for k, v in tally.faults.items())
    summary = (
        f"{faults} faults on one node's Redis link ({kinds}; seed {tally.seed}); "
        f"{counts['revoked_delete']} deletes and {counts['revoked_narrow']} narrowed grants, "
        f"slowest effect {tally.slowest_effect_s:.2f} s after the heal, {tally.stale} stale "
        f"deliveries; {counts['acknowledged']:,} acknowledged ({answers.unavailable} unavailable "
        f"answers), {counts['lost']} lost, {counts['duplicated']} duplicated; "
        f"{counts['delivered']:,} delivered to {len(followers)} subscribers, "
        f"{counts['stream_gaps']} gaps, {counts['stream_duplicates']} duplicates"
    )
    return PartResult(NAME, summary, counts, anomalies)
