"""General rules of client events (spec §6), robustness (§10.9) and the transport bound (§10.12).

Most cases use :class:`ReplayClient`; where a payload cannot be produced by python-socketio (a
``null`` argument, JSON nested deeper than its encoder goes) or replies must be counted
exactly, a minimal Socket.IO v5 client over a raw Engine.IO v4 WebSocket sends packets as
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import (
    ConnectionLost,
    Indeterminate,
    NoReply,
    ReplayClient,
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
from conformance.context import current_or_none
from conformance.eventlog import KNOWN, EventLog
from conformance.protocol import messages_path, retention_path, session_path
from conformance.text import summarize

EVENTS: Final = (
    "replay:subscribe",
    "replay:unsubscribe",
    "replay:ack",
    "replay:publish",
    "replay:history",
)
FEATURE_EVENTS: Final = {
    "client-publish": "replay:publish",
    "history": "replay:history",
    "cursors": "replay:ack",
}
QUIET_S: Final = 0.5  # how long a second (duplicate) reply is waited for
DEEP: Final = 10_000  # nesting levels of the deepest payloads
REPLY_TIMEOUT_S: Final = 10.0
DEEP_REPLY_S: Final = 5.0  # a parser that chokes on depth never answers: do not wait long


def _transport_bound(target: Target) -> int:
    """TRN-7: the largest encoded packet a server must answer with a typed reply."""
    return 6 * target.limits["max_payload_bytes"] + 16384


def _huge_string(target: Target) -> int:
    """A size for "huge" string members: 100 KB, but always within the TRN-7 bound."""
    return min(100_000, _transport_bound(target) - 1024)


def _valid(event: str, channel: str) -> dict[str, Any]:
    valid: dict[str, dict[str, Any]] = {
        "replay:subscribe": {"channel": channel, "from": "latest"},
        "replay:unsubscribe": {"channel": channel},
        "replay:ack": {"channel": channel, "offset": 1},
        "replay:publish": {"channel": channel, "data": {"n": 1}},
        "replay:history": {"channel": channel},
    }
    return valid[event]


# --- a raw Socket.IO client ---------------------------------------------------------------------


class RawSocket:
    """Socket.IO v5 over one Engine.IO v4 WebSocket, writing packets exactly as given.

    Every acknowledgement is kept per ack id (so duplicates are seen), server events in
    arrival order; pings are answered. Sends and replies go to the case's event log.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
        self.ws = ws
        self.name = name
        self.acks: dict[int, list[list[Any]]] = {}
        self.events: list[list[Any]] = []
        self.closed = False
        self._ops: dict[int, tuple[int, str]] = {}
        self._next_id = 0
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, target: Target, token: str) -> RawSocket:
        """Connect to ``/`` with ``{"token": token}``; closed when the case ends."""
        url = f"{target.url}/socket.io/?EIO=4&transport=websocket"
        ws = await target.http.ws_connect(
            url, timeout=aiohttp.ClientWSTimeout(ws_close=5), max_msg_size=0
        )
        raw = cls(ws, current().next_name("raw"))
        current().defer(raw.close, early=True)
        opened = await asyncio.wait_for(ws.receive_str(), REPLY_TIMEOUT_S)
        expect(opened.startswith("0{"), clause="TRN-1", expected="0{...}", received=opened)
        await ws.send_str("40" + json.dumps({"token": token}))
        connected = await asyncio.wait_for(ws.receive_str(), REPLY_TIMEOUT_S)
        expect(connected.startswith("40"), clause="CON-1", expected="40{sid}", received=connected)
        raw._reader = asyncio.create_task(raw._read())
        return raw

    async def close(self) -> None:
        """Close the WebSocket and stop reading; never raises."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._packet(message.data)
                self._notify()
        finally:
            self.closed = True
            current_log = _log_or_none()
            if current_log is not None:
                current_log.record(self.name, "disconnect", "disconnect", payload="closed")
            self._notify()

    async def _packet(self, text: str) -> None:
        if text == "2":  # Engine.IO ping
            await self.ws.send_str("3")
        elif text.startswith("43"):  # Socket.IO ACK on "/"
            digits = len(text[2:]) - len(text[2:].lstrip("0123456789"))
            # An ACK without an id (no request has one) is kept under 0: ids start at 1.
            ack_id = int(text[2 : 2 + digits]) if digits else 0
            body = json.loads(text[2 + digits :])
            self.acks.setdefault(ack_id, []).append(body)
            op, event = self._ops.get(ack_id, (None, "?"))
            reply = body[0] if len(body) == 1 else body
            outcome = "ok" if isinstance(reply, dict) and reply.get("ok") is True else "failed"
            log = _log_or_none()
            if log is not None:
                log.record(self.name, "reply", event, op=op, outcome=outcome, payload=reply)
        elif text.startswith("42"):
            self.events.append(json.loads(text[2:]))
        elif text.startswith("41"):  # Socket.IO DISCONNECT on "/": the socket is gone
            self.closed = True  # even if Engine.IO keeps the WebSocket open a while

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def send(self, event: str, encoded_args: str) -> int:
        """Send ``42<id>["event",<encoded_args>]`` (``encoded_args`` as written); its ack id."""
        self._next_id += 1
        ack_id = self._next_id
        separator = "," if encoded_args else ""
        packet = f"42{ack_id}[{json.dumps(event)}{separator}{encoded_args}]"
        shown = encoded_args if len(encoded_args) <= 200 else f"{encoded_args[:200]}..."
        op = current().log.invoke(self.name, event, channel=None, payload=shown)
        self._ops[ack_id] = (op, event)
        await self.ws.send_str(packet)
        return ack_id

    async def emit(self, event: str, *args: object) -> int:
        """Send ``event`` with ``args`` JSON-encoded; its ack id."""
        return await self.send(event, ",".join(json.dumps(a) for a in args))

    async def send_body(self, body: str, *, ack: bool = True) -> int | None:
        """Send the EVENT packet ``42<id><body>`` (``body`` as written, any JSON at all), or
        ``42<body>`` with no ack id when ``ack`` is false; its ack id, if any."""
        ack_id = None
        if ack:
            self._next_id += 1
            ack_id = self._next_id
        shown = body if len(body) <= 200 else f"{body[:200]}..."
        op = current().log.invoke(self.name, "raw EVENT", channel=None, payload=shown)
        if ack_id is not None:
            self._ops[ack_id] = (op, f"the EVENT packet {shown}")
        await self.ws.send_str(f"42{'' if ack_id is None else ack_id}{body}")
        return ack_id

    async def emit_no_ack(self, event: str, *args: object) -> None:
        """Send ``event`` with ``args`` JSON-encoded and no ack id (nothing to wait for)."""
        await self.send_body(json.dumps([event, *args]), ack=False)

    async def wait(self, predicate: Callable[[], bool], timeout: float = REPLY_TIMEOUT_S) -> bool:
        """Wait until ``predicate()`` holds or the connection closes; whether it holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate() and not self.closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return predicate()

    def offsets(self, channel: str) -> list[int]:
        """Offsets of every ``replay:messages`` message received on ``channel``."""
        offsets: list[int] = []
        for event in self.events:
            payload = event[1] if len(event) == 2 and event[0] == "replay:messages" else None
            if isinstance(payload, dict) and payload.get("channel") == channel:
                messages = payload.get("messages")
                for message in messages if isinstance(messages, list) else ():
                    if isinstance(message, dict) and isinstance(message.get("offset"), int):
                        offsets.append(message["offset"])
        return offsets

    async def reply(
        self, ack_id: int, clause: str = "EVT-1", timeout: float = REPLY_TIMEOUT_S
    ) -> Any:
        """The (first) reply to ``ack_id``, waiting for it; fails on timeout or disconnect."""
        if not await self.wait(lambda: ack_id in self.acks, timeout):
            why = "the connection closed" if self.closed else "no reply"
            fail(clause, f"a reply to {self._ops[ack_id][1]} (ack {ack_id})", why, actor=self.name)
        body = self.acks[ack_id][0]
        return body[0] if len(body) == 1 else body


