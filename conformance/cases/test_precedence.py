"""The check order of every client event and backend route (spec §6.6, and §4.1 "Check
order"): each request here breaks two or more rules at once, and must fail with the code of
the first check its event's or route's order names (EVT-10, UNS-7, ACK-10, PUB-8, HIS-11;
API-9 to API-12, PUB-9, HIS-12). Each case also sends the request that breaks only the later
rule, as a control. SUB-1's order is checked in ``test_subscribe.py``.
"""

from __future__ import annotations

import json
import secrets
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

from conformance import (
    Indeterminate,
    ReplayClient,
    Target,
    case,
    current,
    expect,
    expect_error,
    expect_ok,
    expect_status,
    fail,
    grant,
)
from conformance.backend import HttpResponse
from conformance.protocol import API, INFO_PATH, messages_path, retention_path, session_path

JSON: Final = {"Content-Type": "application/json"}
TEXT: Final = {"Content-Type": "text/plain"}
NO_TYPE: Final = ("Content-Type",)  # send no Content-Type at all
INVALID_CHANNEL: Final = "not a channel"  # spaces: CHN-1 refuses it
MAX_OFFSET: Final = 9_007_199_254_740_991
EVENTS: Final = (
    "replay:subscribe",
    "replay:unsubscribe",
    "replay:ack",
    "replay:publish",
    "replay:history",
)
FEATURE_OF: Final = {
    "replay:ack": "cursors",
    "replay:publish": "client-publish",
    "replay:history": "history",
}


def _random(label: str) -> str:
    return f"conformance-{label}-{secrets.token_hex(8)}"


def _wrong_key() -> dict[str, str]:
    return {"Authorization": f"Bearer {_random('wrong-key')}"}


def _oversized(target: Target) -> int:
    """Bytes of padding that no body limit the suite can count on accepts: the size of
    ``test_http_api``'s API-7 case (the limit is at least API-8's minimum, and not advertised)."""
    return max(4 * 1024 * 1024, 8 * target.limits["max_payload_bytes"])


def _too_big(target: Target) -> str:
    """A string whose compact encoding (with its quotes) is above ``max_payload_bytes``, in a
    body well within API-8's minimum body limit and a packet within TRN-7's bound."""
    return "x" * target.limits["max_payload_bytes"]


async def _send(
    target: Target,
    method: str,
    path: str,
    *,
    clause: str,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: bool = True,
    omit: Sequence[str] = (),
    channel: str | None = None,
) -> HttpResponse:
    """One raw request; a closed connection instead of an answer fails ``clause``."""
    try:
        with warnings.catch_warnings():
            # aiohttp suggests streaming bodies above 1 MiB; the large ones here are on purpose.
            warnings.filterwarnings("ignore", "Sending a large body", ResourceWarning)
            return await target.backend.request(
                method,
                path,
                raw=raw,
                headers=headers,
                auth=auth,
                omit=omit,
                channel=channel,
                timeout=30,
            )
    except Indeterminate as exc:
        fail(clause, f"an HTTP answer to {method} {path}, not a closed connection", str(exc))


async def _expect_head(target: Target, channel: str, head: int, clause: str) -> None:
    """``channel`` holds exactly ``head`` messages: the failed requests stored nothing."""
    reader = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await reader.subscribe(channel, from_="latest"), clause=clause)
    expect(
        reply.get("head") == head,
        clause=clause,
        expected=f"head {head}: failed requests store nothing",
        received=reply,
        channel=channel,
    )
    await reader.close()


# --- §4.1 the order of the HTTP checks ----------------------------------------------------------


@case("API-9", "API-6")
async def test_an_unknown_route_is_not_found_before_the_key_is_checked(target: Target) -> None:
    channel = target.channel()
    segment = quote(channel, safe=":@")
    routes = [
        ("POST", f"{API}/no-such-route"),
        ("GET", f"{API}/no-such-route"),
        ("PUT", f"{API}/channels/{segment}"),
        ("POST", f"{API}/channels/{segment}/no-such-route"),
    ]
    # The route of a feature the target does not advertise is unknown too (API-6).
    if "history" not in target.features:
        routes.append(("GET", messages_path(channel)))
    if "retention" not in target.features:
        routes.append(("PUT", retention_path(channel)))
    for method, path in routes:
        for key in ({}, _wrong_key()):
            # No key or a wrong one, AND a body that is neither JSON nor labelled JSON.
            answer = await _send(
                target, method, path, clause="API-9", raw=b"{", headers=TEXT | key, auth=False
            )
            expect_status(answer, 404, clause="API-9", code="not_found", channel=channel)


