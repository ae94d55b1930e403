"""Peers that send, below the replay events, what no standard client sends: each is closed
(or answered, or ignored, where Socket.IO says so) with at most one short log line and no
traceback, and a well-behaved client on the same server keeps working (ROB-5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

import aiohttp
import pytest
from harness import Client, Served, serve

from reference.core import frames
from reference.core.model import Limits
from reference.server.app import SOCKETS_KEY, transport_buffer_bytes
from reference.server.peer_guard import GuardedEngineServer, GuardedPacket, GuardedWebSocket

WS_PATH = "/socket.io/?EIO=4&transport=websocket"
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
CLOSED = "closed"
IGNORED = "ignored"


@dataclass(frozen=True)
class Case:
    name: str
    frames: tuple[str | bytes, ...]
    connect: bool = True  # send CONNECT with a valid token first
    outcome: str = CLOSED  # CLOSED, IGNORED, or the prefix of the packet that answers


def _placeholder(num: object) -> str:
    return json.dumps(["replay:publish", {"_placeholder": True, "num": num}])


CASES = [
    Case("binary frame before CONNECT", (b"\x00\x01binary",), connect=False),
    Case("binary frame after CONNECT", (b"\xff\xfe",)),
    Case("empty text frame", ("",)),
    Case("Engine.IO type not a digit", ("x",)),
    Case("Engine.IO type 9", ("9hello",)),
    Case("Engine.IO bad base64", ("b!!!",)),
    Case("empty Socket.IO packet", ("4",)),
    Case("Socket.IO type not a digit", ("4x[]",)),
    Case("Socket.IO type 9", ("49[]",)),
    Case("CONNECT_ERROR from a client", ('44{"message":"x"}',)),
    Case("Socket.IO body not JSON", ('42["replay:publish",',)),
    Case("huge ack id", ("42" + "9" * 120 + '["replay:history",{}]',)),
    Case("EVENT for a namespace not joined", ('42/nope,["replay:history",{}]',)),
    Case("ACK for a namespace not joined", ("43/nope,1[]",)),
    Case("EVENT before CONNECT", ('42["replay:history",{}]',), connect=False),
    Case("CONNECT twice", ('40{"token":"x"}',)),
    Case("BINARY_EVENT with no attachments announced", ("45" + _placeholder(0),)),
    Case("BINARY_EVENT with an absurd attachment count", ("4599999-" + _placeholder(0),)),
    Case("placeholder past the attachments", ("451-" + _placeholder(3),)),
    Case("placeholder that is not a number", ("451-" + _placeholder("a"),)),
    Case("BINARY_EVENT before CONNECT", ("451-" + _placeholder(0), b"x"), connect=False),
    Case("ACK for an unknown id", ("431[]", "43999999[1,2]"), outcome=IGNORED),
    Case("DISCONNECT for a namespace not joined", ("41/nope,",), outcome=IGNORED),
    Case("CONNECT to an unknown namespace", ("40/nope,",), outcome="44/nope,"),
    Case(
        "binary attachment answered bad_request", ("451-1" + _placeholder(0), b"x"), outcome="431["
    ),
    Case("Engine.IO OPEN and NOOP from a client", ("0", "6"), outcome=IGNORED),
]


async def _open(served: Served, token: str, connect: bool) -> aiohttp.ClientWebSocketResponse:
    ws = await served.http.ws_connect(served.url + WS_PATH, max_msg_size=0)
    assert (await ws.receive_str()).startswith("0{")
    if connect:
        await ws.send_str("40" + json.dumps({"token": token}))
        assert (await ws.receive_str()).startswith("40")
    return ws


async def _next_packet(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> str | None:
    """The next Socket.IO packet the server sends (pings answered), None once closed."""
    while True:
        message = await ws.receive(timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            return None
        if message.data == "2":
            await ws.send_str("3")
        elif message.data.startswith("4"):
            return str(message.data[1:])
        elif message.data == "1":  # Engine.IO CLOSE
            return None


async def _send(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)


async def _expect(ws: aiohttp.ClientWebSocketResponse, case: Case) -> None:
    if case.outcome == CLOSED:
        assert await _next_packet(ws, 5) is None, case.name
    elif case.outcome == IGNORED:  # still connected, still answered
        await ws.send_str('427["replay:history",{}]')
        packet = await _next_packet(ws, 5)
        assert packet is not None and packet.startswith("37["), (case.name, packet)
    else:
        packet = await _next_packet(ws, 5)
        assert packet is not None and packet.startswith(case.outcome[1:]), (case.name, packet)


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def _still_delivers(served: Served, good: Client) -> None:
    await served.publish("c", "after")
    await good.wait_for_offset("c", 1)


def _at_most_one_line(caplog: pytest.LogCaptureFixture) -> None:
    assert not _failures(caplog), _failures(caplog)
    assert len(_warnings(caplog)) <= 1, [r.getMessage() for r in _warnings(caplog)]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_hostile_websocket_peer(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        good = await served.client()
        assert (await good.call("replay:subscribe", {"channel": "c"}))["ok"]
        token = (await served.register())["token"]
        ws = await _open(served, token, case.connect)
        for frame in case.frames:
            await _send(ws, frame)
        await _expect(ws, case)
        await ws.close()
        await _still_delivers(served, good)
    _at_most_one_line(caplog)


async def test_a_frame_after_the_bad_one_adds_no_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        ws = await _open(served, (await served.register())["token"], connect=True)
        for _ in range(50):
            await ws.send_str("49[]")
        assert await _next_packet(ws, 5) is None
        await ws.close()
    assert not _failures(caplog)
    assert len(_warnings(caplog)) == 1


async def test_invalid_utf8_and_oversized_frames_close_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        token = (await served.register())["token"]
        ws = await _open(served, token, connect=True)
        # A text frame (opcode 1) whose payload is not UTF-8: aiohttp's client will not build
        # one, so write it through the connection's frame writer.
        await ws._writer.send_frame(b'42["\xff\xfe"]', aiohttp.WSMsgType.TEXT)
        assert await _next_packet(ws, 5) is None
        ws = await _open(served, token, connect=True)
        with contextlib.suppress(ConnectionError):  # the server may close it mid-frame
            await ws.send_str("42" + "x" * 10_000_000)
        assert await _next_packet(ws, 10) is None
        assert (await served.client()).sio.connected
    assert not _failures(caplog)
    assert len(_warnings(caplog)) <= 2


async def _polling_session(served: Served, token: str) -> str:
    async with served.http.get(served.url + POLL_PATH) as response:
        sid = json.loads((await response.text())[1:])["sid"]
    await _post(served, sid, "40" + json.dumps({"token": token}))
    async with served.http.get(f"{served.url}{POLL_PATH}&sid={sid}") as response:
        assert (await response.text()).startswith("40")
    return str(sid)


async def _post(served: Served, sid: str, body: bytes | str) -> int:
    async with served.http.post(f"{served.url}{POLL_PATH}&sid={sid}", data=body) as response:
        return response.status


POLLING_BODIES: list[bytes | str] = [
    b"42\xff\xfe",
    "x",
    "\x1e".join(["3"] * 17),
    "4" + "\x1e",
    "49[]",
    '44{"message":"x"}',
    "d=",
    "b!!!",
    "2",  # a ping: python-engineio's disconnect would hang this POST until the ping timeout
    "0\x1e6",
]


@pytest.mark.parametrize("body", POLLING_BODIES, ids=[repr(b)[:30] for b in POLLING_BODIES])
async def test_a_hostile_polling_peer(body: bytes | str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        good = await served.client()
        assert (await good.call("replay:subscribe", {"channel": "c"}))["ok"]
        sid = await _polling_session(served, (await served.register())["token"])
        status = await _post(served, sid, body)
        await asyncio.sleep(0.1)
        async with served.http.get(f"{served.url}{POLL_PATH}&sid={sid}") as response:
            after = (response.status, await response.text())
        # Refused by Engine.IO (400, session gone) or by Socket.IO (session closed: CLOSE).
        assert status == 400 or after[0] == 400 or after[1].endswith("1"), (status, after)
        await _still_delivers(served, good)
    _at_most_one_line(caplog)


async def test_a_post_for_a_closed_session_is_a_400(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        sid = await _polling_session(served, (await served.register())["token"])
        assert await _post(served, sid, "49[]") == 200  # Socket.IO refuses it: closed
        assert await _post(served, sid, "3") == 400  # python-engineio alone: 500, a traceback
    assert not _failures(caplog), _failures(caplog)


async def test_many_hostile_connections_write_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        token = (await served.register())["token"]

        closing = [case for case in CASES if case.outcome == CLOSED]

        async def hostile(index: int) -> None:
            case = closing[index % len(closing)]
            ws = await _open(served, token, case.connect)
            for frame in (*case.frames, "49[]"):
                with contextlib.suppress(ConnectionError):
                    await _send(ws, frame)
            assert await _next_packet(ws, 10) is None, case.name
            await ws.close()

        await asyncio.gather(*(hostile(i) for i in range(100)))
        assert (await served.client()).sio.connected
    assert not _failures(caplog)
    assert len(_warnings(caplog)) <= 100


def test_the_library_hooks_are_in_place() -> None:
    """The private hooks ``peer_guard`` relies on; a library upgrade that moves one fails here."""
    import engineio
    import socketio

    assert socketio.AsyncServer._engineio_server_class
    server = GuardedEngineServer(async_mode="aiohttp")
    assert server._async["websocket"] is GuardedWebSocket
    assert isinstance(server, engineio.AsyncServer)
    assert issubclass(GuardedPacket, socketio.packet.Packet)


@pytest.mark.parametrize(
    ("frame", "problem"),
    [("", True), ("4abc", False), ("x", True), ("b", False), ("bAAA=", False), (b"\x00", False)],
)
def test_engine_frame_problem(frame: str | bytes, problem: bool) -> None:
    assert (frames.engine_frame_problem(frame) is not None) is problem


def test_placeholders_must_name_an_attachment() -> None:
    assert frames.placeholder_problem([{"_placeholder": True, "num": 0}], 1) is None
    assert frames.placeholder_problem([[{"_placeholder": True, "num": 1}]], 1) is not None
    assert frames.placeholder_problem({"a": {"_placeholder": True, "num": True}}, 2) is not None
    assert frames.socket_packet_problem(5, 0, []) is not None
    assert frames.socket_packet_problem(4, 0, {}) is not None
    assert frames.socket_packet_problem(2, 0, []) is None


async def test_a_refused_polling_post_is_answered_without_a_get() -> None:
    """python-engineio refuses a body over its size limit and closes the session, waiting for
    the queued CLOSE to be fetched: without a GET in flight, the POST hung until the ping
    timeout (found by the reliability campaign, bench/reliability)."""
    async with serve() as served:
        sid = await _polling_session(served, (await served.register())["token"])
        oversized = "4" * (transport_buffer_bytes(Limits()) + 1)  # serve()'s default limits
        async with asyncio.timeout(5):
            assert await _post(served, sid, oversized) == 400
            assert await _post(served, sid, "3") == 400  # the session is gone


async def test_shutdown_answers_a_waiting_long_polling_get() -> None:
    """aiohttp's graceful shutdown waits for requests in flight; a long-polling GET waits for
    a packet, so the server's exit after SIGTERM took the ping interval (25 s) or more."""
    async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
        served = await stack.enter_async_context(serve())
        sid = await _polling_session(served, (await served.register())["token"])

        async def wait_for_packets() -> tuple[int, str]:
            async with http.get(f"{served.url}{POLL_PATH}&sid={sid}") as response:
                return response.status, await response.text()

        waiting = asyncio.ensure_future(wait_for_packets())
        queue = served.app[SOCKETS_KEY].eio.sockets[sid].queue
        async with asyncio.timeout(5):
            while not queue._getters:  # noqa: ASYNC110 - the GET is in, waiting; no event
                await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            await stack.aclose()  # the server shuts down
            status, text = await waiting
        assert status == 200 and text.endswith("1"), (status, text)  # Engine.IO CLOSE