def _log_or_none() -> EventLog | None:
    """The running case's log (None once the case is over: the reader may outlive it)."""
    context = current_or_none()
    return context.log if context is not None else None


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- §6 general rules ---------------------------------------------------------------------------


@case("EVT-1", "TRN-3")
async def test_every_event_gets_exactly_one_reply(target: Target) -> None:
    channel, other = target.channel(), target.channel("other")
    await target.backend.publish_many(channel, 2)
    session = await target.register([grant(channel)])
    raw = await RawSocket.open(target, session.token)
    epoch = target.log.epoch_of(channel)
    sent: list[tuple[int, str]] = []
    # Pipelined, without waiting: valid requests, failing ones, and malformed ones.
    requests: list[tuple[str, str]] = [
        ("replay:subscribe", json.dumps({"channel": channel, "from": 1, "epoch": epoch})),
        ("replay:history", json.dumps({"channel": channel})),
        ("replay:ack", json.dumps({"channel": channel, "offset": 1, "epoch": epoch})),
        ("replay:publish", json.dumps({"channel": channel, "data": {"n": 2}})),
        ("replay:unsubscribe", json.dumps({"channel": channel})),
        ("replay:unsubscribe", json.dumps({"channel": channel})),  # not_subscribed
        ("replay:subscribe", json.dumps({"channel": other})),  # forbidden
        ("replay:subscribe", json.dumps({"channel": channel, "from": 99, "epoch": epoch})),
        ("replay:subscribe", "null"),
        ("replay:publish", ""),  # no argument
        ("replay:history", "null,null"),
        ("replay:ack", json.dumps({"channel": channel, "offset": "one"})),
    ]
    for event, encoded in requests:
        sent.append((await raw.send(event, encoded), event))
    for ack_id, _ in sent:
        await raw.reply(ack_id)
    await asyncio.sleep(QUIET_S)  # a duplicate reply would arrive right after the first
    for ack_id, event in sent:
        bodies = raw.acks[ack_id]
        expect(
            len(bodies) == 1 and len(bodies[0]) == 1,
            clause="EVT-1",
            expected=f"exactly one reply, with one argument, to {event} (ack {ack_id})",
            received=bodies,
        )
        problems = schemas.validate_reply(event, bodies[0][0])
        expect(
            not problems,
            clause="EVT-1",
            expected=f"a reply to {event} valid against its schema or error-reply",
            received=problems,
        )
    for index in (8, 9, 10):
        ack_id, event = sent[index]
        expect_error(raw.acks[ack_id][0][0], "bad_request", clause="TRN-3")


