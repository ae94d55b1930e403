"""WebSocket compression is declined unless the operator turns it on
(``reference.server.compression``), and frames flow either way."""

from __future__ import annotations

import json

import pytest
from harness import serve

# The offer socket.io-client makes on every WebSocket (through the `ws` package), for HTTP.
OFFER = "permessage-deflate; client_max_window_bits"


@pytest.mark.parametrize("enabled", [False, True])
async def test_the_offer_is_accepted_only_when_enabled(enabled: bool) -> None:
    async with serve(websocket_compression=enabled) as served:
        token = (await served.register())["token"]
        url = f"{served.url}/socket.io/?EIO=4&transport=websocket"
        # compress=15: aiohttp offers permessage-deflate and reports what the server answered
        async with served.http.ws_connect(url, compress=15) as ws:
            assert bool(ws.compress) is enabled  # what the server's handshake answered
            assert (await ws.receive_str()).startswith("0{")
            await ws.send_str("40" + json.dumps({"token": token}))
            assert (await ws.receive_str()).startswith("40")  # frames flow in both modes


async def test_http_requests_are_untouched() -> None:
    async with serve() as served:
        headers = {"Sec-WebSocket-Extensions": OFFER}
        async with served.http.get(served.url + "/replay/v1/info", headers=headers) as response:
            assert response.status == 200