@case("API-9", "API-2")
async def test_the_key_is_checked_before_the_request_itself(target: Target) -> None:
    channel = target.channel()
    stale = _random("not-an-epoch")
    too_big = json.dumps({"data": _too_big(target)}).encode()
    # Each request is wrong in more ways than its key: (method, path, body, headers, omit).
    requests: list[tuple[str, str, bytes | None, Mapping[str, str], Sequence[str]]] = [
        ("POST", messages_path(INVALID_CHANNEL), b"{", TEXT, ()),
        ("POST", messages_path(channel), too_big, JSON, ()),
        ("POST", session_path(), b'{"client_id": 5}', {}, NO_TYPE),
        ("DELETE", session_path(_random("no-such-session")), None, {}, ()),
    ]
    if "history" in target.features:
        query = urlencode({"from": 99, "epoch": stale})
        requests.append(("GET", f"{messages_path(INVALID_CHANNEL)}?from=0&limit=x", None, {}, ()))
        requests.append(("GET", f"{messages_path(channel)}?{query}", None, {}, ()))
    if "retention" in target.features:
        requests.append(("PUT", retention_path(INVALID_CHANNEL), b"[", TEXT, ()))
    for method, path, raw, headers, omit in requests:
        for key in ({}, _wrong_key()):
            answer = await _send(
                target,
                method,
                path,
                clause="API-9",
                raw=raw,
                headers={**headers, **key},
                auth=False,
                omit=omit,
                channel=channel,
            )
            expect_status(answer, 401, clause="API-9", code="unauthorized", channel=channel)
    # A body above any limit: the key is still checked first (the body need not be read).
    padded = b'{"data": 1}' + b" " * _oversized(target)
    answer = await _send(
        target, "POST", messages_path(channel), clause="API-9", raw=padded, headers=JSON, auth=False
    )
    expect_status(answer, 401, clause="API-9", code="unauthorized", channel=channel)
    await _expect_head(target, channel, 0, "API-9")


@case("API-9", "API-7", "API-11")
async def test_the_body_limit_is_checked_before_what_the_body_holds(target: Target) -> None:
    channel, probed = target.channel(), target.channel("probe")
    padding = b" " * _oversized(target)
    # The Content-Type is a header, checked before the body limit: 400 however large the body.
    for headers, omit in ((TEXT, ()), ({}, NO_TYPE)):
        answer = await _send(
            target,
            "POST",
            messages_path(channel),
            clause="API-9",
            raw=b'{"data": 1}' + padding,
            headers=headers,
            omit=omit,
            channel=channel,
        )
        expect_status(answer, 400, clause="API-9", code="bad_request", channel=channel)
    # Whitespace is JSON: this body is valid, and above the limit only if it is refused.
    probe = await _send(
        target,
        "POST",
        messages_path(probed),
        clause="API-9",
        raw=b'{"data": 1}' + padding,
        headers=JSON,
        channel=probed,
    )
    if probe.status in (200, 201):
        return  # the target's body limit is above this size: step 4 cannot fail here
    expect_status(probe, 413, clause="API-7", code="payload_too_large", channel=probed)
    bodies = [
        (messages_path(INVALID_CHANNEL), b'{"data": 1}' + padding, "POST"),
        (messages_path(channel), b"{" + padding, "POST"),
        (messages_path(channel), b'{"data": 1, "extra": 2}' + padding, "POST"),
        (session_path(), b'{"client_id": 5}' + padding, "POST"),
    ]
    if "retention" in target.features:
        bodies.append((retention_path(INVALID_CHANNEL), b'{"max_messages": 0}' + padding, "PUT"))
    for path, raw, method in bodies:
        answer = await _send(
            target, method, path, clause="API-9", raw=raw, headers=JSON, channel=channel
        )
        expect_status(answer, 413, clause="API-9", code="payload_too_large", channel=channel)
    await _expect_head(target, channel, 0, "API-9")