def _malformed(target: Target, event: str, channel: str) -> list[tuple[str, object]]:
    """Payloads of ``event`` that break its request schema (EVT-3, ROB-1)."""
    valid = _valid(event, channel)
    huge = _huge_string(target)
    common: list[tuple[str, object]] = [
        ("missing channel", {k: v for k, v in valid.items() if k != "channel"}),
        ("channel number", {**valid, "channel": 5}),
        ("channel null", {**valid, "channel": None}),
        ("channel list", {**valid, "channel": [channel]}),
        ("channel object", {**valid, "channel": {"name": channel}}),
        ("channel boolean", {**valid, "channel": True}),
        ("channel empty", {**valid, "channel": ""}),
        ("channel huge", {**valid, "channel": "c" * huge}),
        ("unknown member", {**valid, "bogus": 1}),
        ("unknown member null", {**valid, "extra": None}),
        ("non-object string", "payload"),
        ("non-object number", 7),
        ("non-object list", [valid]),
    ]
    offsets: list[object] = [0, -1, 2**60, 2**53, 1.5, "1", True, None, [], {}]
    specific: dict[str, list[tuple[str, object]]] = {
        "replay:subscribe": [
            *((f"from {v!r}", {**valid, "from": v}) for v in [*offsets, "middle", ""]),
            *((f"epoch {v!r}", {**valid, "from": 1, "epoch": v}) for v in ["", "e" * 65, 5]),
            *((f"allow_truncation {v!r}", {**valid, "allow_truncation": v}) for v in ["y", 1]),
        ],
        "replay:unsubscribe": [("from member", {**valid, "from": 1})],
        "replay:ack": [
            ("missing offset", {"channel": channel}),
            *((f"offset {v!r}", {**valid, "offset": v}) for v in offsets),
            *((f"epoch {v!r}", {**valid, "epoch": v}) for v in ["", "e" * 65, 5]),
        ],
        "replay:publish": [
            ("missing data", {"channel": channel}),
            *((f"id {v!r}", {**valid, "id": v}) for v in ["", "i" * 129, 5, None, ["x"]]),
        ],
        "replay:history": [
            *((f"from {v!r}", {**valid, "from": v}) for v in [*offsets, "latest"]),
            *((f"limit {v!r}", {**valid, "limit": v}) for v in offsets),
        ],
    }
    return common + specific[event]


@case("EVT-3", "ROB-1", "ROB-2", "EVT-6")
@pytest.mark.parametrize("event", EVENTS)
async def test_malformed_payloads_are_bad_requests(target: Target, event: str) -> None:
    witness = target.channel()
    session = await target.register([grant("*")])  # only the payload can be wrong
    client = await target.client(session=session)
    expect_ok(await client.subscribe(witness, from_="beginning"))
    for kind, payload in _malformed(target, event, witness):
        try:
            reply = await client.emit_raw(event, payload)
        except ConnectionLost as exc:
            fail("ROB-2", f"the socket connected after {event} with {kind}", str(exc))
        if not (isinstance(reply, dict) and reply.get("error", {}).get("code") == "bad_request"):
            fail(
                "ROB-1",
                f"a bad_request reply to {event} with {kind}",
                reply,
                channel=witness,
            )
        expect(
            client.connected,
            clause="ROB-2",
            expected=f"still connected after {event} with {kind}",
            received="disconnected",
        )
    # The socket still works, and its subscription was neither ended nor duplicated.
    await target.backend.publish(witness, {"after": event})
    await client.wait_for_offset(witness, 1, clause="ROB-2")
    expect_offsets(client.offsets(witness), [1], clause="EVT-6", channel=witness)
    fresh = target.channel("fresh")
    expect_ok(await client.subscribe(fresh, from_="latest"), clause="ROB-2")
    await target.backend.publish(fresh, {"n": 0})
    await client.wait_for_offset(fresh, 1, clause="ROB-2")


