"""Auto-subscriptions: the session's `subscribe` list, started on connect (spec §8), and the
`replay:subscribed` / `replay:unsubscribed` events that report them (§7.2, §7.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance import (
    ConnectRefused,
    ReplayClient,
    Target,
    case,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    grant,
)

QUIET_S = 0.5  # how long "nothing more arrives" is watched for, after a control saw it all


def _by_channel(client: ReplayClient, name: str) -> dict[str, dict[str, Any]]:
    """The first event ``name`` per channel."""
    found: dict[str, dict[str, Any]] = {}
    for event, payload in client.events:
        if event == name and isinstance(payload, dict):
            found.setdefault(str(payload.get("channel")), payload)
    return found


async def _wait_reported(client: ReplayClient, channels: list[str], clause: str) -> None:
    """Wait until every channel got a replay:subscribed or a replay:unsubscribed."""

    def reported() -> set[str]:
        return {
            str(p.get("channel"))
            for e, p in client.events
            if e in ("replay:subscribed", "replay:unsubscribed") and isinstance(p, dict)
        }

    await client.wait_until(
        lambda: set(channels) <= reported(),
        f"replay:subscribed or replay:unsubscribed for each of {channels}",
        clause=clause,
        received=lambda: f"reported {sorted(reported())}",
    )


@case("AUT-1", "AUT-2")
async def test_each_entry_starts_from_its_from(target: Target) -> None:
    beginning, latest, integer, default = (
        target.channel(label) for label in ("beginning", "latest", "integer", "default")
    )
    for channel in (beginning, latest, integer, default):
        await target.backend.publish_many(channel, 3)
    entries: list[dict[str, Any]] = [
        {"channel": beginning, "from": "beginning"},
        {"channel": latest, "from": "latest"},
        {"channel": integer, "from": 2, "epoch": target.log.epoch_of(integer)},  # AUT-7
        {"channel": default},
    ]
    channels = [e["channel"] for e in entries]
    client = await target.client(
        grants=[grant(c, "subscribe") for c in channels], subscribe=entries
    )
    await _wait_reported(client, channels, "AUT-1")
    subscribed = _by_channel(client, "replay:subscribed")
    wanted = {beginning: 1, latest: 4, integer: 2, default: 4}
    for channel, start in wanted.items():
        event = subscribed.get(channel)
        expect(
            event is not None and event.get("from") == start and event.get("head") == 3,
            clause="AUT-1",
            expected=f"replay:subscribed for {channel} with from {start}, head 3",
            received=event or _by_channel(client, "replay:unsubscribed").get(channel),
            channel=channel,
        )
    for channel in channels:
        await target.backend.publish(channel, {"n": 3})
    for channel, start in wanted.items():
        await client.wait_for_offset(channel, 4, clause="AUT-1")
        expect_offsets(client.offsets(channel), range(start, 5), clause="AUT-1", channel=channel)


@case("AUT-1", "CUR-1")
@pytest.mark.parametrize("entry_from", ["beginning", "latest", 1, None])
async def test_cursor_wins_over_the_entry(target: Target, entry_from: str | int | None) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    entry: dict[str, Any] = {"channel": channel}
    if entry_from is not None:
        entry["from"] = entry_from
    if isinstance(entry_from, int):
        entry["epoch"] = target.log.epoch_of(channel)  # AUT-7
    session = await target.register([grant(channel, "subscribe")], subscribe=[entry])
    first = await target.client(session=session)
    expect_ok(await first.ack(channel, 2))
    await first.disconnect()
    second = await target.client(session=session)
    subscribed = await second.wait_for_event("replay:subscribed", clause="AUT-1")
    expect(
        subscribed.get("from") == 3,
        clause="AUT-1",
        expected=f"from 3: the cursor (2) wins over the entry's from {entry_from!r}",
        received=subscribed,
    )
    await second.wait_for_offset(channel, 5, clause="AUT-1")
    expect_offsets(second.offsets(channel), [3, 4, 5], clause="AUT-1", channel=channel)


@case("AUT-2")
async def test_subscribed_comes_before_the_messages(target: Target) -> None:
    channels = [target.channel(str(n)) for n in range(4)]
    epochs = {}
    for channel in channels:
        await target.backend.publish_many(channel, 19)
        epochs[channel] = (await target.backend.publish(channel, {"n": 19}))["epoch"]
    client = await target.client(
        grants=[grant(c, "subscribe") for c in channels],
        subscribe=[{"channel": c, "from": "beginning"} for c in channels],
    )
    for channel in channels:
        await client.wait_for_offset(channel, 20, clause="AUT-2")
    subscribed = _by_channel(client, "replay:subscribed")
    for channel in channels:
        event = subscribed.get(channel, {})
        shown = {k: event.get(k) for k in ("channel", "epoch", "from", "head")}
        expect(
            shown == {"channel": channel, "epoch": epochs[channel], "from": 1, "head": 20},
            clause="AUT-2",
            expected=f"replay:subscribed {channel} with its epoch, from 1, head 20",
            received=event,
            channel=channel,
        )
        entries = target.log.find(kind="event", actor=client.name, channel=channel)
        names = [e.name for e in entries]
        expect(
            names and names[0] == "replay:subscribed" and names.count("replay:subscribed") == 1,
            clause="AUT-2",
            expected=f"replay:subscribed first among the events of {channel}",
            received=names[:5],
            channel=channel,
        )
    expect_offsets(client.offsets(channels[0]), range(1, 21), clause="AUT-2")


@case("AUT-2", "SUB-11", feature="retention")
async def test_subscribed_reports_truncation(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    await target.backend.publish_many(channel, 10)  # retained: 8, 9, 10
    client = await target.client(
        grants=[grant(channel, "subscribe")],
        subscribe=[
            {
                "channel": channel,
                "from": 2,
                "epoch": target.log.epoch_of(channel),  # AUT-7
                "allow_truncation": True,
            }
        ],
    )
    subscribed = await client.wait_for_event("replay:subscribed", clause="AUT-2")
    expect(
        subscribed.get("from") == 8
        and subscribed.get("truncated") == {"requested": 2, "first_available": 8},
        clause="AUT-2",
        expected='from 8 and "truncated": {"requested": 2, "first_available": 8}',
        received=subscribed,
    )
    await client.wait_for_offset(channel, 10, clause="AUT-2")
    expect_offsets(client.offsets(channel), [8, 9, 10], clause="AUT-2", channel=channel)


@case("AUT-3")
async def test_events_arrive_after_the_connection_is_established(target: Target) -> None:
    granted = [target.channel(f"g{n}") for n in range(5)]
    denied = target.channel("denied")
    for channel in granted:
        await target.backend.publish_many(channel, 2)
    # The client's handlers are registered before it connects (python-socketio drops events
    # that arrive before the CONNECT packet, as socket.io-client does).
    client = await target.client(
        grants=[grant(c, "subscribe") for c in granted],
        subscribe=[{"channel": c, "from": "beginning"} for c in [*granted, denied]],
    )
    await _wait_reported(client, [*granted, denied], "AUT-3")
    for channel in granted:
        await client.wait_for_offset(channel, 2, clause="AUT-3")
    connected = target.log.find(kind="connect", actor=client.name)
    events = target.log.find(kind="event", actor=client.name)
    expect(
        connected and events and connected[0].seq < events[0].seq,
        clause="AUT-3",
        expected="the auto-subscription events after the CONNECT packet",
        received=[e.line() for e in (*connected, *events)][:8],
    )
    ended = _by_channel(client, "replay:unsubscribed").get(denied)
    expect(
        ended is not None, clause="AUT-3", expected=f"replay:unsubscribed {denied}", received=ended
    )


@case("AUT-4")
@pytest.mark.parametrize("problem", ["forbidden", "offset_out_of_range"])
async def test_entry_that_cannot_start_is_reported(target: Target, problem: str) -> None:
    bad, good = target.channel("bad"), target.channel("good")
    await target.backend.publish_many(bad, 2)
    grants = [grant(good, "subscribe")]
    entry: dict[str, Any] = {"channel": bad, "from": "beginning"}
    if problem == "offset_out_of_range":
        grants.append(grant(bad, "subscribe"))
        entry["from"] = 4  # head 2: 3 would be the first valid start above it
        entry["epoch"] = target.log.epoch_of(bad)  # AUT-7
    client = await target.client(grants=grants, subscribe=[entry, {"channel": good}])
    await _wait_reported(client, [bad, good], "AUT-4")
    await _expect_reported(target, client, bad, problem)
    # The connection stays up and the other auto-subscription works.
    await target.backend.publish(good, {"n": 0})
    await client.wait_for_offset(good, 1, clause="AUT-4")


@case("AUT-4", "SUB-6", feature="retention")
async def test_truncated_entry_is_reported(target: Target) -> None:
    bad, good = target.channel("bad"), target.channel("good")
    await target.backend.set_retention(bad, max_messages=2)
    await target.backend.publish_many(bad, 5)  # retained: 4, 5
    client = await target.client(
        grants=[grant(bad, "subscribe"), grant(good, "subscribe")],
        subscribe=[
            {"channel": bad, "from": 2, "epoch": target.log.epoch_of(bad)},  # AUT-7
            {"channel": good},
        ],
    )
    await _wait_reported(client, [bad, good], "AUT-4")
    await _expect_reported(target, client, bad, "history_truncated")
    await target.backend.publish(good, {"n": 0})
    await client.wait_for_offset(good, 1, clause="AUT-4")


@case("AUT-7", "EPO-6", "AUT-4")
async def test_an_entry_offset_travels_with_its_epoch(target: Target) -> None:
    stale, good = target.channel("stale"), target.channel("good")
    await target.backend.publish_many(stale, 3)
    grants = [grant(stale, "subscribe"), grant(good, "subscribe")]
    # An integer from without its epoch is refused at registration (EPO-6).
    status, body = await target.backend.register_raw(
        {"client_id": "aut-7", "grants": grants, "subscribe": [{"channel": stale, "from": 2}]}
    )
    expect(
        status == 400
        and isinstance(body, dict)
        and body.get("error", {}).get("code") == "bad_request",
        clause="AUT-7",
        expected="HTTP 400 bad_request for an entry with from 2 and no epoch",
        received=f"HTTP {status} {body}",
    )
    # One whose epoch is not current is reported when the socket connects, and the
    # connection and the other entries go on (AUT-4).
    entries: list[dict[str, Any]] = [
        {"channel": stale, "from": 2, "epoch": "conformance-gone"},
        {"channel": good},
    ]
    client = await target.client(grants=grants, subscribe=entries)
    await _wait_reported(client, [stale, good], "AUT-7")
    await _expect_reported(target, client, stale, "epoch_mismatch", clause="AUT-7")
    await target.backend.publish(good, {"n": 0})
    await client.wait_for_offset(good, 1, clause="AUT-4")


async def _expect_reported(
    target: Target, client: ReplayClient, channel: str, code: str, clause: str = "AUT-4"
) -> None:
    ended = _by_channel(client, "replay:unsubscribed").get(channel)
    expect(
        ended is not None and ended.get("reason") == code,
        clause=clause,
        expected=f'replay:unsubscribed {channel} with reason "{code}"',
        received=ended or _by_channel(client, "replay:subscribed").get(channel),
        channel=channel,
    )
    await target.backend.publish(channel, {"n": "more"})
    await asyncio.sleep(QUIET_S)
    expect(
        client.connected and not client.offsets(channel),
        clause="AUT-4",
        expected=f"still connected, and no replay:messages of {channel}",
        received=f"connected={client.connected}, offsets {client.offsets(channel)}",
        channel=channel,
    )
    # The channel is not subscribed: a subscribe (when allowed) is accepted, not a duplicate.
    if code != "forbidden":
        expect_ok(await client.subscribe(channel, from_="latest"), clause="AUT-4")


@case("AUT-5")
async def test_auto_subscription_is_an_ordinary_subscription(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(
        grants=[grant(channel, "subscribe")], subscribe=[{"channel": channel, "from": "beginning"}]
    )
    await client.wait_for_offset(channel, 2)
    reply = await client.subscribe(channel, from_="beginning")
    expect_error(reply, "already_subscribed", clause="AUT-5")
    expect_ok(await client.unsubscribe(channel), clause="AUT-5")
    control = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await control.subscribe(channel, from_="latest"))
    await target.backend.publish_many(channel, 2, [{"n": 2}, {"n": 3}])
    await control.wait_for_offset(channel, 4)
    await asyncio.sleep(QUIET_S)
    expect_offsets(client.offsets(channel), [1, 2], clause="AUT-5", channel=channel)
    # Ended like any subscription: a second unsubscribe finds nothing, a subscribe starts anew.
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="AUT-5")
    expect_ok(await client.subscribe(channel, from_=4), clause="AUT-5")
    await client.wait_for_offset(channel, 4, clause="AUT-5")


@case("AUT-6", feature="cursors", durable=False, timeout=60)
async def test_cursor_of_an_older_epoch_is_not_used(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    await target.backend.publish_many(channel, 4)
    old_epoch = (await target.backend.publish(channel, {"n": 4}))["epoch"]
    session = await target.register(
        [grant(channel, "subscribe")], subscribe=[{"channel": channel, "from": "beginning"}]
    )
    first = await target.client(session=session)
    await first.wait_for_offset(channel, 5)
    expect_ok(await first.ack(channel, 3))
    await first.disconnect()
    # A restart of a non-durable target is the one black-box way to change an epoch.
    await target.restart()
    await target.backend.publish_many(channel, 5)
    new_epoch = (await target.backend.publish(channel, {"n": 5}))["epoch"]
    if new_epoch == old_epoch:
        pytest.skip("not claimed: the restart did not give the channel a new epoch")
    second = await target.client(connect=False)
    try:
        await second.connect(session.token)
    except ConnectRefused:
        pytest.skip(
            "not claimed: no black-box way to change a channel's epoch while a session keeps "
            "its cursor (the session did not survive the target's restart)"
        )
    subscribed = await second.wait_for_event("replay:subscribed", clause="AUT-6")
    expect(
        subscribed.get("epoch") == new_epoch and subscribed.get("from") == 1,
        clause="AUT-6",
        expected=f"from 1 (the entry's beginning) in the new epoch {new_epoch!r}",
        received=subscribed,
    )
    await second.wait_for_offset(channel, 6, clause="AUT-6")
    expect_offsets(second.offsets(channel), range(1, 7), clause="AUT-6", channel=channel)


@case("AUT-5", "SUB-3")
async def test_auto_subscription_survives_a_rejected_duplicate(target: Target) -> None:
    channel = target.channel()
    client = await target.client(
        grants=[grant(channel, "subscribe")], subscribe=[{"channel": channel}]
    )
    await client.wait_for_event("replay:subscribed", clause="AUT-5")
    expect_error(
        await client.subscribe(channel, from_="latest"), "already_subscribed", clause="AUT-5"
    )
    # The existing subscription is unchanged and keeps delivering.
    await target.backend.publish(channel, {"n": 0})
    await client.wait_for_offset(channel, 1, clause="AUT-5")
    expect_offsets(client.offsets(channel), [1], clause="AUT-5", channel=channel)


# --- AUT-8, AUT-9, AUT-10 ----------------------------------------------------------------------


def _reports(client: ReplayClient) -> list[tuple[str, str]]:
    """(event, channel) of every replay:subscribed and replay:unsubscribed, in arrival order."""
    return [
        (event, str(payload.get("channel")))
        for event, payload in client.events
        if event in ("replay:subscribed", "replay:unsubscribed") and isinstance(payload, dict)
    ]


@case("AUT-8", "AUT-9")
async def test_auto_subscriptions_come_before_the_first_client_events(target: Target) -> None:
    channels = [target.channel(f"e{n}") for n in range(12)]
    refused = channels[5]  # no grant: reported in its place in the list (AUT-4, AUT-9)
    session = await target.register(
        [grant(c, "subscribe") for c in channels if c != refused],
        subscribe=[{"channel": c, "from": "latest"} for c in channels],
    )
    client = await target.client(session=session, connect=False)
    await client.connect()
    # At once, not waiting for any event: both must find the last two entries in place.
    duplicate, unsubscribed = await asyncio.gather(
        client.subscribe(channels[-1], from_="latest"), client.unsubscribe(channels[-2])
    )
    expect_error(duplicate, "already_subscribed", clause="AUT-8", channel=channels[-1])
    expect_ok(unsubscribed, clause="AUT-8", channel=channels[-2])
    for name, channel in (("replay:subscribe", channels[-1]), ("replay:unsubscribe", channels[-2])):
        report = target.log.find(kind="event", name="replay:subscribed", channel=channel)
        reply = target.log.find(kind="reply", name=name, actor=client.name, channel=channel)
        expect(
            bool(report) and bool(reply) and report[0].seq < reply[0].seq,
            clause="AUT-8",
            expected=f"replay:subscribed {channel} before the reply to {name}",
            received=[e.line() for e in (*report[:1], *reply[:1])],
            channel=channel,
        )
    await _wait_reported(client, channels, "AUT-9")
    expected = [
        ("replay:unsubscribed" if c == refused else "replay:subscribed", c) for c in channels
    ]
    expect(
        _reports(client) == expected,
        clause="AUT-9",
        expected="one report per entry, in the order of the subscribe list",
        received=[f"{event} {channel.rsplit('-', 2)[-2]}" for event, channel in _reports(client)],
    )


@case("AUT-10")
async def test_re_registration_leaves_connected_sockets_subscriptions_alone(
    target: Target,
) -> None:
    kept, added = target.channel("kept"), target.channel("added")
    grants = [grant(kept, "subscribe"), grant(added, "subscribe")]
    session = await target.register(grants, subscribe=[{"channel": kept, "from": "latest"}])
    client = await target.client(session=session)
    await _wait_reported(client, [kept], "AUT-1")
    await target.register(
        grants, subscribe=[{"channel": added, "from": "latest"}], session_id=session.session_id
    )
    # Longer than the 1 s a re-registration may take to reach a socket (§10.13).
    await asyncio.sleep(1.5)
    expect(
        _reports(client) == [("replay:subscribed", kept)],
        clause="AUT-10",
        expected=f"no new replay:subscribed or replay:unsubscribed after re-registering: only "
        f"the first connection's report for {kept}",
        received=_reports(client),
    )
    # The old list's subscription still delivers; the new list's channel is not subscribed.
    offset = int((await target.backend.publish(kept, {"n": "after"}))["offset"])
    await client.wait_for_offset(kept, offset, clause="AUT-10")
    expect_ok(await client.subscribe(added, from_="latest"), clause="AUT-10", channel=added)
