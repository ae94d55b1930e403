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
from pathlib import Path
from typing import Any

import pytest
from harness import API_KEY
from js_client_peer import (
    CLIENT_DIR,
    ROOT,
    JsDriver,
    ReferenceNode,
    require_node,
    running_reference,
)

from conformance.faults.proxy import FaultProxy

CHANNEL = "orders:17"
SEED = int(os.environ.get("JS_CLIENT_SEED", "1717"))
FORCED_DISCONNECTS = 20


@pytest.fixture
def node() -> str:
    return require_node()


@pytest.fixture
async def reference() -> AsyncIterator[ReferenceNode]:
    async with running_reference() as server:
        yield server


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


def last_lifecycle_event(driver: JsDriver) -> str:
    lifecycle = ("connect", "disconnect", "subscribed", "unsubscribed")
    return [r["event"] for r in driver.records if r["event"] in lifecycle][-1]


def report(name: str, numbers: dict[str, Any]) -> None:
    """Print a run's numbers and keep them in reports/ (the closing note quotes them)."""
    print(f"\n{name}: {json.dumps(numbers)}")
    out = ROOT / "reports"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(numbers, indent=2) + "\n")


def test_unit_tests_and_types_pass(node: str, tmp_path: Path) -> None:
    """`node --test` of the pure parts; the JSDoc types check, the committed declarations
    (types/) are what `npm run types` makes of them, and a TypeScript consumer compiles."""
    tsc = str(CLIENT_DIR / "node_modules" / ".bin" / "tsc")

    def run(*argv: str) -> str:
        done = subprocess.run(
            argv, cwd=CLIENT_DIR, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-2000:])
        return done.stdout

    run(tsc, "-p", "tsconfig.json", "--outDir", str(tmp_path))
    committed = sorted((CLIENT_DIR / "types").glob("*.d.ts"))
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.glob("*.d.ts"))
    for path in committed:
        assert path.read_text() == (tmp_path / path.name).read_text(), f"run npm run types: {path}"
    run(tsc, "-p", "test/tsconfig.json")
    units = run(node, "--test", *sorted(str(p) for p in (CLIENT_DIR / "test").glob("*.test.js")))
    assert "# fail 0" in units and "# pass 0" not in units


async def test_every_message_once_in_order_across_forced_disconnects(
    node: str, reference: ReferenceNode, proxy: FaultProxy
) -> None:
    rng = random.Random(SEED)  # the fault schedule
    pace = random.Random(SEED + 1)  # the publisher's own, so timing cannot shift the schedule
    driver = await drive(node, reference, proxy, handlerDelayMs=30, **{"from": "beginning"})
    published = 0
    publishing = True

    async def publisher() -> None:
        nonlocal published
        while publishing:
            published += 1
            await reference.publish(CHANNEL, {"n": published})
            await asyncio.sleep(pace.uniform(0, 0.02))

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
                live = bool(proxy.connections)
                await proxy.cut()
                if live:  # the client notices at once (RST); wait until it says so
                    await driver.wait_until(
                        lambda d=disconnects: len(driver.events("disconnect")) > d, 5
                    )
            elif kind == "stall":
                proxy.stall()
                # Past about 1.5 s (ping interval + timeout) Engine.IO gives the connection up.
                await asyncio.sleep(rng.uniform(0.3, 2.5))
                proxy.heal()
            else:
                proxy.delay(
                    rng.uniform(0.005, 0.05), rng.uniform(0, 0.05), seed=rng.getrandbits(32)
                )
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                proxy.heal()
            # Let the client come back (and read some) before the next fault.
            await driver.wait_until(
                lambda s=subscribed, d=disconnects: (
                    len(driver.events("subscribed")) > s or len(driver.events("disconnect")) == d
                ),
                timeout=15,
            )
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        publishing = False
        await task
        await driver.wait_until(
            lambda: driver.offsets()[-1:] == [(driver.offsets()[0][0], published)], 20
        )
        # A late ping timeout may still be reconnecting: let it come back before closing.
        await driver.wait_until(lambda: last_lifecycle_event(driver) == "subscribed", 15)
        await driver.command("history")
        await driver.wait_until(
            lambda: bool(driver.events("history_done") or driver.events("history_error"))
        )
        await driver.wait_until(lambda: last_lifecycle_event(driver) == "subscribed", 15)
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
    lifecycle = [r for r in driver.records if r["event"] not in ("messages", "page")]
    assert done["state"] == "subscribed", lifecycle[-12:]
    assert driver.events("history_done"), lifecycle[-12:]
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