@case("ROB-7", "ROB-1", "ROB-2", "EVT-1")
async def test_deeply_nested_payloads(target: Target) -> None:
    channel = target.channel()
    session = await target.register([grant(channel)])
    raw = await RawSocket.open(target, session.token)
    deep_channel = await raw.send("replay:subscribe", '{"channel":' + _nested(DEEP) + "}")
    reply = await raw.reply(deep_channel, clause="ROB-1", timeout=DEEP_REPLY_S)
    expect_error(reply, "bad_request", clause="ROB-1")
    deep_arg = await raw.send("replay:history", _nested(DEEP, "{}"))
    reply = await raw.reply(deep_arg, clause="ROB-1", timeout=DEEP_REPLY_S)
    expect_error(reply, "bad_request", clause="ROB-1")
    # As data, deep nesting is still JSON within max_payload_bytes: the server may store it
    # or refuse it as bad_request, but it must answer and keep the socket.
    deep_data = await raw.send(
        "replay:publish", f'{{"channel":{json.dumps(channel)},"data":{_nested(DEEP)}}}'
    )
    reply = await raw.reply(deep_data, clause="ROB-1", timeout=DEEP_REPLY_S)
    accepted = isinstance(reply, dict) and reply.get("ok") is True
    if not accepted:  # deeper than 64 levels: bad_request is allowed, internal is not
        expect_error(reply, "bad_request", clause="ROB-7")
    expect(not raw.closed, clause="ROB-2", expected="still connected", received="closed")
    ack = await raw.emit("replay:unsubscribe", {"channel": channel})
    expect_error(await raw.reply(ack), "not_subscribed", clause="ROB-2")


@case("ROB-7", "MSG-2")
async def test_data_nested_64_levels_is_accepted(target: Target) -> None:
    channel = target.channel()
    deep: object = 1
    for level in range(63):  # 64 levels with the innermost array
        deep = [deep] if level % 2 else {"k": deep}
    deep = [deep]
    answer = await target.backend.publish_raw(channel, {"data": deep})
    expect_status(answer, 201, clause="ROB-7", channel=channel)
    reader = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await reader.subscribe(channel, from_="beginning"), clause="ROB-7")
    await reader.wait_for_offset(channel, 1, clause="ROB-7")
    received = reader.messages(channel)[0].get("data")
    expect(received == deep, clause="MSG-2", expected="the same 64-level value", received=received)


@case("ROB-3", "TRN-7", "ROB-2", feature="client-publish")
async def test_oversized_data_is_payload_too_large(target: Target) -> None:
    limit = target.limits["max_payload_bytes"]
    channel = target.channel()
    client = await target.client(grants=[grant(channel)])
    envelope = len(json.dumps(["replay:publish", {"channel": channel, "data": ""}])) + 32
    sizes = [limit - 1, 2 * limit, _transport_bound(target) - envelope]  # string + 2 quotes
    for size in sizes:
        try:
            reply = await client.publish(channel, "x" * size)
        except ConnectionLost as exc:
            fail("ROB-3", f"payload_too_large for {size + 2} bytes of data", str(exc))
        expect_error(reply, "payload_too_large", clause="ROB-3", channel=channel)
        expect(client.connected, clause="ROB-3", expected="still connected", received="closed")
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="ROB-2")
    expect_ok(await client.publish(channel, "fits"), clause="ROB-2")
    await client.wait_for_offset(channel, 1, clause="ROB-2")
    expect_offsets(client.offsets(channel), [1], clause="ROB-3", channel=channel)


async def _snapshot(target: Target, channel: str, clause: str) -> object:
    """What ``channel`` holds: the history page, or what a subscription from the beginning
    delivers (with the ``epoch`` and ``head`` of its reply) when history is not advertised."""
    if "history" in target.features:
        return await target.backend.history(channel, limit=100)
    reader = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await reader.subscribe(channel, from_="beginning"))
    head = reply.get("head")
    if isinstance(head, int) and head >= 1:
        await reader.wait_for_offset(channel, head, clause=clause)
    await reader.disconnect()
    return {"epoch": reply.get("epoch"), "head": head, "messages": reader.messages(channel)}


async def _resume_from(target: Target, session: Any, channel: str) -> object:
    """The ``from`` a new socket of ``session`` resumes at with an omitted ``from`` (the
    subscribe is a step: refused, it fails SUB-9)."""
    resumed = await target.client(session=session)
    reply = expect_ok(await resumed.subscribe(channel))
    await resumed.disconnect()
    return reply.get("from")


