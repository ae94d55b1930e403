"""Access control (spec §9): grant patterns, per-action checks, enforcement at replay time, and
the session lifecycle that bounds access (§4.3 SES-11/SES-12, §4.4 SES-15/SES-16)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from conformance import (
    ConnectionLost,
    ReplayClient,
    Target,
    case,
    expect,
    expect_error,
    expect_ok,
    expect_status,
    grant,
)

QUIET_S = 0.5  # how long "nothing more arrives" is watched for, after a control saw it all
BOUND_S = 1.0  # the spec's "within 1 second" (ACC-6, SES-11, SES-15)


def _session_id() -> str:
    return f"conformance-{secrets.token_hex(8)}"


async def _allowed(client: ReplayClient, channel: str) -> bool:
    """Whether a subscribe to ``channel`` is accepted (then ended again), or ``forbidden``."""
    reply = await client.subscribe(channel, from_="latest")
    if reply.get("ok") is True:
        expect_ok(await client.unsubscribe(channel), clause="UNS-1")
        return True
    expect_error(reply, "forbidden", clause="SUB-2")
    return False


async def _expect_coverage(
    client: ReplayClient, clause: str, pattern: str, covered: dict[str, bool]
) -> None:
    for channel, wanted in covered.items():
        got = await _allowed(client, channel)
        expect(
            got == wanted,
            clause=clause,
            expected=f"grant {pattern!r} {'covers' if wanted else 'does not cover'} {channel!r}",
            received="subscribe accepted" if got else "subscribe forbidden",
            channel=channel,
        )


# --- patterns (§9.1) ----------------------------------------------------------------------------


@case("ACC-1", "SUB-2")
async def test_exact_pattern_matches_only_that_channel(target: Target) -> None:
    channel = target.channel("Exact")
    client = await target.client(grants=[grant(channel, "subscribe")])
    covered = {
        channel: True,
        channel + "x": False,  # longer
        channel[:-1]: False,  # shorter
        channel.lower(): False,  # another case: names compare exactly
        channel + ":sub": False,
    }
    await _expect_coverage(client, "ACC-1", channel, covered)


@case("ACC-2")
async def test_prefix_pattern_matches_names_starting_with_the_prefix(target: Target) -> None:
    base = target.channel()
    pattern = f"{base}:*"
    client = await target.client(grants=[grant(pattern, "subscribe")])
    covered = {
        f"{base}:": True,  # the prefix itself is a valid name
        f"{base}:x": True,
        f"{base}:x:y/z@w.v-u_1": True,
        base: False,
        f"{base}mates": False,
        f"x{base}:x": False,
    }
    await _expect_coverage(client, "ACC-2", pattern, covered)


@case("ACC-2")
async def test_prefix_without_separator_also_matches_longer_words(target: Target) -> None:
    base = target.channel()
    pattern = f"{base}*"
    client = await target.client(grants=[grant(pattern, "subscribe")])
    covered = {base: True, f"{base}mates": True, f"{base}:x": True, base[:-1]: False}
    await _expect_coverage(client, "ACC-2", pattern, covered)


@case("ACC-3")
async def test_star_matches_every_channel(target: Target) -> None:
    base = target.channel()
    client = await target.client(grants=[grant("*", "subscribe")])
    # Other prefixes, separators and letter cases alike.
    channels = [base, f"{base}:x", f"{base}/a.b@c_d-e", base.upper(), f"x{base}"]
    await _expect_coverage(client, "ACC-3", "*", dict.fromkeys(channels, True))


@case("ACC-4", "SUB-2")
async def test_grants_are_a_union_and_match_pattern_and_action_together(target: Target) -> None:
    base = target.channel()
    first, second, read_only = f"{base}-a", f"{base}-b", f"{base}-r"
    client = await target.client(
        grants=[
            grant(first, "subscribe"),
            grant(second, "subscribe", "publish"),
            grant(read_only, "history", "publish"),
        ]
    )
    # Either grant allows subscribing to its channel; a grant matching the channel but not
    # listing the action does not, whatever other grants list.
    covered = {first: True, second: True, read_only: False, f"{base}-c": False}
    await _expect_coverage(client, "ACC-4", "the union of three grants", covered)


@case("ACC-4", "HIS-3")
async def test_pattern_and_action_must_match_in_one_grant(target: Target) -> None:
    base = target.channel()
    exact = f"{base}-ab"
    client = await target.client(grants=[grant(f"{base}-a*", "subscribe"), grant(exact, "publish")])
    # `a*` lists subscribe (not history) and matches; `ab` matches but lists publish only.
    expect_error(await client.history(exact), "forbidden", clause="ACC-4")
    expect_ok(await client.subscribe(exact, from_="latest"), clause="ACC-4")
    if "client-publish" in target.features:
        expect_ok(await client.publish(exact, {"n": 1}), clause="ACC-4")
        # `a*` matches `ac` but does not list publish; `ab` lists it but does not match.
        expect_error(await client.publish(f"{base}-ac", {"n": 1}), "forbidden", clause="ACC-4")


# --- each action's grant (§6) -------------------------------------------------------------


@case("SUB-2")
async def test_subscribe_needs_the_subscribe_action(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "history", "publish")])
    expect_error(await client.subscribe(channel, from_="beginning"), "forbidden", clause="SUB-2")
    expect_error(await client.subscribe(channel, from_=1), "forbidden", clause="SUB-2")
    # A channel with no grant at all is forbidden alike.
    expect_error(await client.subscribe(target.channel("none")), "forbidden", clause="SUB-2")


@case("HIS-3")
async def test_history_needs_the_history_action(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "subscribe", "publish")])
    reply = await client.history(channel, "beginning")
    expect_error(reply, "forbidden", clause="HIS-3")
    expect("messages" not in reply, clause="HIS-3", expected="no messages", received=reply)
    expect_error(await client.history(target.channel("none")), "forbidden", clause="HIS-3")


@case("PUB-5")
async def test_client_publish_needs_the_publish_action(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "subscribe", "history")])
    expect_error(await client.publish(channel, {"n": "x"}), "forbidden", clause="PUB-5")
    # Nothing stored: the next publish gets the offset right after the last one.
    after = await target.backend.publish(channel, {"n": 2})
    expect(
        after.get("offset") == 3,
        clause="PUB-5",
        expected="offset 3 for the next publish (the forbidden one stored nothing)",
        received=after,
        channel=channel,
    )


@case("ACK-1")
async def test_ack_needs_the_subscribe_action(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    session_id = _session_id()
    session = await target.register([grant(channel, "history", "publish")], session_id=session_id)
    client = await target.client(session=session)
    expect_error(await client.ack(channel, 2), "forbidden", clause="ACK-1")
    # No cursor was written: once allowed, an omitted `from` starts at "latest" (SUB-9).
    again = await target.register([grant(channel, "subscribe")], session_id=session_id)
    reader = await target.client(session=again)
    reply = expect_ok(await reader.subscribe(channel))
    expect(
        reply.get("from") == 4,
        clause="ACK-1",
        expected="from 4 (no cursor was set by the forbidden ack)",
        received=reply,
    )


# --- enforcement (§9.2) -----------------------------------------------------------------------


def _events_about(client: ReplayClient, channel: str) -> list[tuple[str, Any]]:
    return [
        (name, payload)
        for name, payload in client.events
        if isinstance(payload, dict) and payload.get("channel") == channel
    ]


@case("ACC-5", "SUB-2")
async def test_nothing_arrives_for_an_ungranted_channel(target: Target) -> None:
    allowed, denied = target.channel("allowed"), target.channel("denied")
    await target.backend.publish_many(denied, 3)
    actions = [a for a in ("subscribe", "history") if a == "subscribe" or a in target.features]
    # The session even asks for an auto-subscription to the denied channel (AUT-4).
    client = await target.client(
        grants=[grant(allowed, *actions)],
        subscribe=[{"channel": denied, "from": "beginning"}],
    )
    expect_ok(await client.subscribe(allowed, from_="beginning"))
    # Publishes to both channels race the denied requests.
    requests = [client.subscribe(denied, from_="beginning"), client.subscribe(denied, from_=1)]
    if "history" in target.features:
        requests.append(client.history(denied, "beginning"))
    publishes = [
        target.backend.publish_concurrently(denied, 20, 3),
        target.backend.publish_concurrently(allowed, 20),
    ]
    *replies, _, _ = await asyncio.gather(*requests, *publishes)
    for reply in replies:
        expect_error(reply, "forbidden", clause="ACC-5")
        expect("messages" not in reply, clause="ACC-5", expected="no messages", received=reply)
    await client.wait_for_offset(allowed, 20)
    await asyncio.sleep(QUIET_S)
    about = [
        (name, p) for name, p in _events_about(client, denied) if name != "replay:unsubscribed"
    ]
    expect(
        not about,
        clause="ACC-5",
        expected=f"no replay:messages or replay:subscribed for {denied} (no grant)",
        received=about,
        channel=denied,
    )


@case("ACC-6", "ACC-5")
async def test_narrowing_grants_ends_the_subscription(target: Target) -> None:
    kept, lost = target.channel("kept"), target.channel("lost")
    session_id = _session_id()
    session = await target.register(
        [grant(kept, "subscribe"), grant(lost, "subscribe")], session_id=session_id
    )
    client = await target.client(session=session)
    control = await target.client(grants=[grant(lost, "subscribe")])
    for c in (client, control):
        expect_ok(await c.subscribe(lost, from_="beginning"))
    expect_ok(await client.subscribe(kept, from_="beginning"))
    await target.backend.publish_many(lost, 3)
    await client.wait_for_offset(lost, 3)
    loop = asyncio.get_running_loop()
    # Publishes race the re-registration; then more follow once it has answered.
    racing = asyncio.ensure_future(target.backend.publish_concurrently(lost, 10, 3))
    again = await target.register([grant(kept, "subscribe")], session_id=session_id)
    narrowed = loop.time()
    # Racing publishes may land before or after the narrowing: count them all as before.
    head_at_narrowing = max(await racing)
    after = await target.backend.publish_many(lost, 3, [{"n": "after"}] * 3)
    ended = await client.wait_for_event(
        "replay:unsubscribed",
        lambda p: p.get("channel") == lost,
        timeout=BOUND_S + 5,
        clause="ACC-6",
    )
    elapsed = loop.time() - narrowed
    expect(
        ended.get("reason") == "revoked",
        clause="ACC-6",
        expected='replay:unsubscribed with reason "revoked"',
        received=ended,
        channel=lost,
    )
    expect(
        elapsed <= BOUND_S,
        clause="ACC-6",
        expected=f"replay:unsubscribed within {BOUND_S:g} s of the re-registration",
        received=f"after {elapsed:.3f} s",
        channel=lost,
    )
    expect(again.status == 200, clause="SES-2", expected="HTTP 200", received=again.status)
    await control.wait_for_offset(lost, after[-1])
    await target.backend.publish(kept, {"n": 0})
    await client.wait_for_offset(kept, 1, clause="ACC-6")  # the other subscription goes on
    await asyncio.sleep(QUIET_S)
    events = _events_about(client, lost)
    index = next(i for i, (name, _) in enumerate(events) if name == "replay:unsubscribed")
    late = [p for name, p in events[index + 1 :] if name == "replay:messages"]
    expect(
        not late,
        clause="ACC-6",
        expected=f"no replay:messages of {lost} after replay:unsubscribed",
        received=late,
        channel=lost,
    )
    # Published after the re-registration answered: the grant no longer covered the channel.
    beyond = [o for o in client.offsets(lost) if o > head_at_narrowing]
    expect(
        not beyond,
        clause="ACC-5",
        expected=f"no offset of {lost} published after the grant was removed",
        received=f"offsets {beyond}",
        channel=lost,
    )


@case("ACC-7", "SES-4")
async def test_grants_are_evaluated_per_operation(target: Target) -> None:
    first, second = target.channel("first"), target.channel("second")
    session_id = _session_id()
    session = await target.register([grant(first, "subscribe")], session_id=session_id)
    client = await target.client(session=session)
    expect_error(await client.subscribe(second, from_="latest"), "forbidden", clause="ACC-7")
    # Widened while connected: the same socket may now subscribe.
    await target.register(
        [grant(first, "subscribe"), grant(second, "subscribe")], session_id=session_id
    )
    expect(client.connected, clause="SES-4", expected="still connected", received="disconnected")
    expect_ok(await client.subscribe(second, from_="latest"), clause="ACC-7")
    expect_ok(await client.unsubscribe(second))
    # Narrowed again: it may not.
    await target.register([grant(first, "subscribe")], session_id=session_id)
    expect_error(await client.subscribe(second, from_="latest"), "forbidden", clause="ACC-7")
    expect_ok(await client.subscribe(first, from_="latest"), clause="ACC-7")


def _masked(error: dict[str, Any], channel: str) -> str:
    return json.dumps(error, sort_keys=True).replace(channel, "<channel>")


@case("ACC-8")
@pytest.mark.parametrize("action", ["subscribe", "history", "publish", "ack"])
async def test_forbidden_does_not_reveal_whether_a_channel_exists(
    target: Target, action: str
) -> None:
    feature = {"history": "history", "publish": "client-publish", "ack": "cursors"}.get(action)
    if feature is not None and feature not in target.features:
        pytest.skip(f"not claimed: feature {feature}")
    used, unused = target.channel("used"), target.channel("unused")
    await target.backend.publish_many(used, 3)
    owner = await target.client(grants=[grant(used, "subscribe")])
    expect_ok(await owner.subscribe(used, from_="beginning"))
    prober = await target.client(grants=[grant(target.channel("other"))])
    errors = []
    # The prober cannot know either channel's epoch; it sends the same made-up one to both
    # (the grant is checked before the epoch, SUB-1).
    guess = "conformance-guessed-epoch"
    for channel in (used, unused):
        if action == "subscribe":
            reply = await prober.subscribe(channel, from_=1, epoch=guess)
        elif action == "history":
            reply = await prober.history(channel, 1, epoch=guess)
        elif action == "publish":
            reply = await prober.publish(channel, {"n": 1})
        else:
            reply = await prober.ack(channel, 1, epoch=guess)
        errors.append(_masked(expect_error(reply, "forbidden", clause="ACC-8"), channel))
    expect(
        errors[0] == errors[1],
        clause="ACC-8",
        expected=f"the same forbidden error for a used and a never-used channel ({action})",
        received=f"used: {errors[0]}; never used: {errors[1]}",
    )


# --- sessions bound access (§4.3, §4.4) ---------------------------------------------------


@case("SES-12")
async def test_sessions_do_not_share_grants_or_auto_subscriptions(target: Target) -> None:
    mine, theirs = target.channel("mine"), target.channel("theirs")
    await target.backend.publish_many(theirs, 2)
    # Same client_id: sessions are still separate.
    await target.register(
        [grant(theirs, "subscribe")],
        subscribe=[{"channel": theirs, "from": "beginning"}],
        client_id="conformance-shared",
    )
    session = await target.register(
        [grant(mine, "subscribe")],
        subscribe=[{"channel": mine}],
        client_id="conformance-shared",
    )
    client = await target.client(session=session)
    subscribed = await client.wait_for_event("replay:subscribed", clause="SES-12")
    expect(
        subscribed.get("channel") == mine,
        clause="SES-12",
        expected=f"the session's own auto-subscription ({mine})",
        received=subscribed,
    )
    expect_error(await client.subscribe(theirs, from_="beginning"), "forbidden", clause="SES-12")
    await asyncio.sleep(QUIET_S)
    expect(
        not _events_about(client, theirs),
        clause="SES-12",
        expected=f"nothing about {theirs}, another session's channel",
        received=_events_about(client, theirs),
    )


@case("SES-12", "ACK-4")
async def test_one_session_cannot_move_another_sessions_cursor(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 6)
    grants = [grant(channel, "subscribe")]
    a = await target.register(grants, client_id="conformance-shared")
    b = await target.register(grants, client_id="conformance-shared")
    untouched = await target.register(grants, client_id="conformance-shared")
    client_a = await target.client(session=a)
    client_b = await target.client(session=b)
    expect_ok(await client_b.ack(channel, 2))
    expect_ok(await client_a.ack(channel, 5))
    expect_ok(await client_a.ack(channel, 4))
    for session, wanted in ((b, 3), (a, 6), (untouched, 7)):
        resumed = await target.client(session=session)
        reply = expect_ok(await resumed.subscribe(channel))
        expect(
            reply.get("from") == wanted,
            clause="SES-12",
            expected=f"from {wanted}: each session resumes from its own cursor",
            received=reply,
            channel=channel,
        )


@case("SES-15")
async def test_delete_disconnects_every_socket_of_the_session(target: Target) -> None:
    channel = target.channel()
    session = await target.register([grant(channel, "subscribe")])
    sockets = [await target.client(session=session) for _ in range(2)]
    control = await target.client(grants=[grant(channel, "subscribe")])
    for client in (*sockets, control):
        expect_ok(await client.subscribe(channel, from_="beginning"))
    await target.backend.publish_many(channel, 3)
    for client in sockets:
        await client.wait_for_offset(channel, 3)
    loop = asyncio.get_running_loop()
    deleted = await target.backend.delete_session(session.session_id)
    start = loop.time()
    expect_status(deleted, 204, clause="SES-13")
    # Published after the 204: none of it may reach the deleted session's sockets.
    await target.backend.publish_concurrently(channel, 5, 3)
    for client in sockets:
        await client.wait_disconnected(timeout=BOUND_S + 5, clause="SES-15")
        elapsed = loop.time() - start
        expect(
            elapsed <= BOUND_S,
            clause="SES-15",
            expected=f"{client.name} disconnected within {BOUND_S:g} s of the 204",
            received=f"after {elapsed:.3f} s",
        )
    await control.wait_for_offset(channel, 8)
    for client in sockets:
        late = [o for o in client.offsets(channel) if o > 3]
        expect(
            not late,
            clause="SES-15",
            expected="no replay:messages after the session was deleted",
            received=f"{client.name} received offsets {late}",
            channel=channel,
        )


@case("SES-16")
async def test_deleted_then_registered_again_is_a_new_session(target: Target) -> None:
    channel = target.channel()
    session_id = _session_id()
    old = await target.register([grant(channel, "subscribe")], session_id=session_id)
    expect_status(await target.backend.delete_session(session_id), 204, clause="SES-13")
    new = await target.register([grant(channel, "subscribe")], session_id=session_id)
    expect(new.status == 201, clause="SES-16", expected="HTTP 201", received=new.status)
    expect(
        new.session_id == session_id,
        clause="SES-16",
        expected=f"session_id {session_id!r}",
        received=new.session_id,
    )
    client = await target.client(session=new)
    expect(client.connected, clause="SES-16", expected="connected", received="refused")
    expect(new.token != old.token, clause="SES-16", expected="a new token", received="the old")


@case("SES-16", "ACK-4")
async def test_deleted_then_registered_again_has_no_cursors(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session_id = _session_id()
    grants = [grant(channel, "subscribe")]
    old = await target.register(grants, session_id=session_id)
    client = await target.client(session=old)
    expect_ok(await client.ack(channel, 3))
    await client.disconnect()
    expect_status(await target.backend.delete_session(session_id), 204, clause="SES-13")
    new = await target.register(grants, subscribe=[{"channel": channel}], session_id=session_id)
    expect(new.status == 201, clause="SES-16", expected="HTTP 201", received=new.status)
    fresh = await target.client(session=new)
    # Without a cursor, the auto-subscription starts at its default, "latest" (AUT-1).
    subscribed = await fresh.wait_for_event("replay:subscribed", clause="SES-16")
    expect(
        subscribed.get("from") == 6,
        clause="SES-16",
        expected="auto-subscription from 6 (no cursor: latest)",
        received=subscribed,
    )
    expect_ok(await fresh.unsubscribe(channel))
    reply = expect_ok(await fresh.subscribe(channel))
    expect(
        reply.get("from") == 6,
        clause="SES-16",
        expected="from 6: an omitted from without a cursor is latest",
        received=reply,
    )


@case("SES-11", timeout=20)
async def test_expired_session_is_disconnected(target: Target) -> None:
    ttl_s = 2
    loop = asyncio.get_running_loop()
    session = await target.register([], ttl_s=ttl_s)
    registered = loop.time()  # expires_at is at most registration time + ttl_s
    client = await target.client(session=session)
    await client.wait_disconnected(timeout=ttl_s + BOUND_S + 5, clause="SES-11")
    elapsed = loop.time() - registered
    expect(
        elapsed <= ttl_s + BOUND_S,
        clause="SES-11",
        expected=f"disconnected within {BOUND_S:g} s after the {ttl_s} s TTL",
        received=f"disconnected {elapsed:.3f} s after the registration answered",
    )


@case("EVT-14", "SES-10", timeout=20)
async def test_an_expired_sessions_socket_can_do_nothing(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    loop = asyncio.get_running_loop()
    session = await target.register([grant(channel)], ttl_s=1)
    registered = loop.time()  # expires_at is at most this + 1 s, whatever the clocks say
    client = await target.client(session=session)
    # Just after the expiry: if the socket is still connected, every event fails
    # unauthorized and changes nothing.
    await asyncio.sleep(max(0.0, registered + 1.2 - loop.time()))
    if not client.connected:
        return  # disconnected already (SES-11): nothing to send on
    try:
        reply = await client.subscribe(channel, from_="beginning")
    except ConnectionLost:
        return  # dropped meanwhile (SES-11), before it answered
    expect_error(reply, "unauthorized", clause="EVT-14", channel=channel)
    await asyncio.sleep(0.3)
    expect(
        not client.offsets(channel),
        clause="EVT-14",
        expected="no replay:messages for the expired session's socket",
        received=client.offsets(channel),
        channel=channel,
    )