@case("API-9", "SES-13")
async def test_an_unknown_session_is_checked_after_the_key(target: Target) -> None:
    # A live-looking id, one no registration could have created, and one far too long.
    for session_id in (_random("no-such-session"), "has space", "x" * 300):
        path = session_path(session_id)
        answer = await _send(target, "DELETE", path, clause="API-9", auth=False)
        expect_status(answer, 401, clause="API-9", code="unauthorized")
        answer = await _send(target, "DELETE", path, clause="API-9")
        expect_status(answer, 404, clause="API-9", code="not_found")


@case("API-10", "API-9")
async def test_a_route_with_another_method_is_not_found(target: Target) -> None:
    channel = target.channel()
    session = await target.register([grant(channel, "subscribe")])
    wrong = [
        ("PUT", session_path()),
        ("GET", session_path()),
        ("DELETE", session_path()),
        ("POST", INFO_PATH),
        ("DELETE", INFO_PATH),
        ("GET", session_path(session.session_id)),
        ("POST", session_path(session.session_id)),
        ("PUT", messages_path(channel)),
        ("DELETE", messages_path(channel)),
        ("PATCH", messages_path(channel)),
    ]
    if "retention" in target.features:
        wrong += [("GET", retention_path(channel)), ("POST", retention_path(channel))]
    for method, path in wrong:
        for auth in (False, True):  # 404 whatever the key: the route is checked first
            answer = await _send(
                target,
                method,
                path,
                clause="API-10",
                raw=b'{"data": 1, "max_messages": 1}',
                headers=JSON,
                auth=auth,
                channel=channel,
            )
            expect_status(answer, 404, clause="API-10", code="not_found", channel=channel)
    await _expect_head(target, channel, 0, "API-10")
    # The session those requests named is untouched: its token still connects.
    client = await target.client(session=session)
    expect_ok(await client.subscribe(channel, from_="latest"), clause="API-10")


def _json_routes(target: Target, channel: str) -> list[tuple[str, str, bytes, tuple[int, ...]]]:
    """(method, path, a valid body, its success statuses) of every route that takes a body."""
    session_id = _random("content-type")
    current().defer(lambda: target.backend.delete_session(session_id))
    registration = {"session_id": session_id, "client_id": "c", "grants": []}
    routes = [
        ("POST", messages_path(channel), b'{"data": {"n": 1}}', (201,)),
        # 201 the first time, 200 once the session exists (SES-1, SES-2)
        ("POST", session_path(), json.dumps(registration).encode(), (200, 201)),
    ]
    if "retention" in target.features:
        routes.append(("PUT", retention_path(channel), b'{"max_messages": 1000}', (200,)))
    return routes


@case("API-11", "API-1")
async def test_only_a_body_labelled_json_is_read(target: Target) -> None:
    channel = target.channel()
    routes = _json_routes(target, channel)
    refused: list[tuple[Mapping[str, str], Sequence[str]]] = [
        ({}, NO_TYPE),
        (TEXT, ()),
        ({"Content-Type": "text/plain; charset=utf-8"}, ()),
        ({"Content-Type": "application/x-www-form-urlencoded"}, ()),
    ]
    for headers, omit in refused:
        for method, path, raw, _ in routes:
            answer = await _send(
                target, method, path, clause="API-11", raw=raw, headers=headers, omit=omit
            )
            expect_status(answer, 400, clause="API-11", code="bad_request", channel=channel)
    await _expect_head(target, channel, 0, "API-11")
    accepted = ("application/json", "application/json; charset=utf-8", "Application/JSON")
    for content_type in accepted:
        for method, path, raw, statuses in routes:
            headers = {"Content-Type": content_type}
            answer = await _send(target, method, path, clause="API-11", raw=raw, headers=headers)
            expect(
                answer.status in statuses,
                clause="API-11",
                expected=f"{method} {path} with Content-Type {content_type!r} accepted",
                received=f"HTTP {answer.status} {answer.body}",
                channel=channel,
            )
    await _expect_head(target, channel, len(accepted), "API-11")