@case("ROB-4")
async def test_malformed_requests_leave_stored_data_as_it_was(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    session = await target.register([grant(channel)])
    client = await target.client(session=session)
    cursors = "cursors" in target.features
    if cursors:
        expect_ok(await client.ack(channel, 1))
    before = await _snapshot(target, channel, "ROB-4")
    resume_before = await _resume_from(target, session, channel) if cursors else None
    too_big = "x" * (target.limits["max_payload_bytes"] + 1)
    malformed: list[tuple[str, object]] = [
        ("replay:publish", {"channel": channel, "data": 1, "bogus": 1}),
        ("replay:publish", {"channel": channel, "data": 1, "id": ""}),
        ("replay:publish", {"channel": channel, "data": too_big}),
        ("replay:publish", {"channel": channel}),
        ("replay:ack", {"channel": channel, "offset": 3, "bogus": 1}),
        ("replay:ack", {"channel": channel, "offset": 3, "epoch": ""}),
        ("replay:ack", {"channel": channel, "offset": 3.5}),
        ("replay:ack", {"channel": channel, "offset": "3"}),
    ]
    for event, payload in malformed:
        reply = await client.emit_raw(event, payload)
        expect(
            isinstance(reply, dict) and reply.get("ok") is False,
            clause="ROB-4",
            expected=f"an error reply to {event} {summarize(payload, 80)}",
            received=reply,
        )
    for body in ({"data": 1, "bogus": 1}, {"data": too_big}, {"id": "x"}):
        status, _ = await target.backend.publish_raw(channel, body)
        expect(status >= 400, clause="ROB-4", expected="an error", received=status)
    session_id = f"rob-4-{channel.rsplit('-', 1)[-1]}"
    bad_session = {"session_id": session_id, "client_id": "x", "grants": [{"channels": "a"}]}
    status, _ = await target.backend.register_raw(bad_session)
    expect(status == 400, clause="ROB-4", expected="HTTP 400", received=status)
    after = await _snapshot(target, channel, "ROB-4")
    expect(
        after == before,
        clause="ROB-4",
        expected=f"the channel unchanged: {summarize(before)}",
        received=after,
        channel=channel,
    )
    if cursors:
        resume_after = await _resume_from(target, session, channel)
        expect(
            resume_after == resume_before == 2,
            clause="ROB-4",
            expected="resume at 2 (the cursor still 1)",
            received=f"{resume_before} before, {resume_after} after",
        )
    deleted = await target.backend.delete_session(session_id)
    expect(
        deleted.status == 404,
        clause="ROB-4",
        expected="no session written by the failed registration (DELETE answers 404)",
        received=deleted.status,
    )


@case("EVT-6", "SUB-3")
async def test_failed_events_have_no_effect(target: Target) -> None:
    channel, forbidden = target.channel(), target.channel("forbidden")
    await target.backend.publish_many(channel, 2)
    session = await target.register([grant(channel)])
    client = await target.client(session=session)
    cursors = "cursors" in target.features
    if cursors:
        expect_ok(await client.ack(channel, 1))
    before = await _snapshot(target, channel, "EVT-6")
    watcher = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await watcher.subscribe(channel, from_="beginning"))
    await watcher.wait_for_offset(channel, 2)
    # Subscribes that fail create nothing; one that finds a subscription ends nothing.
    for from_, epoch, code in ((5, KNOWN, "offset_out_of_range"), (1, "stale", "epoch_mismatch")):
        reply = await client.subscribe(channel, from_=from_, epoch=epoch)
        expect_error(reply, code, clause="EVT-6", channel=channel)
    expect_error(await client.subscribe(forbidden), "forbidden", clause="EVT-6")
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="EVT-6")
    expect_error(await client.unsubscribe(forbidden), "not_subscribed", clause="EVT-6")
    expect_error(await watcher.subscribe(channel, from_=1), "already_subscribed", clause="SUB-3")
    expect_error(await watcher.unsubscribe(forbidden), "not_subscribed", clause="EVT-6")
    if "client-publish" in target.features:
        reader_only = await target.client(grants=[grant(channel, "subscribe", "history")])
        expect_error(await reader_only.publish(channel, 1), "forbidden", clause="EVT-6")
        too_big = "x" * (target.limits["max_payload_bytes"] + 1)
        expect_error(await client.publish(channel, too_big), "payload_too_large", clause="EVT-6")
    if cursors:
        expect_error(await client.ack(channel, 3), "offset_out_of_range", clause="EVT-6")
        expect_error(await client.ack(channel, 2, epoch="stale"), "epoch_mismatch", clause="EVT-6")
        guess = "conformance-guessed-epoch"  # forbidden comes before the epoch (ACK-1)
        expect_error(await client.ack(forbidden, 1, epoch=guess), "forbidden", clause="EVT-6")
    if "history" in target.features:
        expect_error(await client.history(channel, 4), "offset_out_of_range", clause="EVT-6")
    after = await _snapshot(target, channel, "EVT-6")
    expect(after == before, clause="EVT-6", expected=summarize(before), received=after)
    if cursors:
        resumed = await _resume_from(target, session, channel)
        expect(resumed == 2, clause="EVT-6", expected="from 2 (cursor 1)", received=resumed)
    # The watcher's subscription survived the failed subscribe and keeps delivering.
    await target.backend.publish(channel, {"n": 2})
    await watcher.wait_for_offset(channel, 3, clause="EVT-6")
    expect_offsets(watcher.offsets(channel), [1, 2, 3], clause="EVT-6", channel=channel)


@case("EVT-4")
async def test_unknown_replay_events_are_bad_requests(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel)])
    for event in ("replay:bogus", "replay:", "replay:SUBSCRIBE", "replay:subscribe "):
        try:
            reply = await client.emit_raw(event, {"channel": channel}, timeout=3)
        except (NoReply, ConnectionLost) as exc:
            fail("EVT-4", f"a bad_request reply to {event!r}", str(exc).splitlines()[0])
        expect_error(reply, "bad_request", clause="EVT-4", channel=channel)


