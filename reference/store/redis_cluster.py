"""The Redis store on a Redis Cluster (redis-py's asyncio ``RedisCluster``), for CLU-1.

Theory of operation
-------------------
``RedisStore``'s keys and scripts already fit a cluster: every script touches the keys of one
channel (``replay:{<channel>}:…``) or of one session (``replay:session:{<id>}…``), each under
one hash tag, so each runs on the master that owns that slot; the token index
(``replay:token:<hash>``) is a single-key command in its own slot. No command spans slots, and
nothing scans the keyspace or picks a database (a cluster has only database 0). So this module
only connects: it parses the seed list, lets ``RedisCluster`` discover the topology (one seed
is enough) and follow it (``MOVED`` after a failover or a resharding), and maps the cluster's
own failures to ``Unavailable``.

Durability: a cluster store is never ``durable`` (INF-4). Redis replicates asynchronously, so
a master that crashes can take appends with it that its replica never received, and the
replica that takes over would assign those offsets again in the same epoch (OFF-3). ``WAIT``
after each append would keep every *acknowledged* publish, but not an appended one that a
reader on another node had already seen before the crash. So channels are tied to the master
process that created them, as on a Redis without persistence (``redis_lua``: ``life`` holds
its run id): after a failover every channel of that shard gets a new epoch on its next touch
(EPO-3, DUR-3), and a channel whose epoch did not change holds every acknowledged message.

Retries: ``RedisCluster`` retries nothing itself (``Retry(NoBackoff(), 0)``), for the reason in
``reference.store.redis``; after a connection error it re-reads the topology before its next
command, so a call that failed while a master was down succeeds once the replica has taken
over. Every node's pool is bounded and refuses a connection beyond it (``MaxConnectionsError``),
so semaphores keep the store's and the bus's concurrent commands below that bound: a burst
waits (up to ``POOL_WAIT_S``) instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from reference.core.errors import Unavailable
from reference.store.base import Clock, wall_clock_ms
from reference.store.redis import POOL_CONNECTIONS, POOL_WAIT_S, RedisStore

T = TypeVar("T")

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379
# Per node: the store's commands (at most POOL_CONNECTIONS in flight), the bus's as many
# (``reference.bus.redis_cluster``), and room for topology reads.
CLUSTER_CONNECTIONS = 3 * POOL_CONNECTIONS


def cluster_client(url: str) -> RedisCluster:
    """A ``RedisCluster`` from ``redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]``
    (or ``rediss+cluster://`` for TLS); connects lazily. Raise ``ValueError`` for a bad URL."""
    scheme, rest = url.split("://", 1)
    plain = SCHEMES.get(scheme.lower())
    if plain is None:
        raise ValueError(f"not a Redis Cluster URL scheme: {scheme!r}")
    parts = urlsplit(f"{plain}://{rest}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = [_seed(host) for host in hosts.split(",")]
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0")
    first = f"{seeds[0][0]}:{seeds[0][1]}"
    # As ``RedisStore.from_url``: these timeouts, unless the URL's query string says otherwise.
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 5.0,
        "socket_connect_timeout": 5.0,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": CLUSTER_CONNECTIONS,
    }
    options.update(
        parse_url(parts._replace(netloc=f"{userinfo}@{first}" if userinfo else first).geturl())
    )
    for name in ("host", "port", "db"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options)


def _seed(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError("a Redis Cluster URL needs HOST:PORT seeds, separated by commas")
    try:
        return host.strip("[]"), int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"not a port number in a Redis Cluster seed: {port!r}") from None


class RedisClusterStore(RedisStore):
    """The replay store on a Redis Cluster; never ``durable`` (see the module docstring)."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        clock: Clock = wall_clock_ms,
        idempotency_window_s: int = 3600,
    ) -> None:
        super().__init__(client, clock=clock, idempotency_window_s=idempotency_window_s)
        self._cluster = client
        self._in_flight = asyncio.Semaphore(POOL_CONNECTIONS)

    @classmethod
    def from_cluster_url(
        cls, url: str, *, clock: Clock = wall_clock_ms, idempotency_window_s: int = 3600
    ) -> RedisClusterStore:
        """A store on the cluster ``url`` names (``cluster_client``); connects lazily."""
        return cls(cluster_client(url), clock=clock, idempotency_window_s=idempotency_window_s)

    @property
    def cluster(self) -> RedisCluster:
        """The cluster client, for the bus over it (``reference.bus.redis_cluster``)."""
        return self._cluster

    async def open(self) -> None:
        await self._guard(self._cluster.initialize, idempotent=True)  # discovers every node
        self.durable = False

    async def _guard(self, call: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        try:
            async with asyncio.timeout(POOL_WAIT_S):
                await self._in_flight.acquire()
        except TimeoutError:
            raise Unavailable("the Redis Cluster store is busy; retry later") from None
        try:
            return await super()._guard(call, idempotent=idempotent)
        except rx.RedisClusterException as exc:  # no node reachable, a slot not covered yet
            why = f"the Redis Cluster cannot serve ({type(exc).__name__}); retry later"
            raise Unavailable(why) from exc
        finally:
            self._in_flight.release()
