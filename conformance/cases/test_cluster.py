"""Clusters: several nodes sharing one store behave as one server (spec §10.11, feature
`cluster`). The cases spread clients, publishes and session changes over ``target.urls``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance import (
    ConnectRefused,
    Registration,
    ReplayClient,
    Target,
    case,
    expect,
    expect_offsets,
    expect_ok,
    fail,
    grant,
)

BOUND_S = 1.0  # the spec's "within 1 second" (CLU-3, CLU-4)
POLL_S = 0.05
QUIET_S = 0.5  # how long "nothing more arrives" is watched for, after a control saw it all


def _nodes(target: Target) -> int:
    """The number of nodes; skips the case for a single node."""
    if len(target.urls) < 2:
        pytest.skip("not claimed: a single node")
    return len(target.urls)


def _node(target: Target, index: int) -> int:
    """Node ``index`` of the cluster, wrapping around for a two-node cluster."""
    return index % len(target.urls)


async def _connect_within(
    target: Target, session: Registration, node: int, since: float, clause: str
) -> ReplayClient:
    """Connect the session on ``node``, retrying refusals until 1 s after ``since``: a
    registration through another node may take that long to reach it (CLU-4)."""
    loop = asyncio.get_running_loop()
    while True:
        client = await target.client(session=session, node=node, connect=False)
        try:
            await client.connect()
            return client
        except ConnectRefused as refused:
            if loop.time() - since > BOUND_S:
                fail(
                    clause,
                    f"the session registered through another node accepted on node {node} "
                    f"within {BOUND_S:g} s",
                    str(refused),
                )
        await asyncio.sleep(POLL_S)


@case("CLU-1", "RES-1")
async def test_subscribe_publish_and_resume_on_different_nodes(target: Target) -> None:
    _nodes(target)
    channel = target.channel()
    grants = [grant(channel, "subscribe")]
    first = await target.client(grants=grants, node=_node(target, 1))
    reply = expect_ok(await first.subscribe(channel, from_="beginning"), clause="CLU-1")
    epoch = reply["epoch"]
    for n in range(10):  # one by one, through node 0
        await target.backend_at(0).publish(channel, {"n": n})
    await first.wait_for_offset(channel, 10, clause="CLU-1")
    expect_offsets(first.offsets(channel), range(1, 11), clause="CLU-1", channel=channel)
    await first.disconnect()
    # While no one listens, publishes arrive through every node.
    for n in range(10, 20):
        await target.backend_at(_node(target, n)).publish(channel, {"n": n})
    resumed = await target.client(grants=grants, node=_node(target, 2))
    reply = expect_ok(await resumed.subscribe(channel, from_=11, epoch=epoch), clause="CLU-1")
    expect(
        reply.get("epoch") == epoch and reply.get("from") == 11,
        clause="CLU-1",
        expected=f"from 11 in epoch {epoch!r}, the one node 1 reported",
        received=reply,
    )
    await target.backend_at(0).publish(channel, {"n": 20})
    await resumed.wait_for_offset(channel, 21, clause="CLU-1")
    await asyncio.sleep(QUIET_S)
    expect_offsets(resumed.offsets(channel), range(11, 22), clause="CLU-1", channel=channel)
    data = [m.get("data") for m in [*first.messages(channel), *resumed.messages(channel)]]
    expect(
        data == [{"n": n} for n in range(21)],
        clause="CLU-1",
        expected="the messages in publish order, whichever node took them",
        received=data,
    )


@case("CLU-1", "ACK-6", "TIM-2")
async def test_cursor_set_on_one_node_is_used_on_another(target: Target) -> None:
    _nodes(target)
    channel = target.channel()
    await target.backend_at(0).publish_many(channel, 5)
    session = await target.register([grant(channel, "subscribe")], node=_node(target, 2))
    loop = asyncio.get_running_loop()
    registered = loop.time()
    acker = await _connect_within(target, session, _node(target, 1), registered, "CLU-4")
    expect_ok(await acker.ack(channel, 3), clause="ACK-4")
    acked = loop.time()
    await acker.disconnect()
    resumed = await target.client(session=session, node=_node(target, 2))
    # Another node may see the cursor up to 1 s after the ack's answer (§10.13, CLU-4).
    while True:
        reply = expect_ok(await resumed.subscribe(channel), clause="SUB-9")
        if reply.get("from") == 4 or loop.time() - acked > BOUND_S:
            break
        expect_ok(await resumed.unsubscribe(channel), clause="UNS-1")
        await asyncio.sleep(0.05)
    expect(
        reply.get("from") == 4,
        clause="TIM-2",
        expected=f"from 4 within {BOUND_S:g} s: the cursor acknowledged through another node",
        received=reply,
    )


@case("CLU-2")
async def test_every_node_delivers_every_publish(target: Target) -> None:
    count = _nodes(target)
    channel = target.channel()
    subscribers = [
        await target.client(grants=[grant(channel, "subscribe", "publish")], node=node)
        for node in range(count)
    ]
    for client in subscribers:
        expect_ok(await client.subscribe(channel, from_="latest"), clause="CLU-2")
    total = 0
    for node in range(count):  # through each node's backend route, concurrently
        await target.backend_at(node).publish_concurrently(channel, 5, total)
        total += 5
    if "client-publish" in target.features:  # and through each node's sockets
        for client in subscribers:
            expect_ok(await client.publish(channel, {"n": total}), clause="CLU-2")
            total += 1
    for client in subscribers:
        await client.wait_for_offset(channel, total, clause="CLU-2")
        offsets = client.offsets(channel)
        expect_offsets(offsets, range(1, total + 1), clause="CLU-2", actor=client.name)


async def _state(target: Target, node: int, channel: str) -> dict[str, Any]:
    """``epoch``, ``first`` and ``head`` of ``channel`` as node ``node`` reports them."""
    if "history" in target.features:
        page = await target.backend_at(node).history(channel, limit=1)
        return {k: page.get(k) for k in ("epoch", "first", "head")}
    # Without history: the subscribe replies for "latest" (head) and "beginning" (first).
    client = await target.client(grants=[grant(channel, "subscribe")], node=node)
    latest = expect_ok(await client.subscribe(channel, from_="latest"), clause="CLU-3")
    expect_ok(await client.unsubscribe(channel), clause="CLU-3")
    beginning = expect_ok(await client.subscribe(channel, from_="beginning"), clause="CLU-3")
    await client.close()
    head = latest.get("head")
    first = beginning.get("from") if beginning.get("from") != (head or 0) + 1 else None
    return {"epoch": latest.get("epoch"), "first": first, "head": head}


async def _expect_same_state(
    target: Target, channel: str, wanted: dict[str, Any], since: float
) -> None:
    """Every node reports ``wanted`` by 1 s after ``since`` (CLU-3)."""
    loop = asyncio.get_running_loop()
    while True:
        states = [await _state(target, node, channel) for node in range(len(target.urls))]
        if all(state == wanted for state in states):
            return
        if loop.time() - since > BOUND_S:
            fail(
                "CLU-3",
                f"every node reporting {wanted} within {BOUND_S:g} s",
                f"per node: {states}",
                channel=channel,
            )
        await asyncio.sleep(POLL_S)


@case("CLU-3")
async def test_every_node_reports_the_same_state(target: Target) -> None:
    count = _nodes(target)
    channel = target.channel()
    loop = asyncio.get_running_loop()
    answer: dict[str, Any] = {}
    for n in range(3 * count):
        answer = await target.backend_at(n % count).publish(channel, {"n": n})
    since = loop.time()
    wanted = {"epoch": answer["epoch"], "first": 1, "head": answer["offset"]}
    await _expect_same_state(target, channel, wanted, since)
    if "retention" in target.features:
        # A retention change through one node moves `first` on every node.
        await target.backend_at(_node(target, 1)).set_retention(channel, max_messages=2)
        answer = await target.backend_at(_node(target, 2)).publish(channel, {"n": "last"})
        since = loop.time()
        head = answer["offset"]
        wanted = {"epoch": answer["epoch"], "first": head - 1, "head": head}
        await _expect_same_state(target, channel, wanted, since)


@case("CLU-4", "ACC-6", "SES-15")
async def test_session_changes_reach_every_node(target: Target) -> None:
    _nodes(target)
    kept, lost, later = (target.channel(label) for label in ("kept", "lost", "later"))
    loop = asyncio.get_running_loop()
    session = await target.register(
        [grant(kept, "subscribe"), grant(lost, "subscribe")], node=_node(target, 0)
    )
    registered = loop.time()
    client = await _connect_within(target, session, _node(target, 1), registered, "CLU-4")
    for channel in (kept, lost):
        expect_ok(await client.subscribe(channel, from_="latest"), clause="CLU-4")
    # Narrowed through node 2: the socket on node 1 loses `lost` within 1 s.
    narrowed_grants = [grant(kept, "subscribe"), grant(later, "subscribe")]
    await target.register(narrowed_grants, session_id=session.session_id, node=_node(target, 2))
    narrowed = loop.time()
    ended = await client.wait_for_event(
        "replay:unsubscribed",
        lambda p: p.get("channel") == lost,
        timeout=BOUND_S + 5,
        clause="CLU-4",
    )
    elapsed = loop.time() - narrowed
    expect(
        ended.get("reason") == "revoked" and elapsed <= BOUND_S,
        clause="CLU-4",
        expected=f'replay:unsubscribed {lost} "revoked" on node 1 within {BOUND_S:g} s',
        received=f"{ended} after {elapsed:.3f} s",
    )
    # The widened grant reaches node 1 within 1 s too (ACC-7 across nodes).
    while (reply := await client.subscribe(later, from_="latest")).get("ok") is not True:
        if loop.time() - narrowed > BOUND_S:
            fail("CLU-4", f"subscribe to {later} allowed within {BOUND_S:g} s", reply)
        await asyncio.sleep(POLL_S)
    await target.backend_at(_node(target, 2)).publish(kept, {"n": 0})
    await client.wait_for_offset(kept, 1, clause="CLU-4")
    # Deleted through node 0: the socket on node 1 is disconnected within 1 s.
    deleted = await target.backend_at(0).delete_session(session.session_id)
    start = loop.time()
    expect(deleted.status == 204, clause="SES-13", expected="HTTP 204", received=deleted)
    await target.backend_at(_node(target, 2)).publish(kept, {"n": 1})
    await client.wait_disconnected(timeout=BOUND_S + 5, clause="CLU-4")
    elapsed = loop.time() - start
    expect(
        elapsed <= BOUND_S,
        clause="CLU-4",
        expected=f"the socket on node 1 disconnected within {BOUND_S:g} s of the delete on node 0",
        received=f"after {elapsed:.3f} s",
    )
    expect(
        client.offsets(kept) == [1],
        clause="SES-15",
        expected="nothing delivered after the delete",
        received=f"offsets {client.offsets(kept)}",
        channel=kept,
    )
    await asyncio.sleep(max(0.0, BOUND_S - (loop.time() - start)))
    for node in range(len(target.urls)):  # the token is refused everywhere by now
        probe = await target.client(session=session, node=node, connect=False)
        try:
            await probe.connect()
        except ConnectRefused:
            continue
        fail("CLU-4", f"the deleted session's token refused on node {node}", "accepted")
