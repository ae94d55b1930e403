"""What a peer may send below the replay events: Engine.IO frames and Socket.IO packet shapes.

python-engineio and python-socketio raise on input they cannot decode (an empty frame, a packet
type that is not a digit, a placeholder naming no attachment), and each raise is logged with a
traceback at error level: hostile peers could fill the disk and drown real errors. These checks
name the problem first, so that the server can close such a peer with one short line. They
accept everything a standard client sends (TRN-1, TRN-6).
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse

# Engine.IO v4 packet types: open, close, ping, pong, message, upgrade, noop.
ENGINE_PACKET_TYPES = frozenset("0123456")
# Over long-polling a client sends no open, ping or noop: python-engineio answers each with a
# disconnect that waits for the next GET, so the POST would hang until the ping timeout.
NOT_FROM_POLLING_CLIENTS = frozenset("026")
# python-engineio's ``Payload.max_decode_packets``: more packets in one POST body raise.
MAX_POLLING_PACKETS = 16
# Socket.IO v5 packet types a client sends: every one but CONNECT_ERROR (4), which only a
# server sends.
CLIENT_PACKET_TYPES = frozenset({0, 1, 2, 3, 5, 6})
BINARY_PACKET_TYPES = frozenset({5, 6})
# Replay events are JSON (TRN-3): a standard client attaches binary only by mistake, and then
# a few buffers at most. A larger count would hold the packet open waiting for attachments.
MAX_ATTACHMENTS = 16


class MalformedPacket(Exception):
    """A peer sent something no standard client sends; ``str()`` says what, briefly."""


def engine_frame_problem(frame: str | bytes) -> str | None:
    """Why python-engineio could not decode one Engine.IO packet, or None if it can."""
    if isinstance(frame, bytes):
        return None  # a binary MESSAGE (a Socket.IO attachment)
    if not frame:
        return "an empty Engine.IO packet"
    kind = frame[0]
    if kind == "b":  # a base64 binary MESSAGE (long-polling)
        try:
            base64.b64decode(frame[1:])
        except (binascii.Error, ValueError):
            return "an Engine.IO binary packet that is not base64"
        return None
    if kind not in ENGINE_PACKET_TYPES:
        return f"Engine.IO packet type {kind[:1]!r}"
    return None


def polling_body_problem(body: bytes) -> str | None:
    """Why python-engineio could not decode a long-polling POST body, or None if it can."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "a polling body that is not UTF-8"
    if text.startswith("d="):  # JSONP
        fields = urllib.parse.parse_qs(text)
        if "d" not in fields:
            return "a JSONP polling body without packets"
        text = fields["d"][0]
    if not text:
        return None
    frames = text.split("\x1e")
    if len(frames) > MAX_POLLING_PACKETS:
        return f"{len(frames)} packets in one polling body"
    for frame in frames:
        problem = engine_frame_problem(frame)
        if problem is not None:
            return problem
        if frame[:1] in NOT_FROM_POLLING_CLIENTS:
            return f"Engine.IO packet type {frame[0]!r} over long-polling"
    return None


def socket_packet_problem(packet_type: object, attachments: int, data: object) -> str | None:
    """Why a decoded Socket.IO packet is not one a client sends, or None if it is."""
    if packet_type not in CLIENT_PACKET_TYPES:
        return f"Socket.IO packet type {str(packet_type)[:8]!r}"
    if packet_type not in BINARY_PACKET_TYPES:
        return None
    if not 1 <= attachments <= MAX_ATTACHMENTS:
        return f"a binary packet announcing {attachments} attachments"
    return placeholder_problem(data, attachments)


def placeholder_problem(data: object, attachments: int) -> str | None:
    """Why a binary packet's placeholders cannot be filled from ``attachments`` buffers."""
    pending = [data]
    while pending:  # iterative: the data may be nested as deep as the decoder allows
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            # python-socketio's test for a placeholder, which it then indexes by ``num``
            if item.get("_placeholder") and "num" in item:
                num = item["num"]
                if type(num) is not int or not 0 <= num < attachments:
                    return f"a placeholder naming attachment {str(num)[:20]!r}"
            else:
                pending.extend(item.values())
    return None
