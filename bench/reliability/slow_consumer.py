"""Part ``slow-consumer``: one subscriber stops reading at the TCP level while 100,000
messages are published (batches of 999 plus one single publish per round); three other
subscribers keep reading, and their delivery latency is compared with a baseline run of a
fresh node without the stalled one.

Why it is built this way: the stalled subscriber is a real python-socketio client behind a
``FaultProxy`` that stops forwarding server-to-client bytes, so the proxy stops reading and
the node's kernel send buffer fills, as for a peer whose network or event loop froze; the
node's memory is judged against the baseline node's, which stores the same messages, so the
bound isolates what the node holds for the stalled socket (FLW-2); latency is judged against
FLW-4's 5 seconds, the spec's own bound, far above this machine's baseline, so a busy machine
does not make the part fail.

Anomalies: a message a subscriber lost, got twice or out of order, the stalled one included
once it reads again (FLW-1); a live message reaching a reading subscriber more than 5 s after
its publish was answered (FLW-4); the node's peak RSS above the baseline's by more than
``RSS_ALLOWANCE`` (FLW-2); a subscription ended with a reason other than ``lagging``
(LIF-4); a failed publish; a traceback or an error in the node's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.reliability.backend import Backend
from bench.reliability.follower import Follower
from bench.reliability.processes import ReferenceNode, RssSampler
from bench.reliability.raw_protocol import check_order
from bench.reliability.result import PartResult, quantile
from conformance.faults import Direction, FaultProxy

NAME = "slow-consumer"
CHANNEL = "slow"
MESSAGES = int(os.environ.get("RELIABILITY_SLOW_MESSAGES", "100000"))
ROUND = 1000  # one batch of ROUND - 1 entries, then one single publish
ROUND_S = 0.2  # pace: 5,000 messages/s, which the three readers in this process keep up with
PAYLOAD = "x" * 1000  # buffering the stalled rest would cost ~95 MB, 3x RSS_ALLOWANCE
READERS = 3
FLW4_BOUND_S = 5.0
RSS_ALLOWANCE = 32 * 1024 * 1024
STALL_AFTER_S = 5.0  # the stalled socket stays stalled this long after the last publish
CATCH_UP_S = 60.0
PHASE_OVERHEAD_S = 15.0  # a phase's node start, connects, catch-up and stop, roughly
PING_TIMEOUT_S = 45.0  # the reference's Engine.IO ping interval + ping timeout


@dataclass
class Phase:
    """One node's run: what was published when, what each reader got, the node's memory."""

    answered: list[float] = field(default_factory=list)  # by offset - 1
    latencies: list[float] = field(default_factory=list)
    rss_peak: int = 0
    slow: dict[str, Any] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)


def latencies(answered: list[float], offsets: list[int], arrived: list[float]) -> list[float]:
    """Each delivered message's arrival minus the time its publish was answered."""
    return [at - answered[o - 1] for o, at in zip(offsets, arrived, strict=True)
            if 0 < o <= len(answered)]  # fmt: skip


def judge_latency(values: list[float], bound_s: float, who: str) -> list[str]:
    """FLW-4: every reading subscriber gets each live message within ``bound_s``."""
    late = [v for v in values if v > bound_s]
    if not late:
        return []
    return [f"{who}: {len(late):,} of {len(values):,} messages later than {bound_s:g} s "
            f"(worst {max(late):.2f} s)"]  # fmt: skip


def judge_outcome(outcome: str, stall_s: float) -> list[str]:
    """A stalled socket is paused (FLW-2) or ended ``lagging`` (LIF-4); its connection may end
    only once the Engine.IO ping timeout explains it (RES-3), not for its backlog."""
    if outcome != "disconnected" or stall_s >= PING_TIMEOUT_S:
        return []
    return [f"the stalled subscriber's connection ended after a {stall_s:.1f} s stall, before "
            f"the ping timeout ({PING_TIMEOUT_S:g} s) and without replay:unsubscribed"]  # fmt: skip


def judge_rss(peak: int, baseline: int, allowance: int) -> list[str]:
    """FLW-2: the node holds a bounded amount for a stalled socket, not its stream."""
    if peak <= baseline + allowance:
        return []
    mib = 1024 * 1024
    return [f"node RSS peaked at {peak / mib:.0f} MiB, above the baseline's "
            f"{baseline / mib:.0f} MiB + {allowance / mib:.0f} MiB"]  # fmt: skip