@case("EVT-5")
async def test_events_of_unadvertised_features_are_bad_requests(target: Target) -> None:
    missing = [f for f in FEATURE_EVENTS if f not in target.features]
    if not missing:
        pytest.skip("not claimed: target advertises every feature")
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    session = await target.register([grant(channel)])
    client = await target.client(session=session)
    payloads: dict[str, dict[str, Any]] = {
        "replay:publish": {"channel": channel, "data": {"n": 2}},
        "replay:history": {"channel": channel},
        "replay:ack": {"channel": channel, "offset": 2},
    }
    for feature in missing:
        event = FEATURE_EVENTS[feature]
        expect_error(await client.request(event, payloads[event]), "bad_request", clause="EVT-5")
    # No effect: nothing stored, no cursor (an omitted from still starts at latest).
    resumed = await _resume_from(target, session, channel)
    expect(resumed == 3, clause="EVT-5", expected="from 3 (head 2, no cursor)", received=resumed)


@case("EVT-7", "EVT-2")
async def test_events_without_an_ack_are_processed(target: Target) -> None:
    channel, forbidden = target.channel(), target.channel("forbidden")
    await target.backend.publish_many(channel, 2)
    session = await target.register([grant(channel)])
    # A raw socket: the suite's client would take an unannounced subscription's messages for
    # strays (CON-4), and ACK packets are counted here.
    raw = await RawSocket.open(target, session.token)
    await raw.emit_no_ack("replay:subscribe", {"channel": channel, "from": "beginning"})
    delivered = await raw.wait(lambda: raw.offsets(channel) == [1, 2])
    expect(delivered, clause="EVT-7", expected="messages 1 and 2", received=raw.offsets(channel))
    again = await raw.emit("replay:subscribe", {"channel": channel})
    expect_error(await raw.reply(again), "already_subscribed", clause="EVT-7")
    await raw.emit_no_ack("replay:unsubscribe", {"channel": channel})
    await raw.emit_no_ack("replay:subscribe", {"channel": forbidden})  # fails, unseen
    for name in (channel, forbidden):
        ack_id = await raw.emit("replay:unsubscribe", {"channel": name})
        expect_error(await raw.reply(ack_id), "not_subscribed", clause="EVT-7")
    head = 2
    if "client-publish" in target.features:
        await raw.emit_no_ack("replay:publish", {"channel": channel, "data": {"n": 3}})
        head = 3
    if "cursors" in target.features:
        epoch = target.log.epoch_of(channel)
        await raw.emit_no_ack("replay:ack", {"channel": channel, "offset": 1, "epoch": epoch})
    resumed = expect_ok(
        await raw.reply(await raw.emit("replay:subscribe", {"channel": channel})), clause="EVT-7"
    )
    expect(
        resumed.get("head") == head,
        clause="EVT-7",
        expected=f"head {head}: an ackless publish is stored",
        received=resumed,
    )
    start = 2 if "cursors" in target.features else head + 1  # SUB-9, through the cursor
    expect(
        resumed.get("from") == start,
        clause="EVT-7",
        expected=f"from {start}: an ackless ack moves the cursor",
        received=resumed,
    )
    await asyncio.sleep(QUIET_S)
    expect(0 not in raw.acks, clause="EVT-7", expected="no reply", received=raw.acks.get(0))


async def _still_serving(raw: RawSocket, target: Target, channel: str, clause: str) -> bool:
    """After a packet that names no client event: False if the server closed the connection
    (allowed); True once the socket answered a probe and its subscription delivered again."""
    probe = await raw.emit("replay:unsubscribe", {"channel": target.channel("probe")})
    if not await raw.wait(lambda: probe in raw.acks):
        expect(
            raw.closed, clause=clause, expected="a reply to the probe, or a close", received="none"
        )
        return False
    expect_error(await raw.reply(probe), "not_subscribed", clause=clause)
    count = len(raw.offsets(channel))
    await target.backend.publish(channel, {"after": "packet"})
    delivered = await raw.wait(lambda: len(raw.offsets(channel)) > count)
    expect(delivered, clause=clause, expected="the subscription still delivering", received="none")
    return True


@case("EVT-8", "ROB-5")
@pytest.mark.parametrize("name", ["disconnect", "connect", "connect_error", "disconnecting"])
async def test_reserved_event_names_are_dropped_or_close(target: Target, name: str) -> None:
    channel, elsewhere = target.channel(), target.channel("elsewhere")
    session = await target.register([grant(channel)])
    other = await target.register([grant(elsewhere)])
    raw = await RawSocket.open(target, session.token)
    subscribed = await raw.emit("replay:subscribe", {"channel": channel})
    expect_ok(await raw.reply(subscribed), clause="ROB-5")
    await raw.send_body(json.dumps([name]), ack=False)
    asked = [await raw.send_body(json.dumps([name]))]
    # What a CONNECT carries, in disguise: the socket must not become the other session's.
    asked.append(await raw.send_body(json.dumps([name, {}, {"token": other.token}])))
    if not await _still_serving(raw, target, channel, "EVT-8"):
        return  # closed, as the official server does
    for ack_id in asked:
        expect(
            ack_id not in raw.acks,
            clause="EVT-8",
            expected=f"no reply to {name!r}",
            received=raw.acks.get(ack_id or 0),
        )
    ack_id = await raw.emit("replay:subscribe", {"channel": elsewhere})
    expect_error(await raw.reply(ack_id), "forbidden", clause="EVT-8")
    # Still its session's socket: deleting the session disconnects it (no zombie).
    deleted = await target.backend.delete_session(session.session_id)
    expect(deleted.status == 204, clause="EVT-8", expected="HTTP 204", received=deleted.status)
    closed = await raw.wait(lambda: raw.closed, timeout=5)
    expect(closed, clause="EVT-8", expected="disconnected with its session", received="open")
    witness = await target.client(grants=[grant(channel)])  # the server serves on
    expect_ok(await witness.subscribe(channel, from_="beginning"), clause="ROB-5")