@case("API-12", "INF-1")
async def test_info_answers_whatever_authorization_it_carries(target: Target) -> None:
    for value in (_wrong_key()["Authorization"], "Basic dXNlcjpwYXNz", "Bearer", "garbage"):
        headers = {"Authorization": value}
        answer = await _send(target, "GET", INFO_PATH, clause="API-12", headers=headers)
        body = expect_status(answer, 200, clause="API-12")
        expect(
            isinstance(body, dict) and body.get("protocol") == "replay/1",
            clause="API-12",
            expected="the info object",
            received=body,
        )


# --- §4.5, §4.6: the route's own checks ---------------------------------------------------------


@case("PUB-9", "LIM-4")
async def test_a_backend_publish_checks_the_size_of_data_after_the_body(target: Target) -> None:
    channel = target.channel()
    message_id = _random("id")
    await target.backend.publish(channel, {"n": 0}, id=message_id)
    too_big = _too_big(target)
    # Too large AND wrong in another way: the 400 comes first.
    wrong = [
        (INVALID_CHANNEL, {"data": too_big}),
        (channel, {"data": too_big, "extra": 1}),  # schema
        (channel, {"data": too_big, "id": ""}),  # schema
        (channel, {"data": [too_big, 2**53]}),  # I-JSON (MSG-8)
        (channel, {"data": 1, "id": message_id, "extra": 1}),  # a repeated id changes nothing
    ]
    for name, body in wrong:
        answer = await target.backend.publish_raw(name, body)
        expect_status(answer, 400, clause="PUB-9", code="bad_request", channel=channel)
    repeated = b'{"data": "%s", "data": 1}' % too_big.encode()  # MSG-7
    answer = await _send(
        target, "POST", messages_path(channel), clause="PUB-9", raw=repeated, headers=JSON
    )
    expect_status(answer, 400, clause="PUB-9", code="bad_request", channel=channel)
    # Too large AND a repeated id: the size is checked before duplicates are looked up.
    answer = await target.backend.publish_raw(channel, {"data": too_big, "id": message_id})
    expect_status(answer, 413, clause="PUB-9", code="payload_too_large", channel=channel)
    await _expect_head(target, channel, 1, "PUB-9")