async def publish_many(reference: ReferenceNode, count: int) -> list[dict[str, Any]]:
    return [await reference.publish(CHANNEL, {"n": n}) for n in range(count)]


def told_then(driver: JsDriver, code: str) -> list[str]:
    """The subscription's events from the first that mentions ``code`` on (close() aside)."""
    told = [
        r for r in driver.records
        if r["event"] in ("error", "unsubscribed", "subscribed") and r.get("reason") != "closed"
    ]  # fmt: skip
    mentions = [i for i, r in enumerate(told) if code in (r.get("code"), r.get("reason"))]
    assert mentions, (code, driver.records[-8:])
    return [r["event"] for r in told[mentions[0] :]]


@pytest.mark.parametrize("policy", ["fail", "restart", "continue"])
async def test_epoch_change_tells_the_application_and_follows_the_policy(
    node: str, reference: ReferenceNode, proxy: FaultProxy, policy: str
) -> None:
    old_epoch = (await publish_many(reference, 5))[0]["epoch"]
    driver = await drive(node, reference, proxy, policy=policy, **{"from": "beginning"})
    try:
        await driver.wait_until(lambda: len(driver.offsets()) == 5)
        await reference.stop()  # an in-memory reference loses everything: a new epoch
        await driver.wait_until(lambda: bool(driver.events("disconnect")))
        await reference.start()
        new_epoch = (await publish_many(reference, 3))[0]["epoch"]
        assert new_epoch != old_epoch
        await driver.wait_until(lambda: bool(told_then_safe(driver, "epoch_mismatch")), 15)
        if policy == "fail":
            await driver.wait_until(lambda: bool(driver.events("unsubscribed")))
            await publish_many(reference, 2)
            await asyncio.sleep(1.0)  # time to (wrongly) receive something
        else:
            await driver.wait_until(lambda: len(driver.offsets()) == 8)
            await publish_many(reference, 2)
            await driver.wait_until(lambda: len(driver.offsets()) == 10)
        done = await driver.finish()
    finally:
        await driver.kill()
    old = [(old_epoch, n) for n in range(1, 6)]
    if policy == "fail":
        assert told_then(driver, "epoch_mismatch") == ["error", "unsubscribed"]
        assert driver.events("unsubscribed")[-1]["reason"] == "epoch_mismatch"
        assert driver.offsets() == old and done["state"] == "unsubscribed"
        assert done["position"] == {"epoch": old_epoch, "offset": 5}
    else:
        assert told_then(driver, "epoch_mismatch") == ["error", "subscribed"]
        subscribed = driver.events("subscribed")[-1]
        assert subscribed["epochChanged"] and subscribed["epoch"] == new_epoch
        assert subscribed["from"] == 1 and not subscribed["recovered"]
        assert driver.offsets() == old + [(new_epoch, n) for n in range(1, 6)]
        assert done["position"] == {"epoch": new_epoch, "offset": 5}


def told_then_safe(driver: JsDriver, code: str) -> list[str]:
    try:
        return told_then(driver, code)
    except AssertionError:
        return []


@pytest.mark.parametrize("policy", ["fail", "restart", "continue"])
async def test_truncation_while_disconnected_tells_the_application_and_follows_the_policy(
    node: str, reference: ReferenceNode, proxy: FaultProxy, policy: str
) -> None:
    epoch = (await publish_many(reference, 5))[0]["epoch"]
    driver = await drive(node, reference, proxy, policy=policy, **{"from": "beginning"})
    try:
        await driver.wait_until(lambda: len(driver.offsets()) == 5)
        proxy.refuse()  # the client stays away while retention overtakes it
        await proxy.cut()
        await driver.wait_until(lambda: bool(driver.events("disconnect")))
        await publish_many(reference, 10)  # offsets 6..15
        assert (await reference.retain(CHANNEL, 3))["max_messages"] == 3  # first is now 13
        proxy.refuse(on=False)
        await driver.wait_until(lambda: bool(told_then_safe(driver, "history_truncated")), 15)
        if policy == "fail":
            await driver.wait_until(lambda: bool(driver.events("unsubscribed")))
            await publish_many(reference, 1)
            await asyncio.sleep(1.0)
        else:
            await driver.wait_until(lambda: len(driver.offsets()) == 8)
            await publish_many(reference, 1)
            await driver.wait_until(lambda: len(driver.offsets()) == 9)
        done = await driver.finish()
    finally:
        await driver.kill()
    received = [offset for _, offset in driver.offsets()]
    if policy == "fail":
        assert told_then(driver, "history_truncated") == ["error", "unsubscribed"]
        assert received == [1, 2, 3, 4, 5] and done["state"] == "unsubscribed"
        assert done["position"] == {"epoch": epoch, "offset": 5}
        return
    assert told_then(driver, "history_truncated") == ["error", "subscribed"]
    subscribed = driver.events("subscribed")[-1]
    assert subscribed["truncated"] and not subscribed["epochChanged"] and subscribed["from"] == 13
    if policy == "continue":
        assert subscribed["truncation"] == {"requested": 6, "first_available": 13}
    else:
        assert subscribed["truncation"] is None
    assert received == [1, 2, 3, 4, 5, 13, 14, 15, 16]
    assert done["position"] == {"epoch": epoch, "offset": 16}


