"""Which Socket.IO EVENT packets name a client event at all (EVT-8, EVT-9).

Socket.IO dispatches an EVENT packet by its first element. A client can write any JSON there,
so a server that dispatches blindly runs its own ``connect`` or ``disconnect`` logic for a
socket that stays open, or fails on a name that is not a string.
"""

from __future__ import annotations

# The names Socket.IO reserves; the official parser (socket.io-parser's ``RESERVED_EVENTS``)
# rejects an EVENT packet carrying one of them.
RESERVED_EVENT_NAMES = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


def names_client_event(data: object) -> bool:
    """Whether an EVENT packet's data starts with a name a client event may have."""
    return (
        isinstance(data, list)
        and len(data) > 0
        and isinstance(data[0], str)
        and data[0] not in RESERVED_EVENT_NAMES
    )
