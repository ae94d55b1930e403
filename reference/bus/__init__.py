"""How a node hears what other nodes did: head moves and session changes (``BusEvent``s).

A node alone uses ``LocalBus``; nodes sharing a store use a bus over that store, chosen by
``open_bus`` from the same URL as the store.
"""

from __future__ import annotations

from reference.bus.base import Bus, BusEvent, HeadMoved, LocalBus, SessionChanged, SessionDeleted
from reference.store.base import Store

__all__ = [
    "Bus",
    "BusEvent",
    "HeadMoved",
    "LocalBus",
    "SessionChanged",
    "SessionDeleted",
    "open_bus",
]


def open_bus(url: str, store: Store) -> Bus:
    """The bus that matches a store URL (see ``reference.store.open_store``)."""
    if not store.shared:
        return LocalBus()
    # Shared stores get their cross-node bus here (Redis pub/sub, MongoDB change streams).
    raise ValueError(f"no cross-node bus for store {url.partition('://')[0]!r} yet")
