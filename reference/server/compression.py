"""WebSocket compression (permessage-deflate, RFC 7692): off unless the operator asks for it.

socket.io-client offers permessage-deflate on every WebSocket, and aiohttp accepts any offer,
so every frame the reference sent was deflated once per socket: the live fan-out benchmark
spent most of its time in zlib, and each socket held a compressor and a decompressor (most of
the 130 KiB per socket that ``bench/memory.py`` measured). The stock Node.js server has the
same extension off by default (engine.io's ``perMessageDeflate: false``) for the same reasons.

python-engineio builds its ``WebSocketResponse`` itself, with no way to pass ``compress``; the
middleware below removes the offer from the upgrade request instead, so the handshake answers
without the extension and both sides send plain frames (RFC 7692 §5: a server declines by
leaving it out).
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict


@web.middleware
async def decline_websocket_compression(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Hand the request on without its ``Sec-WebSocket-Extensions`` offer."""
    if hdrs.SEC_WEBSOCKET_EXTENSIONS not in request.headers:
        return await handler(request)
    headers = CIMultiDict(request.headers)
    del headers[hdrs.SEC_WEBSOCKET_EXTENSIONS]
    return await handler(request.clone(headers=headers))
