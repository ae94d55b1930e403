"""The data model (spec §2: channels, offsets, epochs, messages) and the transport (§3)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Final

import aiohttp
import pytest
import socketio

from conformance import (
    ConnectionLost,
    Indeterminate,
    NoReply,
    Target,
    case,
    current,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    expect_status,
    fail,
    grant,
    schemas,
)
from conformance.cases.test_robustness import RawSocket
from conformance.protocol import API, channel_segment, messages_path, retention_path

EVENTS: Final = (
    "replay:subscribe",
    "replay:unsubscribe",
    "replay:ack",
    "replay:publish",
    "replay:history",
)
# MSG-4: a server's clock and the suite's may differ a little; a wrong unit (s, µs) or a
# timestamp taken at another moment than the append is far outside this window.
CLOCK_WINDOW_MS: Final = 5 * 60 * 1000
MAX_SAFE: Final = 2**53 - 1


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _read(target: Target, channel: str, count: int, clause: str) -> list[dict[str, Any]]:
    """The first ``count`` messages of ``channel``, read by a fresh subscription from
    ``beginning`` (the core way to read a channel, whatever the target's features)."""
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"))
    if count:
        await reader.wait_for_offset(channel, count, clause=clause)
    return reader.messages(channel)[:count]


def _same_json(a: object, b: object) -> bool:
    """JSON equality: numbers compare by value (``1.0`` is ``1``), booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        # MSG-9: equal when they round to the same double. A double above 2^53 may come back
        # as an integer literal (JSON.stringify and RFC 8785 write 1.2345678901234567e19 as
        # 12345678901234567000), which Python reads as an exact int, unequal to the float.
        try:
            return float(a) == float(b)
        except OverflowError:
            return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --- §2.1 channels ------------------------------------------------------------------------------


def _valid_names(target: Target) -> dict[str, str]:
    every_class = f"{target.channel()}-AZaz09_.:@/-"
    base = target.channel("max") + "-"
    return {"every-character": every_class, "200-characters": base + "x" * (200 - len(base))}


@case("CHN-1")
@pytest.mark.parametrize("kind", ["every-character", "200-characters"])
async def test_valid_channel_names_are_accepted(target: Target, kind: str) -> None:
    channel = _valid_names(target)[kind]
    expect(len(channel) <= 200, clause="CHN-1", expected="a valid name", received=channel)
    published = await target.backend.publish_raw(channel, {"data": {"kind": kind}})
    body = expect_status(published, 201, clause="CHN-1", channel=channel)
    expect(
        body.get("channel") == channel,
        clause="CHN-1",
        expected=f"channel {channel!r} echoed",
        received=body,
    )
    client = await target.client(grants=[grant(channel)])
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="CHN-1")
    await client.wait_for_offset(channel, 1, clause="CHN-1")
    if "client-publish" in target.features:
        expect_ok(await client.publish(channel, {"n": 2}), clause="CHN-1")
        await client.wait_for_offset(channel, 2, clause="CHN-1")
    if "history" in target.features:
        expect_ok(await client.history(channel), clause="CHN-1")
        page = await target.backend.history(channel)
        expect(
            page.get("channel") == channel,
            clause="CHN-1",
            expected=f"channel {channel!r}",
            received=page,
        )
    if "cursors" in target.features:
        expect_ok(await client.ack(channel, 1), clause="CHN-1")
    if "retention" in target.features:
        answer = await target.backend.request(
            "PUT", retention_path(channel), body={"max_age_s": None}, channel=channel
        )
        expect_status(answer, 200, clause="CHN-1", channel=channel)
    expect_ok(await client.unsubscribe(channel), clause="CHN-1")


def _invalid_names(target: Target) -> dict[str, str]:
    base = target.channel("bad")
    return {
        "201-characters": base + "x" * (201 - len(base)),
        "space": f"{base} x",
        "non-ascii": f"{base}-é",
        "trailing-newline": f"{base}\n",
        "star": f"{base}*",
        "hash": f"{base}#x",
        "empty": "",
    }


_INVALID: Final = [
    "201-characters",
    "space",
    "non-ascii",
    "trailing-newline",
    "star",
    "hash",
    "empty",
]


@case("CHN-1", "EVT-3")
@pytest.mark.parametrize("kind", _INVALID)
async def test_invalid_channel_names_are_bad_requests(target: Target, kind: str) -> None:
    channel = _invalid_names(target)[kind]
    # Every grant, so that only the name can be wrong (an unadvertised feature's event is a
    # bad_request too, EVT-5: every event must answer bad_request here).
    client = await target.client(grants=[grant("*")])
    requests: list[tuple[str, dict[str, Any]]] = [
        ("replay:subscribe", {"channel": channel, "from": "beginning"}),
        ("replay:unsubscribe", {"channel": channel}),
        ("replay:publish", {"channel": channel, "data": 1}),
        ("replay:history", {"channel": channel}),
        ("replay:ack", {"channel": channel, "offset": 1}),
    ]
    for event, payload in requests:
        reply = await client.request(event, payload)
        expect_error(reply, "bad_request", clause="CHN-1")


@case("CHN-1", "API-5")
@pytest.mark.parametrize("kind", [k for k in _INVALID if k != "empty"])
async def test_invalid_channel_names_are_bad_requests_over_http(target: Target, kind: str) -> None:
    # (An empty path segment is another route, API-6, not a channel name.)
    channel = _invalid_names(target)[kind]
    segment = channel_segment(channel)  # percent-encoded: the server decodes, then checks
    routes: list[tuple[str, str, object]] = [
        ("POST", f"{API}/channels/{segment}/messages", {"data": 1})
    ]
    if "history" in target.features:
        routes.append(("GET", f"{API}/channels/{segment}/messages", None))
    if "retention" in target.features:
        routes.append(("PUT", f"{API}/channels/{segment}/retention", {"max_messages": 5}))
    for method, path, body in routes:
        kwargs: dict[str, Any] = {} if body is None else {"body": body}
        answer = await target.backend.request(method, path, **kwargs)
        expect_status(answer, 400, clause="CHN-1", code="bad_request")


@case("CHN-2")
async def test_channel_names_are_case_sensitive(target: Target) -> None:
    lower = target.channel()
    upper = "Room" + lower.removeprefix("room")
    await target.backend.publish_many(lower, 2)
    await target.backend.publish(upper, {"upper": True})
    client = await target.client(grants=[grant(lower, "subscribe"), grant(upper, "subscribe")])
    low = expect_ok(await client.subscribe(lower, from_="beginning"))
    high = expect_ok(await client.subscribe(upper, from_="beginning"))
    expect(
        (low.get("head"), high.get("head")) == (2, 1),
        clause="CHN-2",
        expected=f"head 2 on {lower} and head 1 on {upper}: two channels",
        received=f"{low.get('head')} and {high.get('head')}",
    )
    await client.wait_for_offset(upper, 1, clause="CHN-2")
    await client.wait_for_offset(lower, 2, clause="CHN-2")
    data = [m.get("data") for m in client.messages(upper)]
    expect(data == [{"upper": True}], clause="CHN-2", expected="its own message", received=data)


@case("CHN-3")
async def test_a_never_used_channel_is_empty(target: Target) -> None:
    channel, by_socket, by_http = target.channel(), target.channel("h"), target.channel("b")
    client = await target.client(grants=[grant(channel), grant(by_socket)])
    reply = expect_ok(await client.subscribe(channel, from_="beginning"))
    expect(
        reply.get("head") == 0 and reply.get("from") == 1 and isinstance(reply.get("epoch"), str),
        clause="CHN-3",
        expected="an epoch, head 0 (from 1)",
        received=reply,
    )
    if "history" in target.features:
        for page in (
            expect_ok(await client.history(by_socket)),
            await target.backend.history(by_http),
        ):
            expect(
                page.get("head") == 0 and page.get("first") is None and page["messages"] == [],
                clause="CHN-3",
                expected="head 0, first null, no messages",
                received=page,
            )


@case("CHN-4", "EPO-2")
async def test_the_epoch_observed_before_the_first_publish_stays(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel)])
    observed = expect_ok(await client.subscribe(channel, from_="latest"))
    epoch = observed.get("epoch")
    first = await target.backend.publish(channel, {"n": 0})
    expect(
        first.get("epoch") == epoch,
        clause="CHN-4",
        expected=f"the first message in the epoch observed before it ({epoch!r})",
        received=first,
    )
    await client.wait_for_offset(channel, 1, clause="CHN-4")
    expect_offsets(client.offsets(channel), [1], clause="CHN-4", channel=channel)
    for n in range(1, 4):
        later = await target.backend.publish(channel, {"n": n})
        expect(
            later.get("epoch") == epoch, clause="EPO-2", expected=f"epoch {epoch}", received=later
        )
    again = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await again.subscribe(channel, from_=2, epoch=epoch), clause="EPO-2")
    expect(reply.get("epoch") == epoch, clause="EPO-2", expected=f"epoch {epoch}", received=reply)


# --- §2.2 offsets -------------------------------------------------------------------------------


@case("OFF-1", "OFF-2", "API-1")
async def test_offsets_are_assigned_densely_by_the_server(target: Target) -> None:
    channel = target.channel()
    # A publisher cannot choose: an "offset" member is not part of the request (schema).
    chosen = await target.backend.publish_raw(channel, {"data": 1, "offset": 7})
    expect_status(chosen, 400, clause="OFF-1", code="bad_request", channel=channel)
    offsets = []
    for n in range(5):
        # Data that looks like an offset must not influence the one assigned.
        answer = await target.backend.publish(channel, {"offset": 100 - n})
        offsets.append(answer.get("offset"))
    client = await target.client(grants=[grant(channel)])
    if "client-publish" in target.features:
        chosen_by_client = await client.request(
            "replay:publish", {"channel": channel, "data": 1, "offset": 9}
        )
        expect_error(chosen_by_client, "bad_request", clause="OFF-1")
        reply = expect_ok(await client.publish(channel, {"offset": 1}))
        offsets.append(reply.get("offset"))
    expected = list(range(1, len(offsets) + 1))
    expect(offsets == expected, clause="OFF-2", expected=f"offsets {expected}", received=offsets)
    messages = await _read(target, channel, len(offsets), "OFF-2")
    delivered = [m["offset"] for m in messages]
    expect_offsets(delivered, expected, clause="OFF-2", channel=channel)


@case("OFF-3", "CNS-1")
async def test_a_stored_message_never_changes(target: Target) -> None:
    channel = target.channel()
    for n in range(5):
        await target.backend.publish(channel, {"n": n, "text": "é🎉"})
    first = await _read(target, channel, 5, "OFF-3")
    await target.backend.publish_many(channel, 3)  # later appends must not touch earlier ones
    second = await _read(target, channel, 5, "OFF-3")
    reads = [first, second]
    if "history" in target.features:
        reads.append((await target.backend.history(channel, limit=5))["messages"])
        reads.append((await target.backend.history(channel, limit=5))["messages"])
    views = [[(m.get("offset"), m.get("id"), m.get("ts"), m.get("data")) for m in r] for r in reads]
    for view in views[1:]:
        expect(
            view == views[0],
            clause="OFF-3",
            expected=f"identical offset/id/ts/data at every read: {views[0]}",
            received=view,
            channel=channel,
        )
    expect(
        len({m[0] for m in views[0]}) == 5,
        clause="OFF-3",
        expected="5 distinct offsets",
        received=views[0],
    )


@case("OFF-4")
async def test_head_and_first_describe_the_channel(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel)])
    published = 0
    for count in (1, 2, 5):
        await target.backend.publish_many(channel, count - published)
        published = count
        reply = expect_ok(await client.subscribe(channel, from_="latest"))
        expect(
            reply.get("head") == count and reply.get("from") == count + 1,
            clause="OFF-4",
            expected=f"head {count} (no publish raced this subscribe)",
            received=reply,
        )
        expect_ok(await client.unsubscribe(channel))
        if "history" in target.features:
            page = expect_ok(await client.history(channel))
            expect(
                (page.get("first"), page.get("head")) == (1, count),
                clause="OFF-4",
                expected=f"first 1, head {count}",
                received=page,
            )


# --- §2.3 epochs --------------------------------------------------------------------------------


@case("EPO-1", "EPO-2", "EPO-5")
async def test_every_reply_and_event_carries_the_one_epoch(target: Target) -> None:
    channel = target.channel()
    published = await target.backend.publish(channel, {"n": 0})
    epoch = published.get("epoch")
    expect(
        isinstance(epoch, str) and 1 <= len(epoch) <= 64,
        clause="EPO-1",
        expected="an epoch of 1 to 64 characters",
        received=published,
    )
    seen: list[tuple[str, object]] = [("publish", epoch)]
    session = await target.register(
        [grant(channel)], subscribe=[{"channel": channel, "from": "beginning"}]
    )
    client = await target.client(session=session)
    subscribed = await client.wait_for_event("replay:subscribed", clause="EPO-5")
    seen.append(("replay:subscribed", subscribed.get("epoch")))
    await client.wait_for_offset(channel, 1)
    if "client-publish" in target.features:
        reply = expect_ok(await client.publish(channel, {"n": 1}))
        seen.append(("replay:publish", reply.get("epoch")))
    else:
        await target.backend.publish(channel, {"n": 1})
    await client.wait_for_offset(channel, 2)
    seen += [
        ("replay:messages", p.get("epoch"))
        for name, p in client.events
        if name == "replay:messages" and p.get("channel") == channel
    ]
    other = await target.client(grants=[grant(channel)])
    reply = expect_ok(await other.subscribe(channel, from_=1, epoch=epoch), clause="EPO-5")
    seen.append(("replay:subscribe", reply.get("epoch")))
    if "history" in target.features:
        seen.append(("replay:history", (await other.history(channel)).get("epoch")))
        seen.append(("GET messages", (await target.backend.history(channel)).get("epoch")))
    if "cursors" in target.features:
        expect_ok(await other.ack(channel, 2, epoch=epoch))
    for where, got in seen:
        expect(
            got == epoch,
            clause="EPO-5",
            expected=f"epoch {epoch!r} in {where}",
            received=got,
            channel=channel,
        )


@case("EPO-4", "EPO-3", "DUR-3", durable=False, timeout=90)
async def test_a_new_epoch_differs_from_every_earlier_one(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    epochs = [(await target.backend.publish(channel, {"life": 0}))["epoch"]]
    for life in (1, 2):
        await target.restart()
        answer = await _publish_after_restart(target, channel, {"life": life})
        expect(
            answer.get("offset") == 1,
            clause="EPO-3",
            expected="offset 1: offsets start again in the new epoch",
            received=answer,
        )
        epochs.append(answer["epoch"])
        expect(
            epochs[-1] not in epochs[:-1],
            clause="EPO-4",
            expected=f"an epoch different from every earlier one {epochs[:-1]}",
            received=epochs[-1],
            channel=channel,
        )


async def _publish_after_restart(target: Target, channel: str, data: object) -> dict[str, Any]:
    # A pooled keep-alive connection to the killed process may fail once; the next is fresh.
    for _ in range(2):
        with contextlib.suppress(Indeterminate):
            return await target.backend.publish(channel, data)
    return await target.backend.publish(channel, data)


# --- §2.4 messages ------------------------------------------------------------------------------


def _nested(value: object, depth: int) -> object:
    for _ in range(depth):
        value = [value]
    return value


ROUND_TRIP: Final[list[object]] = [
    None,
    True,
    False,
    0,
    -1,
    MAX_SAFE,
    -MAX_SAFE,
    0.1,
    -2.5e-8,
    3.141592653589793,
    1e300,
    "",
    "plain",
    'quotes " and \\ backslash / slash',
    "unicode é 中文 🎉 \u2028 \u0000 nul",
    {},
    [],
    [[], {}, "", None],
    {"$set": 1, "a.b": 2, "": 3, "__proto__": {"x": 1}, "é🎉": [1, 2.5, "3"]},
    {"a": {"b": {"c": [1, [2, [3, {"d": None, "e": [True, False]}]]]}}},
    _nested(["deep"], 40),
]


@case("MSG-1", "MSG-2", "CNS-1")
async def test_data_round_trips_exactly(target: Target) -> None:
    channel = target.channel()
    for value in ROUND_TRIP:
        await target.backend.publish(channel, value)
    sent = list(ROUND_TRIP)
    client = await target.client(grants=[grant(channel)])
    if "client-publish" in target.features:
        for value in ROUND_TRIP:
            expect_ok(await client.publish(channel, value), clause="MSG-2")
        sent += ROUND_TRIP
    reads = [await _read(target, channel, len(sent), "MSG-2")]
    if "history" in target.features:
        page = expect_ok(await client.history(channel, limit=len(sent)))
        reads.append(page["messages"])
        reads.append((await target.backend.history(channel, limit=len(sent)))["messages"])
    for messages in reads:
        for value, message in zip(sent, messages, strict=False):
            expect(
                {"offset", "id", "ts", "data"} <= message.keys(),
                clause="MSG-1",
                expected="members offset, id, ts, data",
                received=message,
            )
            expect(
                _same_json(message["data"], value),
                clause="MSG-2",
                expected=f"data {json.dumps(value, ensure_ascii=False)[:120]}",
                received=message,
                channel=channel,
            )
        expect(
            len(messages) == len(sent),
            clause="MSG-2",
            expected=f"{len(sent)} messages",
            received=messages,
        )


@case("MSG-3")
async def test_ids_are_the_publishers_or_unique(target: Target) -> None:
    channel = target.channel()
    answers = [await target.backend.publish(channel, {"n": n}) for n in range(10)]
    given = await target.backend.publish(channel, {"n": 10}, id="publisher-chosen:1")
    answers.append(given)
    client = await target.client(grants=[grant(channel)])
    if "client-publish" in target.features:
        answers.append(expect_ok(await client.publish(channel, {"n": 11})))
        chosen = await client.publish(channel, {"n": 12}, id="client-chosen:2")
        answers.append(expect_ok(chosen))
    messages = await _read(target, channel, len(answers), "MSG-3")
    ids = [m.get("id") for m in messages]
    expect(
        ids == [a.get("id") for a in answers],
        clause="MSG-3",
        expected="the ids the publishes answered",
        received=ids,
    )
    expect(
        messages[10].get("id") == "publisher-chosen:1",
        clause="MSG-3",
        expected="the publisher's id",
        received=messages[10],
    )
    if "client-publish" in target.features:
        expect(
            messages[12].get("id") == "client-chosen:2",
            clause="MSG-3",
            expected="the client publisher's id",
            received=messages[12],
        )
    assigned = [i for i in ids if i not in ("publisher-chosen:1", "client-chosen:2")]
    expect(
        all(isinstance(i, str) and i for i in assigned) and len(set(assigned)) == len(assigned),
        clause="MSG-3",
        expected="unique server-assigned string ids",
        received=ids,
    )


@case("MSG-4")
async def test_ts_is_the_server_clock_in_milliseconds(target: Target) -> None:
    channel = target.channel()
    before = _now_ms()
    await target.backend.publish_many(channel, 3)
    after = _now_ms()
    for message in await _read(target, channel, 3, "MSG-4"):
        ts = message.get("ts")
        expect(
            isinstance(ts, int) and before - CLOCK_WINDOW_MS <= ts <= after + CLOCK_WINDOW_MS,
            clause="MSG-4",
            expected=f"ts in ms since the Unix epoch, near {before}..{after} (±5 min)",
            received=message,
            channel=channel,
        )


@case("MSG-5")
async def test_ts_does_not_decrease(target: Target) -> None:
    channel = target.channel()
    for n in range(20):
        await target.backend.publish(channel, {"n": n})
        if n % 5 == 4:
            await asyncio.sleep(0.01)  # let the clock tick between some of them
    stamps = [m.get("ts") for m in await _read(target, channel, 20, "MSG-5")]
    expect(
        all(isinstance(t, int) for t in stamps) and stamps == sorted(stamps),  # type: ignore[type-var]
        clause="MSG-5",
        expected="ts non-decreasing as offsets increase",
        received=stamps,
        channel=channel,
    )


# --- §3 transport -------------------------------------------------------------------------------


@case("TRN-2")
async def test_the_websocket_transport_is_accepted(target: Target) -> None:
    channel = target.channel()
    # ReplayClient connects with transports=["websocket"] only: no polling first.
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect(client.connected, clause="TRN-2", expected="connected", received="not connected")
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="TRN-2")
    await target.backend.publish(channel, {"n": 0})
    await client.wait_for_offset(channel, 1, clause="TRN-2")


@case("TRN-6")
async def test_the_polling_transport_is_accepted(target: Target) -> None:
    channel = target.channel()
    epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    session = await target.register([grant(channel, "subscribe")])
    received: list[Any] = []
    arrived = asyncio.Event()
    # Our own HTTP session: closing it ends the pending long-poll GET, which a polling
    # disconnect would otherwise wait for (up to the ping interval).
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=http)

    def on_messages(payload: Any) -> None:
        received.append(payload)
        arrived.set()

    sio.on("replay:messages", on_messages)

    async def close() -> None:
        leaving = asyncio.ensure_future(sio.disconnect())
        await asyncio.wait({leaving}, timeout=0.3)
        await http.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await leaving

    current().defer(close, early=True)
    try:
        await sio.connect(
            target.url, auth={"token": session.token}, transports=["polling"], wait_timeout=10
        )
    except socketio.exceptions.ConnectionError as exc:
        fail("TRN-6", "a long-polling connection accepted", f"polling connect failed: {exc}")
    expect(
        sio.transport() == "polling",
        clause="TRN-6",
        expected="a polling connection",
        received=sio.transport(),
    )
    request = {"channel": channel, "from": 1, "epoch": epoch}
    reply = await sio.call("replay:subscribe", request, timeout=10)
    problems = schemas.validate_reply("replay:subscribe", reply)
    expect(not problems, clause="EVT-1", expected="a valid reply", received=problems or reply)
    expect_ok(reply, clause="TRN-6", channel=channel)
    async with asyncio.timeout(10):
        await arrived.wait()
    offsets = [m.get("offset") for p in received for m in p.get("messages", [])]
    expect(offsets[:1] == [1], clause="TRN-6", expected="offset 1 delivered", received=received)


def _not_one_object(event: str, channel: str) -> dict[str, tuple[object, ...]]:
    valid: dict[str, dict[str, Any]] = {
        "replay:subscribe": {"channel": channel, "from": "latest"},
        "replay:unsubscribe": {"channel": channel},
        "replay:ack": {"channel": channel, "offset": 1},
        "replay:publish": {"channel": channel, "data": 1},
        "replay:history": {"channel": channel},
    }
    payload = valid[event]
    binary_member = "data" if event == "replay:publish" else "channel"
    return {
        "no-argument": (),
        "two-arguments": (payload, payload),
        "string": (json.dumps(payload),),
        "list": ([payload],),
        "number": (42,),
        "boolean": (True,),
        "binary": (b"\x00\x01binary",),
        "binary-member": ({**payload, binary_member: b"\x00\x01binary"},),
    }


@case("TRN-3", "EVT-6")
@pytest.mark.parametrize("event", EVENTS)
async def test_anything_but_one_object_is_a_bad_request(target: Target, event: str) -> None:
    channel = target.channel()
    await target.backend.publish(channel, {"n": 0})
    client = await target.client(grants=[grant(channel)])
    for kind, args in _not_one_object(event, channel).items():
        try:
            reply = await client.emit_raw(event, *args)
        except (NoReply, ConnectionLost) as exc:
            fail("TRN-3", f"a bad_request reply to {event} with {kind}", str(exc))
        expect_error(reply, "bad_request", clause="TRN-3", channel=channel)
    # Nothing happened: no subscription (EVT-6), nothing stored.
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="EVT-6")
    check = expect_ok(await client.subscribe(channel, from_="latest"))
    expect(check.get("head") == 1, clause="EVT-6", expected="head 1", received=check)


@case("TRN-7", "ROB-2")
async def test_a_packet_at_the_transport_bound_gets_a_typed_reply(target: Target) -> None:
    limit = target.limits["max_payload_bytes"]
    bound = 6 * limit + 16384
    channel = target.channel()
    client = await target.client(grants=[grant("*")])
    envelope = len(json.dumps(["replay:publish", {"channel": channel, "data": ""}]))
    # A packet just under the bound: "42<ack id>" plus the JSON array, with room to spare.
    data = "x" * (bound - envelope - 64)
    reply = await client.publish(channel, data)
    expect(
        reply.get("ok") is False and reply.get("error", {}).get("code") in _TOO_BIG,
        clause="TRN-7",
        expected="a typed error reply (payload_too_large, or bad_request without client-publish)",
        received=reply,
        channel=channel,
    )
    long_channel = "x" * (bound - 64 - len(json.dumps(["replay:subscribe", {"channel": ""}])))
    expect_error(await client.subscribe(long_channel), "bad_request", clause="TRN-7")
    expect(client.connected, clause="TRN-7", expected="still connected", received="disconnected")
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="ROB-2")
    await target.backend.publish(channel, {"n": 0})
    await client.wait_for_offset(channel, 1, clause="ROB-2")


_TOO_BIG: Final = ("payload_too_large", "bad_request")


@case("TRN-5")
async def test_integral_numbers_are_integers(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 6)
    client = await target.client(grants=[grant(channel)])
    reply = expect_ok(await client.subscribe(channel, from_=5.0), clause="TRN-5")  # type: ignore[arg-type]
    epoch = reply.get("epoch")
    expect(reply.get("from") == 5, clause="TRN-5", expected="from 5", received=reply)
    await client.wait_for_offset(channel, 6, clause="TRN-5")
    expect_offsets(client.offsets(channel), [5, 6], clause="TRN-5", channel=channel)
    if "history" in target.features:
        request = {"channel": channel, "from": 2.0, "epoch": epoch, "limit": 2.0}
        page = expect_ok(await client.request("replay:history", request), clause="TRN-5")
        offsets = [m.get("offset") for m in page["messages"]]
        expect(offsets == [2, 3], clause="TRN-5", expected="[2, 3]", received=offsets)
    if "cursors" in target.features:
        acked = expect_ok(
            await client.request("replay:ack", {"channel": channel, "offset": 3.0, "epoch": epoch}),
            clause="TRN-5",
        )
        expect(acked.get("cursor") == 3, clause="TRN-5", expected="cursor 3", received=acked)
    if "retention" in target.features:
        answer = await target.backend.request(
            "PUT", retention_path(channel), body={"max_messages": 100.0}, channel=channel
        )
        body = expect_status(answer, 200, clause="TRN-5", channel=channel)
        expect(
            body.get("max_messages") == 100,
            clause="TRN-5",
            expected="max_messages 100",
            received=body,
        )
    registered = await target.backend.register_raw(
        {"client_id": "trn-5", "grants": [], "ttl_s": 60.0}
    )
    body = expect_status(registered, 201, clause="TRN-5")
    current().defer(lambda: target.backend.delete_session(str(body.get("session_id"))))


@case("TRN-5", "EVT-3")
async def test_non_integral_numbers_are_bad_requests(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel)])
    requests: list[tuple[str, dict[str, Any]]] = [
        ("replay:subscribe", {"channel": channel, "from": 1.5}),
        ("replay:history", {"channel": channel, "from": 1.5}),
        ("replay:history", {"channel": channel, "limit": 1.5}),
        ("replay:ack", {"channel": channel, "offset": 1.5}),
    ]
    for event, payload in requests:
        expect_error(await client.request(event, payload), "bad_request", clause="TRN-5")
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="TRN-5")
    if "retention" in target.features:
        answer = await target.backend.request(
            "PUT", retention_path(channel), body={"max_messages": 1.5}, channel=channel
        )
        expect_status(answer, 400, clause="TRN-5", code="bad_request", channel=channel)
    registered = await target.backend.register_raw(
        {"client_id": "trn-5", "grants": [], "ttl_s": 60.5}
    )
    expect_status(registered, 400, clause="TRN-5", code="bad_request")


# --- §2.4 payloads are I-JSON (MSG-6 to MSG-9) -------------------------------------------------
# Written as raw JSON text: a JSON library on the suite's side would refuse, merge or round
# these before they reached the target (and python-socketio's client would re-encode them).


async def _publish_text(target: Target, channel: str, members: str) -> list[tuple[str, object]]:
    """Publish ``{<members>}`` as written, over HTTP and (with client-publish) over a raw socket;
    the answers as ``(transport, answer)``."""
    body = ("{" + members + "}").encode("utf-8")
    headers = {"Content-Type": "application/json"}
    path = messages_path(channel)
    answers: list[tuple[str, object]] = [
        ("http", await target.backend.request("POST", path, raw=body, headers=headers))
    ]
    if "client-publish" in target.features:
        session = await target.register([grant(channel)])
        raw = await RawSocket.open(target, session.token)
        ack = await raw.send("replay:publish", f'{{"channel":{json.dumps(channel)},{members}}}')
        answers.append(("socket.io", await raw.reply(ack)))
    return answers


async def _refused(target: Target, clause: str, members: list[str]) -> None:
    """Every publish of ``members`` is ``bad_request`` on every transport and stores nothing."""
    channel = target.channel()
    for written in members:
        for transport, answer in await _publish_text(target, channel, written):
            if transport == "http":
                assert isinstance(answer, tuple)
                expect_status(answer, 400, clause=clause, code="bad_request", channel=channel)
            else:
                expect_error(answer, "bad_request", clause=clause)
    stored = await target.backend.publish(channel, "after")
    expect(
        stored.get("offset") == 1,
        clause=clause,
        expected="offset 1: the refused publishes stored nothing",
        received=stored,
        channel=channel,
    )


@case("MSG-6")
async def test_a_lone_surrogate_is_a_bad_request(target: Target) -> None:
    await _refused(
        target,
        "MSG-6",
        [
            r'"data":"\ud800"',
            r'"data":"x\udc00y"',
            r'"data":{"\ud83d":1}',
            r'"data":["ok","\ude00\ud83d"]',
            r'"data":1,"id":"\udbff"',
        ],
    )


@case("MSG-7")
async def test_a_repeated_member_name_is_a_bad_request(target: Target) -> None:
    await _refused(
        target,
        "MSG-7",
        [
            '"data":{"a":1,"a":2}',
            '"data":[{"b":{"a":1,"a":1}}]',
            r'"data":{"a":1,"\u0061":2}',
            '"data":1,"data":2',
        ],
    )


@case("MSG-8")
async def test_an_unsafe_number_is_a_bad_request(target: Target) -> None:
    await _refused(
        target,
        "MSG-8",
        [
            '"data":123456789012345678901234567890',
            '"data":9007199254740992',
            '"data":{"n":-9007199254740992}',
            '"data":1e400',
            '"data":[-1.5e309]',
        ],
    )


ACCEPTED_NUMBERS: Final = (
    "[9007199254740991,-9007199254740991,1.0000000000000001,1e2,1e-400,-0,"
    "12345678901234567890.5,1e300,0.1]"
)


@case("MSG-9", "MSG-2")
async def test_other_numbers_are_equal_as_doubles(target: Target) -> None:
    channel = target.channel()
    answers = await _publish_text(target, channel, f'"data":{ACCEPTED_NUMBERS}')
    for transport, answer in answers:
        if transport == "http":
            assert isinstance(answer, tuple)
            expect_status(answer, 201, clause="MSG-9", channel=channel)
        else:
            expect_ok(answer, clause="MSG-9")
    sent = json.loads(ACCEPTED_NUMBERS)  # float() rounds each to its double, as MSG-9 compares
    for message in await _read(target, channel, len(answers), "MSG-9"):
        got = message.get("data")
        expect(
            _same_json(got, sent),
            clause="MSG-2",
            expected=f"numbers equal as IEEE 754 doubles to {ACCEPTED_NUMBERS}",
            received=message,
            channel=channel,
        )