async def publish_all(backend: Backend, phase: Phase, until: float) -> None:
    """Publish ``MESSAGES``, or as many as the time until ``until`` (loop time) allows."""
    loop = asyncio.get_running_loop()
    entry = {"data": {"pad": PAYLOAD}}
    while len(phase.answered) < MESSAGES and loop.time() < until:
        due = loop.time() + ROUND_S
        count = min(ROUND - 1, MESSAGES - len(phase.answered))
        status, body = await backend.batch(CHANNEL, [entry] * count)
        if status != 201 or body["results"][0]["offset"] != len(phase.answered) + 1:
            raise RuntimeError(f"a batch answered {status} {str(body)[:300]}")
        phase.answered.extend([time.monotonic()] * count)
        if len(phase.answered) < MESSAGES:
            status, body = await backend.publish(CHANNEL, entry["data"])
            if status != 201 or body["offset"] != len(phase.answered) + 1:
                raise RuntimeError(f"a publish answered {status} {body}")
            phase.answered.append(time.monotonic())
        await asyncio.sleep(max(0.0, due - loop.time()))


async def run_phase(stalled: bool, publish_s: float) -> Phase:
    """A fresh node, ``READERS`` readers (and one stalled subscriber), every message that
    ``publish_s`` seconds of publishing allow."""
    phase = Phase()
    node = ReferenceNode(secrets.token_hex(16))
    rss = RssSampler(lambda: node.pid, interval_s=0.1)
    proxy = FaultProxy("127.0.0.1", node.port)
    stop = asyncio.Event()
    followers: list[Follower] = []
    runs: list[asyncio.Task[None]] = []
    try:
        await node.start()
        await proxy.start()
        rss.start()
        async with aiohttp.ClientSession() as http:
            backend = Backend(http, node.url, node.api_key)
            token = await backend.register(CHANNEL)
            followers = [Follower(node.url, token, [CHANNEL], stamp=True) for _ in range(READERS)]
            slow = Follower(proxy.url, token, [CHANNEL]) if stalled else None
            for follower in followers + ([slow] if slow else []):
                await follower.connect()
                runs.append(asyncio.ensure_future(follower.follow(stop, connected=True)))
            until = asyncio.get_running_loop().time() + publish_s
            publishing = asyncio.ensure_future(publish_all(backend, phase, until))
            if slow is not None:  # stall mid-stream, once it has read a tenth
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CATCH_UP_S):
                        await _first_of_done(publishing, slow.wait_for({CHANNEL: MESSAGES // 10}))
                proxy.stall(Direction.DOWN)
                stalled_at = time.monotonic()
            await publishing
            everything = {CHANNEL: len(phase.answered)}
            with contextlib.suppress(TimeoutError):  # a reader short of it is judged below
                async with asyncio.timeout(CATCH_UP_S):
                    await asyncio.gather(*(f.wait_for(everything) for f in followers))
            if slow is not None:
                await asyncio.sleep(STALL_AFTER_S)
                phase.slow = await resume_reading(slow, proxy, len(phase.answered))
                phase.slow["stall_s"] = stall_s = time.monotonic() - stalled_at
                phase.anomalies += judge_outcome(phase.slow["outcome"], stall_s)
        phase.rss_peak = rss.peak
        for n, follower in enumerate(followers + ([slow] if slow else [])):
            who = f"reader {n}" if follower is not slow else "the stalled subscriber"
            phase.anomalies += [f"{who}: {p}" for p in follower.problems]
            order = check_order(follower.offsets[CHANNEL], len(phase.answered))
            phase.anomalies += [f"{who}: {p}" for p in order]
            if follower is not slow:
                values = latencies(phase.answered, follower.offsets[CHANNEL],
                                   follower.arrived[CHANNEL])  # fmt: skip
                phase.latencies += values
                if stalled:
                    phase.anomalies += judge_latency(values, FLW4_BOUND_S, who)
        phase.anomalies += node.problems
    finally:
        stop.set()
        await asyncio.gather(*(f.close() for f in followers), return_exceptions=True)
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await rss.stop()
        await proxy.close()
        await node.stop()
    return phase


async def _first_of_done(publishing: asyncio.Future[None], reached: Any) -> None:
    """Wait for ``reached``; a publisher that failed first raises its error."""
    waiting = asyncio.ensure_future(reached)
    await asyncio.wait([publishing, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if publishing.done():
        publishing.result()


async def resume_reading(slow: Follower, proxy: FaultProxy, published: int) -> dict[str, Any]:
    """Heal the stall; what the stalled subscriber had then, and how it got the rest."""
    had = len(slow.offsets[CHANNEL])
    held = sum(c.held_down for c in proxy.connections)
    healed = time.monotonic()
    proxy.heal()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CATCH_UP_S):
            await slow.wait_for({CHANNEL: published})
    outcome = ("ended lagging" if slow.counts["unsubscribed_lagging"]
               else "disconnected" if slow.counts["reconnects"] else "paused")  # fmt: skip
    return {"had": had, "held_bytes": held, "catch_up_s": time.monotonic() - healed,
            "outcome": outcome, "reconnects": slow.counts["reconnects"],
            "lagging": slow.counts["unsubscribed_lagging"]}  # fmt: skip


async def run(budget_s: float) -> PartResult:
    """A baseline phase, then the stalled one, each publishing for at most its share of
    ``budget_s`` (the full 100,000 messages take about 20 s)."""
    publish_s = max(5.0, budget_s / 2 - PHASE_OVERHEAD_S - STALL_AFTER_S)
    baseline = await run_phase(stalled=False, publish_s=publish_s)
    stalled = await run_phase(stalled=True, publish_s=publish_s)
    anomalies = baseline.anomalies + stalled.anomalies
    anomalies += judge_rss(stalled.rss_peak, baseline.rss_peak, RSS_ALLOWANCE)
    return _result(baseline, stalled, anomalies)


def _ms(values: list[float], q: float) -> int:
    return round(1000 * (quantile(values, q) or 0.0))


def _result(baseline: Phase, stalled: Phase, anomalies: list[str]) -> PartResult:
    slow, mib = stalled.slow, 1024 * 1024
    summary = (
        f"{len(stalled.answered):,} messages ({len(baseline.answered):,} in the baseline) to "
        f"{READERS} readers and one subscriber stalled at TCP; reader "
        f"latency p50/p99 {_ms(baseline.latencies, 0.5)}/{_ms(baseline.latencies, 0.99)} ms "
        f"without it, {_ms(stalled.latencies, 0.5)}/{_ms(stalled.latencies, 0.99)} ms with it "
        f"(bound {FLW4_BOUND_S:g} s); node RSS peak {baseline.rss_peak / mib:.0f} MiB without, "
        f"{stalled.rss_peak / mib:.0f} MiB with (bound +{RSS_ALLOWANCE / mib:.0f} MiB); the "
        f"stalled one had {slow.get('had', 0):,} when it read again after "
        f"{slow.get('stall_s', 0.0):.1f} s ({slow.get('outcome')}), "
        f"then got the rest in {slow.get('catch_up_s', 0.0):.1f} s"
    )
    counts = {
        "messages": len(stalled.answered),
        "baseline_messages": len(baseline.answered),
        "baseline_p50_ms": _ms(baseline.latencies, 0.5),
        "baseline_p99_ms": _ms(baseline.latencies, 0.99),
        "stalled_p50_ms": _ms(stalled.latencies, 0.5),
        "stalled_p99_ms": _ms(stalled.latencies, 0.99),
        "stalled_max_ms": _ms(stalled.latencies, 1.0),
        "baseline_rss_peak": baseline.rss_peak,
        "stalled_rss_peak": stalled.rss_peak,
        "slow_had": slow.get("had", 0),
        "slow_held_bytes": slow.get("held_bytes", 0),
        "slow_stall_ms": round(1000 * slow.get("stall_s", 0.0)),
        "slow_reconnects": slow.get("reconnects", 0),
        "slow_lagging": slow.get("lagging", 0),
        "readers_received": len(stalled.latencies),
    }
    return PartResult(NAME, summary, counts, anomalies)