@case("EVT-9", "ROB-5")
@pytest.mark.parametrize("body", ["[5]", "[null]", "[]", '[{"channel":"x"}]', "[true,{}]"])
async def test_non_string_event_names_are_dropped_or_close(target: Target, body: str) -> None:
    channel = target.channel()
    session = await target.register([grant(channel)])
    raw = await RawSocket.open(target, session.token)
    subscribed = await raw.emit("replay:subscribe", {"channel": channel})
    expect_ok(await raw.reply(subscribed), clause="ROB-5")
    await raw.send_body(body, ack=False)
    asked = await raw.send_body(body)
    if await _still_serving(raw, target, channel, "EVT-9"):
        expect(
            asked not in raw.acks,
            clause="EVT-9",
            expected=f"no reply to {body}",
            received=raw.acks.get(asked or 0),
        )
    witness = await target.client(grants=[grant(channel)])
    expect_ok(await witness.subscribe(channel, from_="beginning"), clause="ROB-5")


# --- §10.9 robustness ---------------------------------------------------------------------------


@case("ROB-5", timeout=60)
async def test_others_keep_working_during_a_flood(target: Target) -> None:
    channel = target.channel()
    flooder = await target.client(grants=[grant("*")], name="flooder")
    witness = await target.client(grants=[grant(channel)], name="witness")
    expect_ok(await witness.subscribe(channel, from_="beginning"))
    big = "x" * (_transport_bound(target) - 1024)

    done = asyncio.Event()

    async def flood() -> None:
        junk: list[tuple[str, object]] = [
            (event, payload)
            for event in EVENTS
            for _, payload in _malformed(target, event, channel)
        ]
        junk += [("replay:publish", {"channel": channel, "data": big})] * 10
        # Until the others are done (bounded, in case they never are).
        for _ in range(20):
            for start in range(0, len(junk), 25):
                if done.is_set() or not flooder.connected:
                    return
                with contextlib.suppress(Indeterminate):
                    await asyncio.gather(
                        *(flooder.emit_raw(e, p) for e, p in junk[start : start + 25])
                    )

    async def work() -> None:
        try:
            for n in range(20):
                await target.backend.publish(channel, {"n": n})
                if "history" in target.features:
                    expect_ok(await witness.history(channel, limit=1), clause="ROB-5")
            await witness.wait_for_offset(channel, 20, clause="ROB-5", timeout=15)
            other = await target.client(grants=[grant(channel, "subscribe")])
            expect_ok(await other.subscribe(channel, from_=15), clause="ROB-5")
            await other.wait_for_offset(channel, 20, clause="ROB-5")
        finally:
            done.set()

    await asyncio.gather(flood(), work())
    expect_offsets(witness.offsets(channel), range(1, 21), clause="ROB-5", channel=channel)


# ROB-6: random payloads for random events; "$CHANNEL" becomes the example's channel.
_CHANNEL: Final = "$CHANNEL"
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from([_CHANNEL, "beginning", "latest", "", 0, 1, 2, 2**53 - 1])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
_MEMBERS = st.sampled_from(
    ["channel", "from", "epoch", "allow_truncation", "offset", "data", "id", "limit"]
) | st.text(max_size=6)
_OBJECTS: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"channel": st.just(_CHANNEL)}
) | st.just({})
_PAYLOADS = st.builds(
    lambda base, extra: {**base, **extra}, _OBJECTS, st.dictionaries(_MEMBERS, _VALUES, max_size=4)
)
_ARGS = st.one_of(
    _PAYLOADS.map(lambda p: (p,)),
    _VALUES.map(lambda v: (v,)),
    st.lists(_PAYLOADS | _VALUES, max_size=3).map(tuple),
)


def _fill_channel(value: Any, channel: str) -> Any:
    if value == _CHANNEL:
        return channel
    if isinstance(value, dict):
        return {k: _fill_channel(v, channel) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill_channel(v, channel) for v in value]
    return value


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(event=st.sampled_from(EVENTS), args=_ARGS)
@case("ROB-6", "EVT-1", "ROB-2")
async def test_fuzzed_payloads_get_valid_replies(
    target: Target, event: str, args: tuple[object, ...]
) -> None:
    channel = target.channel()
    await target.backend.publish(channel, {"n": 0})
    client = await target.client(grants=[grant(channel)])
    filled = [_fill_channel(a, channel) for a in args]
    try:
        # The client checks the reply against the event's schemas on arrival (EVT-1).
        await client.emit_raw(event, *filled)
    except ConnectionLost as exc:
        fail("ROB-6", f"a reply to {event}, and the socket kept", str(exc))
    expect(client.connected, clause="ROB-6", expected="still connected", received="closed")
    expect_error(await client.unsubscribe(target.channel("none")), "not_subscribed", clause="ROB-2")


