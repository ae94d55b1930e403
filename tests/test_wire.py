"""What the reference decodes from the wire: a payload that is not I-JSON gets a typed error
over both transports, with nothing logged as a failure (MSG-6 to MSG-8, ROB-1)."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from harness import API_KEY, serve

from reference.core.model import Message
from reference.server.wire import UNDECODABLE_EVENT, BatchEncoder, SocketJson

NOT_I_JSON = [
    r'"data":"\ud800"',  # MSG-6
    r'"data":{"\udc00":1}',
    r'"data":1,"id":"\ud800"',
    '"data":{"a":1,"a":2}',  # MSG-7
    '"data":1,"data":2',
    '"data":123456789012345678901234567890',  # MSG-8
    '"data":' + "1" * 5000,
    '"data":1e400',
]


def _no_failure_logged(caplog: pytest.LogCaptureFixture) -> None:
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


async def test_over_http_it_is_bad_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve() as served:
        url = served.url + "/replay/v1/channels/c/messages"
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        for members in NOT_I_JSON:
            body = ("{" + members + "}").encode()
            async with served.http.post(url, data=body, headers=headers) as response:
                answer = await response.json()
            assert (response.status, answer["error"]["code"]) == (400, "bad_request"), members
        assert (await served.publish("c", "after"))["offset"] == 1  # nothing was stored
    _no_failure_logged(caplog)


async def _raw_socket(
    served_url: str, http: aiohttp.ClientSession, token: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{served_url}/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str()).startswith("0{")
    await ws.send_str("40" + json.dumps({"token": token}))
    assert (await ws.receive_str()).startswith("40")
    return ws


async def test_over_socket_io_it_is_bad_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve() as served:
        token = (await served.register())["token"]
        ws = await _raw_socket(served.url, served.http, token)
        for ack, members in enumerate(NOT_I_JSON, start=1):
            await ws.send_str(f'42{ack}["replay:publish",{{"channel":"c",{members}}}]')
            packet = await ws.receive_str()
            while packet == "2":  # an Engine.IO ping
                await ws.send_str("3")
                packet = await ws.receive_str()
            assert packet.startswith(f"43{ack}["), packet
            reply = json.loads(packet[2 + len(str(ack)) :])[0]
            assert reply["error"]["code"] == "bad_request", members
        await ws.close()
        assert (await served.publish("c", "after"))["offset"] == 1
    _no_failure_logged(caplog)


def test_socket_json_still_turns_deep_nesting_into_an_event() -> None:  # ROB-1
    assert SocketJson.loads("[" * 100_000 + "]" * 100_000) == [UNDECODABLE_EVENT]


def _batch(offset: int, chars: int) -> list[Message]:
    return [Message(offset=offset, id=str(offset), ts=0, data="x" * chars, size=chars + 2)]


def test_the_packet_cache_is_bounded_in_characters() -> None:
    # A slow socket's catch-up once left up to 256 packets of up to 1 MiB in the cache.
    encoder = BatchEncoder(capacity=256, max_chars=3500)
    packets = [encoder.messages_packet("c", "e", _batch(n, 1000)) for n in range(1, 6)]
    assert 0 < encoder.cached_chars <= 3500
    assert encoder.messages_packet("c", "e", _batch(5, 1000)) is packets[-1]  # kept
    again = encoder.messages_packet("c", "e", _batch(1, 1000))  # evicted: encoded anew
    assert again == packets[0] and again is not packets[0]
    assert encoder.cached_chars <= 3500


def test_the_packet_cache_is_bounded_in_packets() -> None:
    encoder = BatchEncoder(capacity=2)
    packets = [encoder.messages_packet("c", "e", _batch(n, 10)) for n in range(1, 4)]
    assert encoder.messages_packet("c", "e", _batch(3, 10)) is packets[2]
    assert encoder.messages_packet("c", "e", _batch(1, 10)) is not packets[0]
