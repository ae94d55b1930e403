"""Sessions (spec §4.3, §4.4), connecting with their tokens (§5), and the API key (§4.1)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from conformance import (
    ConnectRefused,
    Target,
    case,
    current,
    expect,
    expect_error,
    expect_ok,
    expect_refused,
    expect_status,
    grant,
)
from conformance.protocol import API, DEFAULT_TTL_S, MAX_TTL_S, messages_path, session_path

HOUR_MS = 3_600_000
# Slack between the server clock as seen through message timestamps and the moment it
# computed expires_at: generous enough for any store round trip, tight enough to catch a
# wrong unit or a forgotten default.
CLOCK_SLACK_MS = 1000


def _session_id() -> str:
    return f"conformance-{secrets.token_hex(8)}"


def _body(session_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"client_id": "conformance", "grants": [], **extra}
    if session_id is not None:
        body["session_id"] = session_id
    return body


@case("SES-1")
async def test_new_session_id_answers_201(target: Target) -> None:
    session_id = _session_id()
    session = await target.register([], session_id=session_id)
    expect(session.status == 201, clause="SES-1", expected="HTTP 201", received=session.status)
    expect(
        session.session_id == session_id,
        clause="SES-1",
        expected=f"session_id {session_id!r}",
        received=session.session_id,
    )


@case("SES-1")
async def test_server_chooses_unique_session_ids(target: Target) -> None:
    first = await target.register([])
    second = await target.register([])
    for session in (first, second):
        expect(session.status == 201, clause="SES-1", expected="HTTP 201", received=session.status)
    expect(
        bool(first.session_id) and first.session_id != second.session_id,
        clause="SES-1",
        expected="two different server-chosen session_ids",
        received=f"{first.session_id!r} and {second.session_id!r}",
    )


@case("SES-2")
async def test_reregistration_replaces_grants_and_auto_subscriptions(target: Target) -> None:
    old, new = target.channel("old"), target.channel("new")
    session_id = _session_id()
    first = await target.register(
        [grant(old, "subscribe")],
        subscribe=[{"channel": old}],
        session_id=session_id,
        ttl_s=600,
    )
    second = await target.register(
        [grant(new, "subscribe")],
        subscribe=[{"channel": new}],
        session_id=session_id,
        ttl_s=7200,
    )
    expect(second.status == 200, clause="SES-2", expected="HTTP 200", received=second.status)
    expect(
        second.session_id == session_id,
        clause="SES-2",
        expected=f"the same session_id {session_id!r}",
        received=second.session_id,
    )
    expect(
        second.expires_at - first.expires_at >= (7200 - 600) * 1000 - CLOCK_SLACK_MS,
        clause="SES-2",
        expected="a new expiry (ttl_s 7200 instead of 600)",
        received=f"expires_at {first.expires_at} then {second.expires_at}",
    )
    client = await target.client(session=second)
    # The auto-subscription to the new channel starting proves the new grant is in force.
    subscribed = await client.wait_for_event("replay:subscribed", clause="SES-2")
    expect(
        subscribed.get("channel") == new,
        clause="SES-2",
        expected=f"auto-subscription to {new} only",
        received=subscribed,
    )
    expect_error(await client.subscribe(old, from_="latest"), "forbidden", clause="SES-2")
    auto = [p.get("channel") for name, p in client.events if name == "replay:subscribed"]
    expect(auto == [new], clause="SES-2", expected=f"[{new}]", received=auto)


@case("SES-2", feature="cursors")
async def test_reregistration_keeps_cursors(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session_id = _session_id()
    session = await target.register([grant(channel, "subscribe")], session_id=session_id)
    client = await target.client(session=session)
    expect_ok(await client.ack(channel, 3))
    again = await target.register([grant(channel, "subscribe")], session_id=session_id)
    resumed = await target.client(session=again)
    reply = expect_ok(await resumed.subscribe(channel))
    expect(
        reply.get("from") == 4, clause="SES-2", expected="from 4 (cursor 3 kept)", received=reply
    )


@case("SES-3", "SES-4")
async def test_concurrent_registrations_make_one_session(target: Target) -> None:
    session_id = _session_id()
    answers = await asyncio.gather(
        *(target.backend.register_raw(_body(session_id)) for _ in range(10))
    )
    statuses = sorted(status for status, _ in answers)
    expect(
        statuses == [200] * 9 + [201],
        clause="SES-3",
        expected="exactly one 201 and nine 200",
        received=statuses,
    )
    ids = {body.get("session_id") for _, body in answers if isinstance(body, dict)}
    expect(ids == {session_id}, clause="SES-3", expected=f"{{{session_id!r}}}", received=ids)
    current().defer(lambda: target.backend.delete_session(session_id))
    tokens = [body["token"] for _, body in answers if isinstance(body, dict)]
    accepted = []
    for token in tokens:
        client = await target.client(connect=False)
        try:
            await client.connect(token)
            accepted.append(token)
        except ConnectRefused:
            pass
    expect(
        len(accepted) == 1,
        clause="SES-4",
        expected="exactly one of the 10 tokens accepted (the last registration's)",
        received=f"{len(accepted)} accepted",
    )


@case("SES-4", "CON-2")
async def test_reregistration_rotates_the_token(target: Target) -> None:
    session_id = _session_id()
    first = await target.register([], session_id=session_id)
    connected = await target.client(session=first)
    second = await target.register([], session_id=session_id)
    expect(
        second.token != first.token,
        clause="SES-4",
        expected="a fresh token",
        received="the same token again",
    )
    stale = await target.client(connect=False)
    await expect_refused(stale.connect(first.token), clause="SES-4")
    await target.client(session=second)
    # Connected sockets stay connected (SES-4): the socket still answers an event.
    reply = await connected.unsubscribe(target.channel())
    expect_error(reply, "not_subscribed", clause="SES-4")
    expect(connected.connected, clause="SES-4", expected="still connected", received="disconnected")


@case("SES-5")
@pytest.mark.parametrize("ttl_s", [None, 120])
async def test_expires_at_is_registration_time_plus_ttl(target: Target, ttl_s: int | None) -> None:
    # The server's clock, read through message timestamps (MSG-4), brackets the registration.
    max_ttl = target.limits.get("max_ttl_s", MAX_TTL_S)
    if ttl_s is not None and ttl_s > max_ttl:
        pytest.skip(f"ttl_s {ttl_s} is above limits.max_ttl_s {max_ttl}")
    channel = target.channel()
    await target.backend.publish(channel, "before")
    session = await target.register([], ttl_s=ttl_s)
    await target.backend.publish(channel, "after")
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    await reader.wait_for_offset(channel, 2)
    low, high = (int(m["ts"]) for m in reader.messages(channel)[:2])
    ttl_ms = (ttl_s or min(DEFAULT_TTL_S, max_ttl)) * 1000  # SES-5
    registered = session.expires_at - ttl_ms
    expect(
        low - CLOCK_SLACK_MS <= registered <= high + CLOCK_SLACK_MS,
        clause="SES-5",
        expected=f"expires_at = registration time + {ttl_ms} ms, the registration being "
        f"between {low} and {high} (server clock)",
        received=f"expires_at {session.expires_at}, i.e. registered at {registered}",
    )


@case("SES-7")
@pytest.mark.parametrize("second_from", [None, "beginning"])
async def test_duplicate_auto_subscription_is_bad_request(
    target: Target, second_from: str | None
) -> None:
    channel = target.channel()
    entry: dict[str, Any] = {"channel": channel}
    twice = [entry, {**entry, "from": second_from} if second_from else entry]
    answer = await target.backend.register_raw(_body(subscribe=twice))
    expect_status(answer, 400, clause="SES-7", code="bad_request")


@case("SES-13")
async def test_delete_session(target: Target) -> None:
    session = await target.register([])
    deleted = await target.backend.delete_session(session.session_id)
    expect_status(deleted, 204, clause="SES-13")
    expect(deleted.body is None, clause="SES-13", expected="an empty body", received=deleted.body)
    again = await target.backend.delete_session(session.session_id)
    expect_status(again, 404, clause="SES-13", code="not_found")
    unknown = await target.backend.delete_session(_session_id())
    expect_status(unknown, 404, clause="SES-13", code="not_found")


@case("SES-23", "CON-2")
async def test_deleted_session_token_is_refused(target: Target) -> None:
    session = await target.register([])
    expect_status(await target.backend.delete_session(session.session_id), 204, clause="SES-13")
    client = await target.client(session=session, connect=False)
    await expect_refused(client.connect(), clause="SES-23")


@case("CON-1")
async def test_live_session_token_is_accepted(target: Target) -> None:
    session = await target.register([])
    client = await target.client(session=session, connect=False)
    await client.connect()
    expect(
        client.connected and client.sid is not None,
        clause="CON-1",
        expected="a connection to / with a socket id",
        received=f"connected={client.connected} sid={client.sid}",
    )


@case("CON-2")
@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": ""}, {"token": 42}, "unknown", "replaced", "revoked"],
    ids=["no-auth", "no-token", "empty-token", "non-string", "unknown", "replaced", "revoked"],
)
async def test_bad_tokens_are_refused(target: Target, auth: object) -> None:
    if auth == "unknown":
        auth = {"token": secrets.token_urlsafe(32)}
    elif auth in ("replaced", "revoked"):
        session = await target.register([])
        if auth == "replaced":
            await target.register([], session_id=session.session_id)
        else:
            await target.backend.delete_session(session.session_id)
        auth = {"token": session.token}
    client = await target.client(connect=False)
    await expect_refused(client.connect_raw(auth), clause="CON-2")


@case("SES-10", "CON-2")
async def test_expired_token_is_refused(target: Target) -> None:
    session = await target.register([], ttl_s=1)
    await asyncio.sleep(2.1)  # past expires_at, whatever the rounding to milliseconds
    client = await target.client(session=session, connect=False)
    await expect_refused(client.connect(), clause="SES-10")


@case("API-2")
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "{key}", "Basic {key}"],
    ids=["missing", "wrong-key", "no-scheme", "wrong-scheme"],
)
async def test_backend_routes_need_the_api_key(target: Target, authorization: str | None) -> None:
    channel = target.channel()
    headers = {"Authorization": authorization.format(key=target.api_key)} if authorization else {}
    routes: list[tuple[str, str, object]] = [
        ("POST", session_path(), _body()),
        ("DELETE", session_path(_session_id()), None),
        ("POST", messages_path(channel), {"data": 1}),
    ]
    for method, path, body in routes:
        kwargs: dict[str, Any] = {"body": body} if body is not None else {}
        answer = await target.backend.request(
            method, path, auth=False, headers=headers, channel=channel, **kwargs
        )
        expect_status(answer, 401, clause="API-2", code="unauthorized", channel=channel)
    info = await target.backend.request("GET", f"{API}/info", auth=False, headers=headers)
    expect_status(info, 200, clause="INF-1")


# --- the session lifecycle made exact in 1.1 (SES-17, SES-18) -------------------------------

# Past expires_at of a ttl_s of 1 once this long has passed since the registration answered.
EXPIRY_WAIT_S = 1.5


@case("SES-17", "SES-4")
async def test_an_expired_session_id_registers_a_new_session(target: Target) -> None:
    session_id = _session_id()
    old = await target.register([], session_id=session_id, ttl_s=1)
    await asyncio.sleep(EXPIRY_WAIT_S)
    new = await target.register([], session_id=session_id)
    expect(
        new.status == 201,
        clause="SES-17",
        expected="HTTP 201: an expired session is gone, so this is a new one",
        received=new.status,
    )
    expect(
        new.session_id == session_id,
        clause="SES-17",
        expected=f"session_id {session_id!r}",
        received=new.session_id,
    )
    await target.client(session=new)
    stale = await target.client(connect=False)
    await expect_refused(stale.connect(old.token), clause="SES-4")


@case("SES-17", feature="cursors")
async def test_an_expired_session_id_registers_without_its_cursors(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session_id, grants = _session_id(), [grant(channel, "subscribe")]
    loop = asyncio.get_running_loop()
    # 2 s rather than 1: the old session must still be live while it connects and acks.
    ttl_s = 2
    old = await target.register(grants, session_id=session_id, ttl_s=ttl_s)
    registered = loop.time()
    client = await target.client(session=old)
    expect_ok(await client.ack(channel, 3), clause="SES-17")
    await client.disconnect()
    past_expiry_s = EXPIRY_WAIT_S - 1  # as far past expires_at as the 1 s cases wait
    await asyncio.sleep(max(0.0, ttl_s + past_expiry_s - (loop.time() - registered)))
    new = await target.register(grants, session_id=session_id)
    expect(new.status == 201, clause="SES-17", expected="HTTP 201", received=new.status)
    fresh = await target.client(session=new)
    reply = expect_ok(await fresh.subscribe(channel), clause="SES-17")
    expect(
        reply.get("from") == 6,
        clause="SES-17",
        expected="from 6: the expired session's cursor (3) is gone, so an omitted from is latest",
        received=reply,
    )


@case("SES-13")
async def test_deleting_an_expired_session_is_not_found(target: Target) -> None:
    session = await target.register([], ttl_s=1)
    await asyncio.sleep(EXPIRY_WAIT_S)
    answer = await target.backend.delete_session(session.session_id)
    expect_status(answer, 404, clause="SES-13", code="not_found")


@case("SES-18")
async def test_reregistration_may_change_the_client_id(target: Target) -> None:
    session_id = _session_id()
    await target.register([], session_id=session_id, client_id="conformance-a")
    again = await target.register([], session_id=session_id, client_id="conformance-b")
    expect(
        again.status == 200 and again.session_id == session_id,
        clause="SES-18",
        expected=f"HTTP 200 for {session_id!r}: the same session under another client_id",
        received=f"HTTP {again.status} for {again.session_id!r}",
    )
    client = await target.client(session=again)
    expect(client.connected, clause="SES-18", expected="connected", received="refused")


@case("SES-18", feature="cursors")
async def test_reregistration_with_another_client_id_keeps_cursors(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session_id, grants = _session_id(), [grant(channel, "subscribe")]
    session = await target.register(grants, session_id=session_id, client_id="conformance-a")
    client = await target.client(session=session)
    expect_ok(await client.ack(channel, 3), clause="SES-18")
    again = await target.register(grants, session_id=session_id, client_id="conformance-b")
    expect(again.status == 200, clause="SES-18", expected="HTTP 200", received=again.status)
    resumed = await target.client(session=again)
    reply = expect_ok(await resumed.subscribe(channel), clause="SES-18")
    expect(
        reply.get("from") == 4,
        clause="SES-18",
        expected="from 4: the cursor (3) kept though the client_id changed",
        received=reply,
    )


@case("SES-24", "SES-4", timeout=20)
async def test_a_reregistration_keeps_connected_sockets_past_the_old_expiry(target: Target) -> None:
    """A session registered for 2 s and re-registered for an hour at once: its socket, connected
    before, is still connected and subscribed a second after the old expiry (SES-11's bound)."""
    old_ttl_s = 2
    session_id, channel = _session_id(), target.channel()
    grants = [grant(channel, "subscribe")]
    first = await target.register(grants, session_id=session_id, ttl_s=old_ttl_s)
    registered = asyncio.get_running_loop().time()
    client = await target.client(session=first)
    expect_ok(await client.subscribe(channel, "latest"), clause="SUB-8")
    await target.register(grants, session_id=session_id, ttl_s=3600)
    remaining = old_ttl_s + 1.5 - (asyncio.get_running_loop().time() - registered)
    await asyncio.sleep(max(0.0, remaining))  # past the old expiry and SES-11's 1 s after it
    expect(
        client.connected,
        clause="SES-24",
        expected="still connected: the re-registration replaced the 2 s expiry with an hour",
        received=f"disconnected: {client.disconnects[-1] if client.disconnects else '?'}",
    )
    offset = (await target.backend.publish(channel, {"after": "the old expiry"}))["offset"]
    await client.wait_for_offset(channel, offset, clause="SES-24")
