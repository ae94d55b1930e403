"""How a node hears what other nodes did: head moves and session changes (``BusEvent``s).

A node alone uses ``LocalBus``; nodes sharing a store use a bus over that store, chosen by
``open_bus`` from the same URL as the store: Redis pub/sub for ``RedisStore``
(``reference.bus.redis``), sharded pub/sub for ``RedisClusterStore``
(``reference.bus.redis_cluster``), a collection for ``MongoStore`` (``reference.bus.mongo``).
Each is imported only when used, like the stores' drivers.
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
    """The bus for ``store``, opened from ``url`` by ``reference.store.open_store``.

    A store no other process shares needs only ``LocalBus``; a shared one gets the bus over
    the same server, through the store's own client. Raise ``ValueError`` for a shared store
    of a kind no bus exists for.
    """
    if not store.shared:
        return LocalBus()
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis+cluster", "rediss+cluster"):
        from reference.bus.redis_cluster import ClusterBus
        from reference.store.redis_cluster import RedisClusterStore

        if isinstance(store, RedisClusterStore):
            return ClusterBus(store.cluster)
    elif scheme in ("redis", "rediss"):
        from redis.asyncio import Redis

        from reference.bus.redis import RedisBus
        from reference.store.redis import RedisStore

        if isinstance(store, RedisStore) and isinstance(store.client, Redis):
            return RedisBus(store.client)
    elif scheme in ("mongodb", "mongodb+srv"):
        from reference.bus.mongo import MongoBus
        from reference.store.mongo import MongoStore

        if isinstance(store, MongoStore):
            return MongoBus(store.database)
    raise ValueError(f"no cross-node bus for a {type(store).__name__} from a {scheme!r} URL")
