"""The library against real servers through the suite's FaultProxy: a Hypothesis-drawn
schedule of cuts, stalls and delays while the backend publishes, after which every message
has reached the application exactly once, in order, and the position store is at the head.

Against the reference (in-process, with a short Engine.IO ping, so that long stalls also end
connections) and against the Node.js adapter (``adapters/node/bin/replay-server.js``, its
default 25 s ping, so there stalls stay shorter than the ping and only cuts end
connections). Each test prints its tally (``-s``) and writes it to ``reports/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from replay_client_support import REFERENCE_KEY, Application, Backend, Tally, eventually
from replay_client_support import reference_on as reference
from suite_runs import ROOT, serving

from conformance.faults import FaultProxy
from replay_client import MemoryPositions, Position, ReplayClient, connect

NODE_PACKAGE = ROOT / "adapters" / "node"
NODE_KEY = "replay-client-node-key"
RUNS = 3  # Hypothesis examples per target: a test stays under a minute
CUTS = (7, 9)  # per run, so that a test forces at least 21 disconnects
Step = tuple[Any, ...]


def schedules(max_stall: float) -> st.SearchStrategy[list[Step]]:
    """Cuts (then a pause), stalls (then heal) and delay windows, in a random order."""
    cut = st.tuples(st.just("cut"), st.floats(0.05, 0.5))
    stall = st.tuples(st.just("stall"), st.floats(0.1, max_stall))
    delay = st.tuples(st.just("delay"), st.floats(0.005, 0.15), st.floats(0.2, 0.8))
    return st.tuples(
        st.lists(cut, min_size=CUTS[0], max_size=CUTS[1]),
        st.lists(st.one_of(stall, delay), min_size=2, max_size=5),
    ).flatmap(lambda parts: st.permutations(parts[0] + parts[1]))


async def apply(step: Step, proxy: FaultProxy, client: ReplayClient, tally: Tally) -> None:
    if step[0] == "cut":
        await eventually(lambda: client.online, 15)
        before = client.stats.disconnects
        await proxy.cut()
        await eventually(lambda: client.stats.disconnects > before, 10)
        await asyncio.sleep(step[1])
    elif step[0] == "stall":
        proxy.stall()
        tally.stalls += 1
        await asyncio.sleep(step[1])
        proxy.heal()
    else:
        proxy.delay(step[1], step[1] / 2)
        tally.delays += 1
        await asyncio.sleep(step[2])
        proxy.heal()


async def survive(url: str, api_key: str, schedule: list[Step], tally: Tally) -> None:
    """One run: subscribe through the proxy, publish during the schedule, check the result."""
    port = urlsplit(url).port
    assert port is not None
    channel = f"faults-{uuid.uuid4().hex[:8]}"
    positions = MemoryPositions()
    app = Application()
    async with aiohttp.ClientSession() as http, FaultProxy("127.0.0.1", port) as proxy:
        backend = Backend(url, api_key, http)
        client = await connect(
            proxy.url, backend.get_token(channel), positions=positions,
            min_delay=0.02, max_delay=0.25, reset_after=1.0, connect_timeout=2.0,
        )  # fmt: skip
        try:
            sub = app.watch(client.subscribe(channel, on_messages=app.on_messages))
            await app.until(lambda: sub.state == "subscribed")
            published: list[dict[str, Any]] = []
            stop = asyncio.Event()

            async def publish() -> None:
                while not stop.is_set():
                    published.append(await backend.publish(channel, {"n": len(published) + 1}))
                    await asyncio.sleep(0.005)

            publisher = asyncio.create_task(publish())
            for step in schedule:
                await apply(step, proxy, client, tally)
            stop.set()
            await publisher
            proxy.heal()
            head, epoch = published[-1]["offset"], published[-1]["epoch"]
            await app.until(lambda: len(app.delivered) >= head, 30)
            await asyncio.sleep(0.2)  # a repeated or extra message would arrive by now
        finally:
            await client.close()
    assert [offset for _, offset, _ in app.delivered] == list(range(1, head + 1))
    assert all(e == epoch and data == {"n": n} for e, n, data in app.delivered)
    assert await positions.get(channel) == Position(epoch, head)
    assert sub.stats.gaps == 0 and sub.stats.delivered == head
    assert backend.token_calls == client.stats.connects + client.stats.refused
    tally.runs += 1
    tally.disconnects += client.stats.disconnects
    tally.messages += head
    tally.duplicates_dropped += sub.stats.duplicates


def run_schedules(tally: Tally, max_stall: float, url_of: Any) -> None:
    """Hypothesis draws RUNS schedules; each runs on a fresh event loop."""

    @settings(
        max_examples=RUNS, deadline=None, database=None,
        phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(schedule=schedules(max_stall))
    def run(schedule: list[Step]) -> None:
        asyncio.run(url_of(schedule))

    run()
    tally.write()
    assert tally.runs == RUNS
    assert tally.disconnects >= 20, tally


def test_fault_schedules_against_the_reference() -> None:
    tally = Tally("reference")

    async def one_run(schedule: list[Step]) -> None:
        # A short ping, so that a stall longer than 1.5 s also ends the connection.
        async with reference(0, ping_interval_s=0.5, ping_timeout_s=1.0) as url:
            await survive(url, REFERENCE_KEY, schedule, tally)

    run_schedules(tally, 2.5, one_run)


@pytest.fixture(scope="module")
def node_server() -> Iterator[str]:
    """The Node.js adapter on the memory store (``npm ci`` in adapters/node first)."""
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed"
    elif not (NODE_PACKAGE / "node_modules" / "socket.io").is_dir():
        reason = "adapters/node has no node_modules: run `npm ci` there"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert node is not None
    script = str(NODE_PACKAGE / "bin" / "replay-server.js")
    with serving([node, script, "--host", "127.0.0.1", "--api-key", NODE_KEY]) as url:
        yield url


def test_fault_schedules_against_the_node_adapter(node_server: str) -> None:
    tally = Tally("node-adapter")

    async def one_run(schedule: list[Step]) -> None:
        await survive(node_server, NODE_KEY, schedule, tally)

    # Stalls below the adapter's 25 s ping: they hold traffic, cuts end connections.
    run_schedules(tally, 1.5, one_run)