@case("HIS-12", "API-9")
async def test_a_backend_history_read_checks_the_query_before_the_state(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    stale = _random("not-an-epoch")

    def path(name: str, **query: object) -> str:
        return f"{messages_path(name)}?{urlencode(query)}"

    # No key AND a bad query, an invalid channel, a stale epoch: 401.
    for unkeyed in (
        path(INVALID_CHANNEL, **{"from": 0}),
        path(channel, **{"from": 99, "epoch": stale}),
    ):
        answer = await _send(target, "GET", unkeyed, clause="HIS-12", auth=False)
        expect_status(answer, 401, clause="HIS-12", code="unauthorized", channel=channel)
    # A bad query or channel AND a stale epoch above the head: 400.
    for malformed in (
        path(channel, **{"from": 99, "epoch": stale, "limit": 0}),
        path(channel, **{"from": "soon", "epoch": stale}),
        path(channel, **{"from": 99}),  # no epoch (HIS-9)
        path(INVALID_CHANNEL, **{"from": 99, "epoch": stale}),
    ):
        answer = await _send(target, "GET", malformed, clause="HIS-12")
        expect_status(answer, 400, clause="HIS-12", code="bad_request", channel=channel)
    # A stale epoch AND above the head: the epoch comes first.
    for from_ in (5, 99, MAX_OFFSET):
        answer = await _send(
            target, "GET", path(channel, **{"from": from_, "epoch": stale}), clause="HIS-12"
        )
        expect_status(answer, 409, clause="HIS-12", code="epoch_mismatch", channel=channel)
    if "retention" in target.features:  # a stale epoch AND below the first retained offset
        await target.backend.set_retention(channel, max_messages=1)
        await target.backend.publish(channel, {"n": 3})
        answer = await _send(
            target, "GET", path(channel, **{"from": 1, "epoch": stale}), clause="HIS-12"
        )
        expect_status(answer, 409, clause="HIS-12", code="epoch_mismatch", channel=channel)


# --- §6.6 the order of the checks of each client event -------------------------------------------


def _well_formed(event: str, channel: str) -> dict[str, Any]:
    """A valid payload of ``event`` for ``channel``."""
    payloads: dict[str, dict[str, Any]] = {
        "replay:subscribe": {"channel": channel, "from": "beginning"},
        "replay:unsubscribe": {"channel": channel},
        "replay:ack": {"channel": channel, "offset": 1, "epoch": _random("not-an-epoch")},
        "replay:publish": {"channel": channel, "data": {"n": 1}},
        "replay:history": {"channel": channel},
    }
    return payloads[event]


@case("EVT-10", "TRN-3", "EVT-3", "EVT-5")
async def test_a_malformed_event_is_a_bad_request_whatever_else_is_wrong(target: Target) -> None:
    channel, denied = target.channel(), target.channel("denied")
    await target.backend.publish(denied, {"n": 0})
    client = await target.client(grants=[grant(channel, "subscribe")])
    for event in EVENTS:
        payload = _well_formed(event, denied)  # on a channel the session may not use
        malformed: list[tuple[object, ...]] = [
            (payload, payload),  # two arguments (TRN-3)
            ([payload],),  # not an object
            ({**payload, "extra": 1},),  # an unknown member (EVT-3)
            ({**payload, "channel": INVALID_CHANNEL},),
        ]
        for args in malformed:
            expect_error(await client.emit_raw(event, *args), "bad_request", clause="EVT-10")
        if FEATURE_OF.get(event, "sessions") not in target.features:
            # Well formed, but of a feature the target lacks AND not granted (EVT-5).
            expect_error(await client.request(event, payload), "bad_request", clause="EVT-10")
    await _expect_head(target, denied, 1, "EVT-10")


@case("UNS-7", "UNS-5")
async def test_an_unsubscribe_fails_not_subscribed_without_a_grant_check(target: Target) -> None:
    channel, other = target.channel(), target.channel("other")
    client = await target.client(grants=[grant(channel, "subscribe")])
    # Malformed AND not subscribed AND not granted: bad_request.
    for payload in ({"channel": other, "extra": 1}, {"channel": INVALID_CHANNEL}, {"channel": 5}):
        reply = await client.request("replay:unsubscribe", payload)
        expect_error(reply, "bad_request", clause="UNS-7")
    # Not granted AND not subscribed: not_subscribed, since no grant check comes first.
    expect_error(await client.unsubscribe(other), "not_subscribed", clause="UNS-7")
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-7")
    # Subscribed, but a malformed unsubscribe: bad_request, and the subscription stays.
    expect_ok(await client.subscribe(channel, from_="latest"), clause="UNS-7")
    reply = await client.request("replay:unsubscribe", {"channel": channel, "extra": 1})
    expect_error(reply, "bad_request", clause="UNS-7")
    expect_ok(await client.unsubscribe(channel), clause="UNS-7")


async def _resume_from(client: ReplayClient, channel: str, clause: str) -> Any:
    """Where a subscribe with an omitted ``from`` starts: after the session's cursor."""
    reply = expect_ok(await client.subscribe(channel), clause=clause)
    expect_ok(await client.unsubscribe(channel), clause=clause)
    return reply.get("from")


@case("ACK-10", "EVT-10", "EVT-6")
async def test_an_ack_checks_the_grant_then_the_epoch_then_the_range(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    epoch = await target.epoch(channel)
    stale = _random("not-an-epoch")
    allowed = await target.client(grants=[grant(channel, "subscribe")])
    denied = await target.client(grants=[grant(channel, "history", "publish")])
    expect_ok(await allowed.ack(channel, 1, epoch=epoch), clause="ACK-10")  # cursor 1
    for payload in (
        {"channel": channel, "offset": 0, "epoch": stale},
        {"channel": channel, "offset": 99},  # no epoch (ACK-8)
        {"channel": channel, "offset": 99, "epoch": stale, "extra": 1},
        {"channel": channel, "offset": 2.5, "epoch": epoch},
    ):
        for client in (denied, allowed):  # malformed, AND not granted, stale or above head
            reply = await client.request("replay:ack", payload)
            expect_error(reply, "bad_request", clause="ACK-10")
    for offset, sent in ((99, stale), (3, stale), (99, epoch)):  # not granted AND more
        expect_error(await denied.ack(channel, offset, epoch=sent), "forbidden", clause="ACK-10")
    for offset in (3, 4, 99, MAX_OFFSET):  # stale, in range or above the head: the epoch first
        reply = await allowed.ack(channel, offset, epoch=stale)
        expect_error(reply, "epoch_mismatch", clause="ACK-10")
    reply = await allowed.ack(channel, 4, epoch=epoch)  # the range alone
    expect_error(reply, "offset_out_of_range", clause="ACK-10")
    resumed = await _resume_from(allowed, channel, "EVT-6")
    expect(
        resumed == 2, clause="EVT-6", expected="from 2 (the cursor stayed at 1)", received=resumed
    )


@case("PUB-8", "EVT-10", "EVT-6")
async def test_a_client_publish_checks_the_size_then_the_grant(target: Target) -> None:
    channel = target.channel()
    message_id = _random("id")
    await target.backend.publish(channel, {"n": 0}, id=message_id)
    too_big = _too_big(target)
    denied = await target.client(grants=[grant(channel, "subscribe", "history")])
    allowed = await target.client(grants=[grant(channel, "publish")])
    for payload in (  # malformed AND too large, for a publisher without the grant and with it
        {"channel": channel, "data": too_big, "extra": 1},
        {"channel": channel, "data": too_big, "id": ""},
        {"channel": channel, "data": [too_big, 2**53]},  # I-JSON (MSG-8)
        {"channel": channel, "data": 1, "id": message_id, "extra": 1},
    ):
        for client in (denied, allowed):
            reply = await client.request("replay:publish", payload)
            expect_error(reply, "bad_request", clause="PUB-8")
    # Too large AND not granted (AND a repeated id): payload_too_large.
    for sent_id in (None, message_id):
        reply = await denied.publish(channel, too_big, id=sent_id)
        expect_error(reply, "payload_too_large", clause="PUB-8")
    # Not granted AND a repeated id: forbidden, not the original's answer.
    reply = await denied.publish(channel, {"n": 1}, id=message_id)
    expect_error(reply, "forbidden", clause="PUB-8")
    # Granted, too large AND a repeated id: payload_too_large.
    reply = await allowed.publish(channel, too_big, id=message_id)
    expect_error(reply, "payload_too_large", clause="PUB-8")
    await _expect_head(target, channel, 1, "EVT-6")


@case("HIS-11", "EVT-10")
async def test_a_history_read_checks_the_grant_then_the_epoch_then_the_bounds(
    target: Target,
) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    epoch = await target.epoch(channel)
    stale = _random("not-an-epoch")
    allowed = await target.client(grants=[grant(channel, "history")])
    denied = await target.client(grants=[grant(channel, "subscribe", "publish")])
    for payload in (
        {"channel": channel, "from": 99},  # no epoch (HIS-9)
        {"channel": channel, "from": 0, "epoch": stale},
        {"channel": channel, "from": 99, "epoch": stale, "limit": 0},
        {"channel": channel, "from": "latest", "epoch": stale},
    ):
        for client in (denied, allowed):  # malformed, AND not granted, stale or above head
            reply = await client.request("replay:history", payload)
            expect_error(reply, "bad_request", clause="HIS-11")
    for from_, sent in ((99, stale), (1, stale), (99, epoch)):  # not granted AND more
        reply = await denied.history(channel, from_, epoch=sent)
        expect_error(reply, "forbidden", clause="HIS-11")
    for from_ in (5, 99, MAX_OFFSET):  # stale AND above head + 1: the epoch first
        reply = await allowed.history(channel, from_, epoch=stale)
        expect_error(reply, "epoch_mismatch", clause="HIS-11")
    if "retention" in target.features:  # stale AND below the first retained offset
        await target.backend.set_retention(channel, max_messages=1)
        await target.backend.publish(channel, {"n": 3})
        reply = await allowed.history(channel, 1, epoch=stale)
        expect_error(reply, "epoch_mismatch", clause="HIS-11")
        reply = await allowed.history(channel, 1, epoch=epoch)  # the lower bound alone
        expect_error(reply, "history_truncated", clause="HIS-11")
