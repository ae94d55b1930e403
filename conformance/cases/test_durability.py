"""Durability (spec §10.7) and new epochs after lost history (§2.3 EPO-3).

DUR-1 holds for every target and is checked without a restart. The other cases restart the
target, so they need one the suite launched (``--target-cmd``, or the default reference); a
target reached by URL reports them as not claimed. ``durable: true`` targets are killed with
SIGKILL while a publisher is publishing and must keep every acknowledged message and epoch
(DUR-2), and should keep sessions and cursors (DUR-4); ``durable: false`` targets may lose history
on a restart but must then change the channel's epoch (DUR-3, EPO-3).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance import Indeterminate, Target, case, current, expect, expect_ok, fail, grant
from conformance.backend import Backend
from conformance.text import ranges


def _restartable(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")


async def _read_all(target: Target, channel: str, head: int, clause: str) -> dict[int, object]:
    """Every message of ``channel`` up to ``head`` through a fresh subscription from 1."""
    reader = await target.client(grants=[grant(channel, "subscribe")], name="reader")
    expect_ok(await reader.subscribe(channel, from_=1))
    if head:
        await reader.wait_for_offset(channel, head, timeout=15, clause=clause)
    return {m["offset"]: m.get("data") for m in reader.messages(channel)}


async def _history_all(backend: Backend, channel: str, head: int) -> dict[int, object]:
    """Every message of ``channel`` up to ``head`` through history pages (HIS-8)."""
    found: dict[int, object] = {}
    next_from = 1
    while next_from <= head:
        page = await backend.history(channel, from_=next_from)
        messages = page["messages"]
        if not messages:
            break
        found.update((m["offset"], m.get("data")) for m in messages)
        next_from = messages[-1]["offset"] + 1
    return found


def _all_there(
    acked: dict[int, object], found: dict[int, object], clause: str, channel: str, how: str
) -> None:
    """Every acknowledged offset is in ``found`` with its data."""
    missing = [o for o in sorted(acked) if o not in found]
    changed = [o for o in sorted(acked) if o in found and found[o] != acked[o]]
    if missing or changed:
        fail(
            clause,
            f"every acknowledged publish retrievable by {how}",
            f"missing offsets [{ranges(missing)}], different data at [{ranges(changed)}]",
            channel=channel,
        )


# --- DUR-1 -------------------------------------------------------------------------------------


@case("DUR-1")
async def test_acknowledged_publishes_are_retrievable(target: Target) -> None:
    channel = target.channel()
    acked: dict[int, object] = {}
    for start in range(0, 600, 60):
        answers = await asyncio.gather(
            *(target.backend.publish(channel, {"n": n}) for n in range(start, start + 60))
        )
        for n, answer in zip(range(start, start + 60), answers, strict=True):
            acked[int(answer["offset"])] = {"n": n}
    head = max(acked)
    _all_there(
        acked, await _read_all(target, channel, head, "DUR-1"), "DUR-1", channel, "subscription"
    )
    if "history" in target.features:
        found = await _history_all(target.backend, channel, head)
        _all_there(acked, found, "DUR-1", channel, "history")


# --- DUR-2 (durable: true) ---------------------------------------------------------------------


class Progress:
    """A count of acknowledged publishes that can be waited on."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def reached(self, count: int) -> None:
        while self.count < count:
            await self._changed.wait()


class Publisher:
    """Publishes sequentially to one channel until the target stops answering."""

    def __init__(self, target: Target, channel: str, index: int, progress: Progress) -> None:
        self.target = target
        self.channel = channel
        self.index = index
        self.acked: dict[int, object] = {}  # offset -> data, for every 201
        self.order: list[int] = []
        self.epochs: set[str] = set()
        self.progress = progress

    async def run(self) -> None:
        n = 0
        while True:
            data = {"by": self.index, "n": n}
            try:
                status, body = await self.target.backend.publish_raw(self.channel, {"data": data})
            except Indeterminate:
                return  # no answer: the target is gone; this publish is not acknowledged
            if status != 201 or not isinstance(body, dict):
                return  # refused while dying: not acknowledged either
            self.acked[int(body["offset"])] = data
            self.order.append(int(body["offset"]))
            self.epochs.add(str(body["epoch"]))
            self.progress.bump()
            n += 1