@pytest.mark.parametrize("policy", ["fail", "restart", "continue"])
async def test_a_position_ahead_of_the_server_tells_the_application_and_follows_the_policy(
    node: str, reference: ReferenceNode, proxy: FaultProxy, policy: str
) -> None:
    epoch = (await publish_many(reference, 5))[0]["epoch"]
    ahead = {"epoch": epoch, "offset": 99}  # e.g. a store written against another server
    driver = await drive(node, reference, proxy, policy=policy, **{"from": ahead})
    try:
        await driver.wait_until(lambda: bool(told_then_safe(driver, "offset_out_of_range")))
        await driver.wait_until(lambda: last_lifecycle_event(driver) != "connect")
        if policy == "restart":
            await driver.wait_until(lambda: len(driver.offsets()) == 5)
        await publish_many(reference, 1)
        if policy == "fail":
            await asyncio.sleep(1.0)
        else:
            await driver.wait_until(lambda: driver.offsets()[-1:] == [(epoch, 6)])
        done = await driver.finish()
    finally:
        await driver.kill()
    received = [offset for _, offset in driver.offsets()]
    after = "unsubscribed" if policy == "fail" else "subscribed"
    assert told_then(driver, "offset_out_of_range") == ["error", after]
    expected = {"fail": [], "restart": [1, 2, 3, 4, 5, 6], "continue": [6]}[policy]
    assert received == expected
    assert done["position"] == (None if policy == "fail" else {"epoch": epoch, "offset": 6})


async def test_acks_move_the_server_cursor_another_device_resumes_from(
    node: str, reference: ReferenceNode, proxy: FaultProxy
) -> None:
    await publish_many(reference, 40)
    first = await drive(node, reference, proxy, sessionId="device-shared", ack=True,
                        **{"from": "beginning"})  # fmt: skip
    try:
        await first.wait_until(lambda: len(first.offsets()) == 40)
        await asyncio.sleep(0.5)  # past the 200 ms batching delay
        done = await first.finish()
    finally:
        await first.kill()
    epoch = first.offsets()[0][0]
    assert done["acked"] == {"epoch": epoch, "offset": 40}
    await publish_many(reference, 5)
    # Another device of the same session, with no position of its own: `from` omitted, so the
    # server cursor says where to start (SUB-9).
    second = await drive(node, reference, proxy, sessionId="device-shared", ack=True)
    try:
        await second.wait_until(lambda: len(second.offsets()) == 5)
        await asyncio.sleep(0.3)
        done = await second.finish()
    finally:
        await second.kill()
    assert second.events("subscribed")[0]["from"] == 41
    assert [offset for _, offset in second.offsets()] == list(range(41, 46))


async def test_the_readme_example_runs_and_is_the_one_shown(
    node: str, reference: ReferenceNode
) -> None:
    example = CLIENT_DIR / "examples" / "catch-up.mjs"
    readme = (CLIENT_DIR / "README.md").read_text(encoding="utf-8")
    assert f"```js\n{example.read_text(encoding='utf-8')}```" in readme
    epoch = (await publish_many(reference, 3))[0]["epoch"]
    process = await asyncio.create_subprocess_exec(
        node, str(example), CHANNEL,
        env={**os.environ, "REPLAY_URL": reference.url, "REPLAY_API_KEY": API_KEY},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert stdout.decode().splitlines() == [
        "history: 3 retained messages",
        f'{epoch}:1 {{"n":0}}',
        f'{epoch}:2 {{"n":1}}',
        f'{epoch}:3 {{"n":2}}',
        "caught up",
    ]
