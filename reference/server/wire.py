"""Encoding ``replay:messages`` packets once per batch, shared by every subscriber.

Profiling the live fan-out benchmark showed two thirds of the server's time in
python-socketio's per-emit work: scanning the payload for binary attachments and JSON-encoding
it, once per subscriber, although every subscriber at the live edge sends the very same batch.
Messages at an offset never change within an epoch (OFF-3), so a batch is named by its channel,
epoch and first and last offsets; its Socket.IO packet is encoded once (with orjson, about 10x
faster than the standard library here) and the same string goes to every socket.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence

import orjson

from reference.core import ijson
from reference.core.batching import messages_event
from reference.core.model import JsonValue, Message

# Socket.IO v5 packet type EVENT on the default namespace, without an ack id: `2[...]`.
_EVENT_PREFIX = "2"


def event_packet(event: str, payload: JsonValue) -> str:
    """A Socket.IO EVENT packet for the namespace ``/`` carrying one JSON argument."""
    try:
        body = orjson.dumps([event, payload]).decode("utf-8")
    except orjson.JSONEncodeError:  # integers beyond 64 bits, which JSON allows
        body = json.dumps([event, payload], separators=(",", ":"), ensure_ascii=False)
    return _EVENT_PREFIX + body


class BatchEncoder:
    """A small LRU of encoded ``replay:messages`` packets, keyed by what identifies a batch.

    Bounded in packets and in characters (a byte each for ASCII text): a catch-up batch may
    be as large as the node's ``max_batch_bytes`` (1 MiB), and a socket catching up alone
    fills the cache with packets no other socket asks for, so 256 of them would keep up to
    256 MiB alive after it (the slow-consumer part of ``bench.reliability`` found 46 MB).
    """

    def __init__(self, capacity: int = 256, max_chars: int = 16 * 1024 * 1024) -> None:
        self._capacity = capacity
        self._max_chars = max_chars
        self._packets: OrderedDict[tuple[str, str, int, int], str] = OrderedDict()
        self.cached_chars = 0

    def messages_packet(self, channel: str, epoch: str, batch: Sequence[Message]) -> str:
        key = (channel, epoch, batch[0].offset, batch[-1].offset)
        packet = self._packets.get(key)
        if packet is not None:
            self._packets.move_to_end(key)
            return packet
        packet = event_packet("replay:messages", messages_event(channel, epoch, batch))
        self._packets[key] = packet
        self.cached_chars += len(packet)
        while len(self._packets) > self._capacity or self.cached_chars > self._max_chars:
            self.cached_chars -= len(self._packets.popitem(last=False)[1])
        return packet


# The event a packet too deeply nested to decode is dispatched as (see ``SocketJson``).
UNDECODABLE_EVENT = "replay:undecodable"


class SocketJson:
    """The JSON module python-socketio decodes packets with.

    Valid JSON nested deeper than Python's recursion limit makes ``json.loads`` raise
    RecursionError, and python-socketio then drops the packet silently: a client event would
    get no reply at all (EVT-1). Decoding it instead as an event named ``UNDECODABLE_EVENT``
    keeps the packet's ack id, so the server answers ``bad_request`` (ROB-1). Decoding uses
    ``reference.core.ijson``, so a payload that is not I-JSON reaches the handler marked.
    """

    @staticmethod
    def dumps(obj: object, **kwargs: object) -> str:
        return json.dumps(obj, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def loads(text: str | bytes, **kwargs: object) -> object:
        try:
            # MSG-6 to MSG-8: marks a payload that is not I-JSON, for ``payloads`` to refuse
            return ijson.loads(text)
        except RecursionError:
            return [UNDECODABLE_EVENT]