# --- §10.12 limits ------------------------------------------------------------------------------


@case("LIM-2", timeout=60)
async def test_packets_above_the_transport_bound_harm_no_one_else(target: Target) -> None:
    channel = target.channel()
    witness = await target.client(grants=[grant(channel)], name="witness")
    expect_ok(await witness.subscribe(channel, from_="beginning"))
    offender: ReplayClient = await target.client(grants=[grant("*")], name="offender")
    oversized = "x" * (4 * _transport_bound(target))
    for n in range(3):
        if offender.connected:
            # Closing this socket is what LIM-2 recommends; a typed reply is fine too.
            with contextlib.suppress(Indeterminate):
                await offender.publish(channel, oversized, timeout=5)
        await target.backend.publish(channel, {"n": n})
    info = await target.backend.info()
    expect(info.get("protocol") == "replay/1", clause="LIM-2", expected="up", received=info)
    await witness.wait_for_offset(channel, 3, clause="LIM-2")
    expect_offsets(witness.offsets(channel), [1, 2, 3], clause="LIM-2", channel=channel)
    expect_error(await witness.unsubscribe(target.channel("x")), "not_subscribed", clause="LIM-2")


# --- EVT-12, EVT-13, API-13: what is not I-JSON anywhere in a request -------------------------


@case("EVT-12", "EVT-6")
async def test_a_repeated_member_anywhere_in_an_event_is_a_bad_request(target: Target) -> None:
    first, second = target.channel("first"), target.channel("second")
    session = await target.register([grant(first), grant(second)])
    raw = await RawSocket.open(target, session.token)
    repeated = [
        # Which channel? A decoder keeping the first and one keeping the last disagree.
        f'["replay:subscribe",{{"channel":"{first}","channel":"{second}"}}]',
        f'["replay:subscribe",{{"channel":"{first}","from":"latest","from":"beginning"}}]',
        f'["replay:subscribe",{{"channel":"{first}","\\u0066rom":"latest","from":"latest"}}]',
        f'["replay:unsubscribe",{{"channel":"{first}","channel":"{first}"}}]',
    ]
    for body in repeated:
        ack_id = await raw.send_body(body)
        assert ack_id is not None  # asked for one
        expect_error(await raw.reply(ack_id), "bad_request", clause="EVT-12")
    # No effect: neither channel is subscribed.
    for channel in (first, second):
        ack_id = await raw.emit("replay:unsubscribe", {"channel": channel})
        expect_error(await raw.reply(ack_id), "not_subscribed", clause="EVT-6")


@case("EVT-13", "ROB-2")
async def test_an_event_outside_replay_affects_nothing(target: Target) -> None:
    channel = target.channel()
    session = await target.register([grant(channel)])
    raw = await RawSocket.open(target, session.token)
    subscribed = await raw.emit("replay:subscribe", {"channel": channel})
    expect_ok(await raw.reply(subscribed), clause="SUB-14")
    await raw.send_body(json.dumps(["chat message", {"channel": channel}]))
    await raw.send_body(json.dumps(["unsubscribe", {"channel": channel}]), ack=False)
    # The subscription still delivers, and is still there to be ended.
    await target.backend.publish(channel, {"n": 1})
    delivered = await raw.wait(lambda: raw.offsets(channel) == [1])
    expect(delivered, clause="EVT-13", expected="offset 1 delivered", received=raw.offsets(channel))
    ended = await raw.emit("replay:unsubscribe", {"channel": channel})
    expect_ok(await raw.reply(ended), clause="EVT-13")


@case("API-13")
async def test_a_repeated_member_anywhere_in_a_body_is_a_bad_request(target: Target) -> None:
    backend = target.backend
    channel = target.channel()
    bodies = [
        '{"client_id":"a","client_id":"b","grants":[]}',
        f'{{"client_id":"a","grants":[{{"channels":"{channel}","channels":"*",'
        '"actions":["subscribe"]}]}',
    ]
    for body in bodies:
        answer = await backend.request("POST", session_path(), raw=body.encode())
        expect_status(answer, 400, clause="API-13", code="bad_request")
    published = await backend.request(
        "POST", messages_path(channel), raw=b'{"data":1,"data":2}', channel=channel
    )
    expect_status(published, 400, clause="API-13", code="bad_request", channel=channel)
    if "retention" in target.features:
        answer = await backend.request(
            "PUT",
            retention_path(channel),
            raw=b'{"max_messages":5,"max_messages":null}',
            channel=channel,
        )
        expect_status(answer, 400, clause="API-13", code="bad_request", channel=channel)