@case("DUR-2", "DUR-1", durable=True, timeout=90)
async def test_acknowledged_publishes_survive_sigkill(target: Target) -> None:
    _restartable(target)
    channel = target.channel()
    before = await target.backend.publish_many(channel, 10)
    epoch = str((await target.backend.publish(channel, {"before": True}))["epoch"])
    acked: dict[int, object] = {o: {"n": n} for n, o in enumerate(before)}
    acked[len(before) + 1] = {"before": True}
    progress = Progress()
    publishers = [Publisher(target, channel, i, progress) for i in range(4)]
    tasks = [asyncio.ensure_future(p.run()) for p in publishers]

    async def cancel() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    current().defer(cancel)
    async with asyncio.timeout(20):
        await progress.reached(200)
    await target.kill()  # SIGKILL mid-stream: publishes are in flight
    await asyncio.gather(*tasks)
    await target.start()
    for publisher in publishers:
        acked.update(publisher.acked)
        expect(
            publisher.epochs == {epoch},
            clause="DUR-2",
            expected=f"every publish before the kill in epoch {epoch}",
            received=sorted(publisher.epochs),
            channel=channel,
        )
    # After the restart: the same epoch, and a head at least the highest acknowledged offset.
    after = await target.backend.publish(channel, {"after": True})
    expect(
        after.get("epoch") == epoch,
        clause="DUR-2",
        expected=f"the epoch {epoch} kept across the restart",
        received=after,
        channel=channel,
    )
    head = int(after["offset"])
    expect(
        head > max(acked),
        clause="DUR-2",
        expected=f"the next offset above every acknowledged one ({max(acked)})",
        received=after,
        channel=channel,
    )
    found = await _read_all(target, channel, head, "DUR-2")
    _all_there(acked, found, "DUR-2", channel, "subscription after SIGKILL and restart")
    expect(
        sorted(found)[:head] == list(range(1, head + 1)),
        clause="DUR-2",
        expected=f"offsets 1..{head}, dense",
        received=f"[{ranges(sorted(found))}]",
        channel=channel,
    )
    # Each publisher's acknowledged messages are still in the order it published them.
    for publisher in publishers:
        expect(
            publisher.order == sorted(publisher.order),
            clause="DUR-2",
            expected=f"publisher {publisher.index}'s messages in publish order",
            received=publisher.order,
            channel=channel,
        )
    if "history" in target.features:
        history = await _history_all(target.backend, channel, head)
        _all_there(acked, history, "DUR-2", channel, "history after SIGKILL and restart")


@case("DUR-4", durable=True, timeout=60)
async def test_sessions_and_cursors_survive_a_restart(target: Target) -> None:
    _restartable(target)
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session = await target.register([grant(channel, "subscribe")], ttl_s=600)
    if "cursors" in target.features:
        client = await target.client(session=session)
        expect_ok(await client.ack(channel, 3))
        await client.disconnect()
    await target.kill()
    await target.start()
    resumed = await target.client(session=session)  # the token is accepted again
    if "cursors" in target.features:
        reply = expect_ok(await resumed.subscribe(channel))
        expect(
            reply.get("from") == 4,
            clause="DUR-4",
            expected="from 4: the cursor (3) kept across the restart",
            received=reply,
        )
    else:
        expect_ok(await resumed.subscribe(channel, from_=1))
    end = await target.settle(channel, resumed)
    expect(
        resumed.offsets(channel)[-1] == end,
        clause="DUR-4",
        expected="the resumed session's subscription to deliver",
        received=resumed.offsets(channel),
    )


# --- DUR-3, EPO-3 (durable: false) -------------------------------------------------------------


@case("DUR-3", "EPO-3", "EPO-2", durable=False, timeout=60)
async def test_a_restart_either_keeps_history_or_changes_the_epoch(target: Target) -> None:
    """A non-durable target may lose history on a restart, but never silently: a channel keeps
    its epoch only if it kept its messages (EPO-2); one that lost them has a new epoch whose
    offsets start again at 1 (EPO-3)."""
    _restartable(target)
    published, empty = target.channel("published"), target.channel("empty")
    await target.backend.publish_many(published, 3)
    client = await target.client(grants=[grant(published), grant(empty)])
    await target.epoch(empty)  # what offset 1 belongs to, before anything is published
    before: dict[str, dict[str, Any]] = {}
    for channel in (published, empty):
        before[channel] = expect_ok(await client.subscribe(channel, from_=1))
    await client.wait_for_offset(published, 3)
    kept = {m["offset"]: m.get("data") for m in client.messages(published)}
    await target.restart()
    # Old sessions need not survive a non-durable restart: use a new one.
    after = await target.client(grants=[grant(published), grant(empty)])
    for channel in (published, empty):
        reply = expect_ok(await after.subscribe(channel, from_="beginning"))
        if reply.get("epoch") == before[channel]["epoch"]:
            # Same epoch: the history must be intact (EPO-2, DUR-3).
            head = before[channel]["head"] if channel == empty else 3
            if head:
                await after.wait_for_offset(channel, head, clause="DUR-3")
            got = {m["offset"]: m.get("data") for m in after.messages(channel)}
            expected = kept if channel == published else {}
            expect(
                {o: d for o, d in got.items() if o in expected} == expected,
                clause="DUR-3",
                expected=f"the same epoch only with the same messages: {expected}",
                received=got,
                channel=channel,
            )
            continue
        # A new epoch: its offsets start again at 1 (EPO-3): "beginning" resolves to 1 (its
        # first retained offset, or head + 1 with head 0), and a publish continues densely.
        head = reply["head"] if isinstance(reply.get("head"), int) else -1
        expect(
            reply.get("from") == 1 and head >= 0,
            clause="EPO-3",
            expected="from 1: offsets of the new epoch start at 1",
            received=reply,
            channel=channel,
        )
        answer = await target.backend.publish(channel, {"after": True})
        expect(
            answer.get("epoch") == reply.get("epoch") and answer.get("offset") == head + 1,
            clause="EPO-3",
            expected=f"offset {head + 1} in the new epoch {reply.get('epoch')}",
            received=answer,
            channel=channel,
        )
        await after.wait_for_offset(channel, int(answer["offset"]), clause="EPO-3")
