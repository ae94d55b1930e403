"""The parts of a proxied TCP connection: its directions, what flows through them, resets.

Leaf types of :mod:`conformance.faults.proxy` (whose docstring explains the design).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Delay",
    "Direction",
    "Item",
    "PeerReset",
    "ProxiedConnection",
    "Signal",
    "expand",
    "reset_socket",
]

_LINGER_RST: Final = struct.pack("ii", 1, 0)


class Direction(enum.Enum):
    """Which way a fault applies: UP is client to server, DOWN is server to client."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


def expand(direction: Direction) -> tuple[Direction, ...]:
    return (Direction.UP, Direction.DOWN) if direction is Direction.BOTH else (direction,)


class Signal(enum.Enum):
    EOF = "eof"
    RESET = "reset"


@dataclass(frozen=True)
class Delay:
    latency: float
    jitter: float
    seed: int | None


# (data, due): ``due`` is the loop time before which data must not be released.
Item = tuple[bytes | Signal, float]


class PeerReset(Exception):
    """A peer went away abruptly; the whole connection must be reset."""


def reset_socket(writer: asyncio.StreamWriter | None) -> None:
    """Abort the socket behind ``writer`` so that its peer receives an RST."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    # The socket is already gone if the transport finished closing; then there
    # is nothing left to reset.
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


@dataclass(eq=False)
class ProxiedConnection:
    """One proxied client connection, with per-direction byte counters.

    ``bytes_up``/``bytes_down`` count bytes delivered to the destination;
    ``held_up``/``held_down`` count bytes read from the source but not yet
    delivered (held by a stall or delay, or in flight).
    """

    id: int
    bytes_up: int = 0
    bytes_down: int = 0
    held_up: int = 0
    held_down: int = 0
    closed: bool = False
    _client: asyncio.StreamWriter | None = field(default=None, repr=False)
    _upstream: asyncio.StreamWriter | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def held_bytes(self) -> int:
        """Bytes held inside the proxy for this connection, both directions."""
        return self.held_up + self.held_down

    def count(self, direction: Direction, read: int = 0, delivered: int = 0) -> None:
        if direction is Direction.UP:
            self.held_up += read - delivered
            self.bytes_up += delivered
        else:
            self.held_down += read - delivered
            self.bytes_down += delivered

    def reset(self) -> None:
        reset_socket(self._client)
        reset_socket(self._upstream)
