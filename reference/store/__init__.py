"""Replay stores and ``open_store``, which picks one from a URL.

``memory`` is the embedded default and needs nothing; the MongoDB store needs the optional
``mongodb`` extra (PyMongo), imported only when a ``mongodb://`` URL is used, and the Redis
store the optional ``redis`` extra (redis-py), imported only for a ``redis://`` URL, or for a
``redis+cluster://`` one (a Redis Cluster, given by one or more seed nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reference.store.base import Clock, Store, wall_clock_ms
from reference.store.memory import MemoryStore

if TYPE_CHECKING:
    from reference.store.mongo import MongoStore
    from reference.store.redis import RedisStore

__all__ = ["MemoryStore", "Store", "open_store"]

ACCEPTED_FORMS = (
    "memory",
    "mongodb://HOST[:PORT][/DB][?OPTIONS]",
    "mongodb+srv://HOST[/DB]",
    "redis://HOST[:PORT][/DB]",
    "rediss://HOST[:PORT][/DB]",
    "redis+cluster://HOST:PORT[,HOST:PORT...]",
    "rediss+cluster://HOST:PORT[,HOST:PORT...]",
)
DEFAULT_MONGO_DB = "replay"


def open_store(
    url: str, *, clock: Clock = wall_clock_ms, idempotency_window_s: int = 3600
) -> Store:
    """The store ``url`` names, constructed but not opened: the caller awaits ``open()``.

    Raise ``ValueError`` for a URL of no known form, and ``ImportError`` when the store's
    optional driver is not installed.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else url
    if url == "memory":
        return MemoryStore(clock=clock, idempotency_window_s=idempotency_window_s)
    if scheme in ("mongodb", "mongodb+srv"):
        return _open_mongo(url, clock=clock, idempotency_window_s=idempotency_window_s)
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        return _open_redis(url, clock=clock, idempotency_window_s=idempotency_window_s)
    # Only the scheme is echoed: the rest of a URL may hold a password.
    shown = f"scheme {scheme!r}" if "://" in url else "no scheme"
    raise ValueError(
        f"unsupported store URL ({shown}); expected one of: " + ", ".join(ACCEPTED_FORMS)
    )


def _open_mongo(url: str, *, clock: Clock, idempotency_window_s: int) -> MongoStore:
    try:
        from pymongo import AsyncMongoClient
    except ImportError as exc:
        raise ImportError(
            "the MongoDB store needs PyMongo: pip install 'socketio-replay[mongodb]'"
        ) from exc
    from reference.store.mongo import MongoStore
    from reference.store.mongo_deployment import CLIENT_OPTIONS

    # The client connects lazily, on the store's first command (``open()``). Its options
    # override the URL's: reads from the primary, and timeouts of seconds (mongo_deployment).
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **CLIENT_OPTIONS)
    db = client.get_default_database(default=DEFAULT_MONGO_DB)  # the database in the URL path
    return MongoStore(db, client=client, clock=clock, idempotency_window_s=idempotency_window_s)


def _open_redis(url: str, *, clock: Clock, idempotency_window_s: int) -> RedisStore:
    try:
        import redis.asyncio  # noqa: F401 - only to fail early, with a helpful message
    except ImportError as exc:
        raise ImportError(
            "the Redis store needs redis-py: pip install 'socketio-replay[redis]'"
        ) from exc
    from reference.store.redis import RedisStore
    from reference.store.redis_cluster import SCHEMES, RedisClusterStore

    # The client connects lazily, on the store's first command (``open()``).
    if url.partition("://")[0].lower() in SCHEMES:
        return RedisClusterStore.from_cluster_url(
            url, clock=clock, idempotency_window_s=idempotency_window_s
        )
    return RedisStore.from_url(url, clock=clock, idempotency_window_s=idempotency_window_s)
