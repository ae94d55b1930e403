"""The JavaScript client library (clients/js) against the reference, through the fault proxy.

Python plays the backend (it publishes, sets retention, restarts the server) and the network
(conformance's FaultProxy cuts, stalls and delays the client's TCP connection on a seeded
random schedule); clients/js/test/drive.mjs is the application, reading through the library.
Every published message must reach it exactly once, in order, and its position store must end
at the head. The numbers of each run are printed (``-s``) and written to reports/.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from harness import API_KEY
from js_client_peer import CLIENT_DIR, ROOT, JsDriver, ReferenceNode, require_node

from conformance.faults.proxy import FaultProxy

CHANNEL = "orders:17"
SEED = int(os.environ.get("JS_CLIENT_SEED", "1717"))
FORCED_DISCONNECTS = 20


@pytest.fixture
def node() -> str:
    return require_node()


@pytest.fixture
async def reference() -> AsyncIterator[ReferenceNode]:
    server = ReferenceNode()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def proxy(reference: ReferenceNode) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", reference.port) as fault_proxy:
        yield fault_proxy


async def drive(node: str, reference: ReferenceNode, proxy: FaultProxy, **config: Any) -> JsDriver:
    return await JsDriver.start(
        node,
        url=proxy.url,
        backend=reference.url,
        apiKey=API_KEY,
        sessionId=config.pop("sessionId", "js-client-test"),
        channel=CHANNEL,
        **config,
    )


def report(name: str, numbers: dict[str, Any]) -> None:
    """Print a run's numbers and keep them in reports/ (the closing note quotes them)."""
    print(f"\n{name}: {json.dumps(numbers)}")
    out = ROOT / "reports"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(numbers, indent=2) + "\n")


def test_unit_tests_and_types_pass(node: str) -> None:
    """`npm test` (node --test) and `tsc --noEmit` over the JSDoc types, as CI runs them."""
    tsc = CLIENT_DIR / "node_modules" / ".bin" / "tsc"
    typed = subprocess.run(
        [str(tsc), "-p", "tsconfig.json", "--noEmit"], cwd=CLIENT_DIR,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert typed.returncode == 0, typed.stdout[-3000:]
    units = subprocess.run(
        [node, "--test", *sorted(str(p) for p in (CLIENT_DIR / "test").glob("*.test.js"))],
        cwd=CLIENT_DIR,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert units.returncode == 0, units.stdout[-3000:]
    assert "# fail 0" in units.stdout


async def test_every_message_once_in_order_across_forced_disconnects(
    node: str, reference: ReferenceNode, proxy: FaultProxy
) -> None:
    rng = random.Random(SEED)
    driver = await drive(node, reference, proxy, handlerDelayMs=30, **{"from": "beginning"})
    published = 0
    publishing = True

    async def publisher() -> None:
        nonlocal published
        while publishing:
            published += 1
            await reference.publish(CHANNEL, {"n": published})
            await asyncio.sleep(rng.uniform(0, 0.02))

    faults = {"cut": 0, "stall": 0, "delay": 0}
    started = time.monotonic()
    try:
        await driver.wait_until(lambda: bool(driver.events("subscribed")))
        task = asyncio.create_task(publisher())
        while len(driver.events("disconnect")) < FORCED_DISCONNECTS:
            assert time.monotonic() - started < 50, (faults, driver.records[-5:])
            subscribed = len(driver.events("subscribed"))
            disconnects = len(driver.events("disconnect"))
            kind = rng.choices(["cut", "stall", "delay"], weights=[6, 2, 2])[0]
            faults[kind] += 1
            if kind == "cut":
                await proxy.cut()
            elif kind == "stall":
                proxy.stall()
                # Past about 1 s (ping interval + timeout) Engine.IO gives the connection up.
                await asyncio.sleep(rng.uniform(0.3, 2.5))
                proxy.heal()
            else:
                proxy.delay(rng.uniform(0.005, 0.05), rng.uniform(0, 0.05), seed=rng.getrandbits(32))
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                proxy.heal()
            # Let the client come back (and read some) before the next fault.
            await driver.wait_until(
                lambda: len(driver.events("subscribed")) > subscribed
                or len(driver.events("disconnect")) == disconnects,
                timeout=15,
            )
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        publishing = False
        await task
        await driver.wait_until(lambda: driver.offsets()[-1:] == [(driver.offsets()[0][0], published)], 20)
        await driver.command("history")
        await driver.wait_until(lambda: bool(driver.events("history_done") or driver.events("history_error")))
        done = await driver.finish()
    finally:
        await driver.kill()
    received = driver.offsets()
    epochs = {epoch for epoch, _ in received}
    offsets = [offset for _, offset in received]
    lost = len(set(range(1, published + 1)) - set(offsets))
    repeated = len(offsets) - len(set(offsets))
    assert len(epochs) == 1
    assert offsets == list(range(1, published + 1)), (lost, repeated)
    data = [d["n"] for r in driver.events("messages") for d in r["data"]]
    assert data == list(range(1, published + 1))
    assert done["position"] == {"epoch": epochs.pop(), "offset": published}
    assert done["state"] == "subscribed"
    stats = done["stats"]
    assert stats["disconnects"] >= FORCED_DISCONNECTS and stats["tokens"] >= stats["connects"]
    assert stats["delivered"] == published
    paged = [o for page in driver.events("page") for o in page["offsets"]]
    assert paged == list(range(1, published + 1))
    report("js_client_faults", {
        "seed": SEED,
        "forced_disconnects": stats["disconnects"],
        "faults": faults,
        "messages": published,
        "lost": lost,
        "repeated": repeated,
        "disconnect_reasons": dict(Counter(r["reason"] for r in driver.events("disconnect"))),
        "reconnects": stats["connects"] - 1,
        "tokens_fetched": stats["tokens"],
        "subscribes": stats["subscribes"],
        "guard_dropped_duplicates": stats["duplicates"],
        "gaps_repaired": stats["gaps"],
        "history_pages": len(driver.events("page")),
        "seconds": round(time.monotonic() - started, 1),
    })  # fmt: skip
