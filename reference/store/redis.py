"""A shared store on Redis (redis-py's asyncio client), for clusters (CLU-1).

Theory of operation
-------------------
Each channel is a Redis Stream of its messages, with the explicit entry id ``<offset>-0``, and
a meta hash (epoch, head, retention). Each append, read and retention update is one Lua script
(``reference.store.redis_lua``), so Redis itself serialises them: an append checks and records
the idempotency key, adds the entry at ``head + 1``, moves the head and trims, all in one step
(OFF-2, PUB-4, IDM-2). Offsets are therefore dense across any number of nodes, and a read sees
one state of the channel together with its messages (HIS-5). The scripts also own the epoch:
a channel gets the caller's random epoch on first touch, and a new one whenever its history
may have been lost (EPO-3; see the scripts' docstring for how loss is detected).

Keys: ``replay:{<channel>}:meta``, ``…:stream`` and ``…:idem:<id>`` for a channel;
``replay:session:{<id>}`` and ``…:cursors`` for a session; ``replay:token:<hash>`` maps a token
hash to its session. The hash tags keep every script on one Redis Cluster slot. Idempotency
keys hold ``<offset>:<expires>:<epoch>``: the expiry on the store clock decides (IDM-6), the
Redis TTL only collects them. Session keys expire ``session_grace_ms`` after the session does,
so an expired session is still seen as expired for a while (and treated as absent, SES-1), and
then vanishes.

Durability (``durable``, INF-4, DUR-2): true only when Redis writes an append-only file and
cannot evict keys that have no TTL; it is decided once, in ``open()``. With ``appendfsync
always`` an acknowledged publish survives even a power loss; with ``everysec`` (the default) it
survives a SIGKILL of Redis or of a node, and a machine crash loses up to a second. When not
durable, channels are tied to the Redis process that created them, so that a restart gives
every channel a new epoch even if Redis reloads an old snapshot (DUR-3).

Failures: a connection error or timeout, and Redis answering that it is loading, read-only,
out of memory or busy, become ``Unavailable`` (``unavailable``, retried by delivery loops).
Nothing is resent blindly: a call that is safe to repeat (a read, a cursor advance, a
retention update) is tried twice, since a pooled connection may have died with a restarted
Redis; an append, a registration or a deletion is tried once, since its reply may have been
lost after Redis applied it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from reference.core.errors import Unavailable
from reference.core.model import (
    AppendResult,
    ChannelState,
    Cursor,
    Message,
    Payload,
    ReadResult,
    Retention,
    Session,
)
from reference.store import redis_lua
from reference.store.base import Clock, Store, message_ids, wall_clock_ms
from reference.store.records import session_from_record, session_record

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster
    from redis.commands.core import AsyncScript

    from reference.core.batch_publish import BatchEntry
    from reference.core.payloads import RetentionUpdate

T = TypeVar("T")

KEY_PREFIX = "replay"
POOL_CONNECTIONS = 64  # per node; each in-flight command holds one
POOL_WAIT_S = 5.0  # then a request fails `unavailable`
_TRANSIENT = (rx.ConnectionError, rx.TimeoutError)  # BusyLoadingError (LOADING) included
_TRANSIENT_REPLIES = (rx.OutOfMemoryError, rx.ReadOnlyError, rx.ClusterDownError, rx.TryAgainError)


def channel_keys(channel: str) -> tuple[str, str]:
    """The meta hash and the stream of a channel."""
    base = f"{KEY_PREFIX}:{{{channel}}}"
    return f"{base}:meta", f"{base}:stream"


def idempotency_key(channel: str, message_id: str) -> str:
    return f"{KEY_PREFIX}:{{{channel}}}:idem:{message_id}"


def session_keys(session_id: str) -> tuple[str, str]:
    """The session hash and its cursors hash."""
    base = f"{KEY_PREFIX}:session:{{{session_id}}}"
    return base, f"{base}:cursors"


def token_key(token_hash: str) -> str:
    return f"{KEY_PREFIX}:token:{token_hash}"


def _dropped(exc: Exception) -> bool:
    """A lost connection, which a second try on a new one may not meet; not a timeout, a
    loading Redis or refused credentials, which a second try would only wait out again."""
    slow = (rx.TimeoutError, rx.BusyLoadingError, rx.AuthenticationError, rx.AuthorizationError)
    lost = isinstance(exc, rx.ConnectionError) and not isinstance(exc, slow)
    return lost or connection_reset(exc)


def connection_reset(exc: Exception) -> bool:
    """uvloop's error for a write to a connection the peer already reset (asyncio's own loop
    only logs one); redis-py closes that connection and passes the error through unchanged."""
    return isinstance(exc, RuntimeError) and "handler is closed" in str(exc)


def _transient_reply(exc: rx.ResponseError) -> bool:
    return isinstance(exc, _TRANSIENT_REPLIES) or str(exc).startswith(("BUSY", "MASTERDOWN"))


def _message(offset: int, text: str) -> Message:
    message_id, ts, size, data = json.loads(text)  # [id, ts, size, data] (see READ)
    return Message(offset, message_id, ts, data, size)


# The members of a session record that its Redis hash holds as JSON text; the rest are text.
_JSON_MEMBERS = frozenset({"grants", "subscribe", "expires_at"})


def _session_hash(session: Session) -> list[str]:
    """The session's record as the field/value pairs of its hash (see ``UPSERT_SESSION``)."""
    return [
        text
        for name, value in session_record(session).items()
        for text in (name, json.dumps(value) if name in _JSON_MEMBERS else value)
    ]


def _session(session_id: str, fields: Mapping[str, str]) -> Session:
    record = {k: json.loads(v) if k in _JSON_MEMBERS else v for k, v in fields.items()}
    return session_from_record(session_id, record)


class RedisStore(Store):
    """The replay store on one Redis database (a ``redis.asyncio.Redis`` with
    ``decode_responses=True``), or on a Redis Cluster (``reference.store.redis_cluster``)."""

    durable = False  # decided by ``open()``
    shared = True

    #: How long Redis keeps a session's keys after the session expires.
    session_grace_ms: int = 3_600_000

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        clock: Clock = wall_clock_ms,
        idempotency_window_s: int = 3600,
    ) -> None:
        super().__init__(clock=clock, idempotency_window_s=idempotency_window_s)
        self._redis = client
        self._lua_append = client.register_script(redis_lua.APPEND)
        self._lua_append_batch = client.register_script(redis_lua.APPEND_BATCH)
        self._lua_read = client.register_script(redis_lua.READ)
        self._lua_retention = client.register_script(redis_lua.RETENTION)
        self._lua_upsert_session = client.register_script(redis_lua.UPSERT_SESSION)
        self._lua_delete_session = client.register_script(redis_lua.DELETE_SESSION)
        self._lua_advance_cursor = client.register_script(redis_lua.ADVANCE_CURSOR)
        self._message_ids = message_ids()

    @classmethod
    def from_url(
        cls, url: str, *, clock: Clock = wall_clock_ms, idempotency_window_s: int = 3600
    ) -> RedisStore:
        """A store on ``redis://`` or ``rediss://`` ``HOST[:PORT][/DB]``; connects lazily.

        Timeouts bound how long a request can hang on an unresponsive Redis; the URL's query
        string may override them. redis-py's own retries are off (see the module docstring).
        """
        # A blocking pool: a burst of concurrent requests waits for a connection instead of
        # failing with MaxConnectionsError (which would surface as a spurious `unavailable`).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT_S,
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis.from_pool(pool)  # the client owns the pool: closing it closes both
        return cls(client, clock=clock, idempotency_window_s=idempotency_window_s)

    @property
    def client(self) -> Redis | RedisCluster:
        """The Redis client, for a bus over the same server (``reference.bus.redis``)."""
        return self._redis

    async def open(self) -> None:
        await self._guard(self._redis.ping, idempotent=True)
        self.durable = await self._guard(self._persistent, idempotent=True)

    async def _persistent(self) -> bool:
        """AOF on, and no eviction of keys without a TTL (which could drop a stream)."""
        try:
            config = await self._redis.config_get("appendonly")
            aof = config.get("appendonly") == "yes"
        except rx.ResponseError:  # CONFIG disabled or not permitted: ask INFO instead
            aof = (await self._redis.info("persistence")).get("aof_enabled") == 1
        memory = await self._redis.info("memory")
        evicts = int(memory.get("maxmemory", 0)) > 0 and str(
            memory.get("maxmemory_policy", "")
        ).startswith("allkeys")
        return aof and not evicts

    async def close(self) -> None:
        await self._redis.aclose()

    async def _guard(self, call: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run one Redis call, mapping an unreachable or refusing Redis to ``Unavailable``."""
        for attempt in range(2 if idempotent else 1):
            try:
                return await call()
            except (*_TRANSIENT, RuntimeError) as exc:
                if isinstance(exc, RuntimeError) and not connection_reset(exc):
                    raise
                if idempotent and attempt == 0 and _dropped(exc):
                    continue  # e.g. a pooled connection that died with a restarted Redis
                why = f"the Redis store cannot be reached ({type(exc).__name__}); retry later"
                raise Unavailable(why) from exc
            except rx.ResponseError as exc:
                if _transient_reply(exc):
                    raise Unavailable("the Redis store refuses writes; retry later") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _script(
        self, script: AsyncScript, keys: list[str], args: list[Any], *, idempotent: bool
    ) -> Any:
        return await self._guard(lambda: script(keys=keys, args=args), idempotent=idempotent)

    def _channel_args(self) -> list[Any]:
        # ARGV[1..3] of every channel script (see ``redis_lua``)
        return [secrets.token_hex(8), "0" if self.durable else "1", self.clock()]

    # --- channels ---------------------------------------------------------------------------

    async def state(self, channel: str) -> ChannelState:
        return (await self.read(channel, 1, 0)).state

    async def append(self, channel: str, payload: Payload, message_id: str | None) -> AppendResult:
        keys = list(channel_keys(channel))
        if message_id is None:
            message_id = next(self._message_ids)
        else:
            keys.append(idempotency_key(channel, message_id))
        window_ms = self.idempotency_window_s * 1000
        args = [*self._channel_args(), message_id, payload.encoded, payload.size, window_ms]
        epoch, offset, duplicate = await self._script(
            self._lua_append, keys, args, idempotent=False
        )
        return AppendResult(channel, int(offset), epoch, message_id, duplicate=bool(duplicate))

    async def append_batch(
        self, channel: str, entries: Sequence[BatchEntry]
    ) -> tuple[AppendResult, ...]:
        keys = list(channel_keys(channel))
        args: list[Any] = [*self._channel_args(), self.idempotency_window_s * 1000]
        ids = []
        for entry in entries:
            key_index = 0
            message_id = entry.id
            if message_id is None:
                message_id = next(self._message_ids)
            else:
                keys.append(idempotency_key(channel, message_id))
                key_index = len(keys)  # Lua's KEYS is 1-based
            ids.append(message_id)
            args += [message_id, entry.payload.encoded, entry.payload.size, key_index]
        epoch, *flat = await self._script(self._lua_append_batch, keys, args, idempotent=False)
        return tuple(
            AppendResult(channel, int(offset), epoch, message_id, duplicate=bool(duplicate))
            for message_id, offset, duplicate in zip(ids, flat[::2], flat[1::2], strict=True)
        )

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        args = [*self._channel_args(), start, limit]
        keys = list(channel_keys(channel))
        epoch, low, head, texts = await self._script(self._lua_read, keys, args, idempotent=True)
        state = ChannelState(epoch, low if low <= head else None, head)
        return ReadResult(state, tuple(_message(start + i, t) for i, t in enumerate(texts)))

    async def set_retention(self, channel: str, update: RetentionUpdate) -> Retention:
        def flag(sets: bool, value: int | None) -> list[str]:
            return ["1" if sets else "0", "" if value is None or not sets else str(value)]

        args = [
            *self._channel_args(),
            *flag(update.sets_max_messages(), update.max_messages),
            *flag(update.sets_max_age(), update.max_age_s),
        ]
        keys = list(channel_keys(channel))
        max_messages, max_age_s = await self._script(
            self._lua_retention, keys, args, idempotent=True
        )
        return Retention(max_messages=max_messages, max_age_s=max_age_s)

    # --- sessions and cursors ---------------------------------------------------------------

    async def upsert_session(self, session: Session) -> bool:
        keep_until = session.expires_at + self.session_grace_ms
        index = token_key(session.token_hash)
        # The index first: a crash before the script leaves an entry that readers reject.
        await self._guard(
            lambda: self._redis.set(index, session.session_id, pxat=keep_until), idempotent=True
        )
        keys = list(session_keys(session.session_id))
        args = [self.clock(), keep_until, session.incarnation, *_session_hash(session)]
        created, old_hash = await self._script(
            self._lua_upsert_session, keys, args, idempotent=False
        )
        if old_hash is not None and old_hash != session.token_hash:  # SES-4
            await self._guard(lambda: self._redis.delete(token_key(old_hash)), idempotent=True)
        return bool(created)

    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        session_id = await self._guard(
            lambda: self._redis.get(token_key(token_hash)), idempotent=True
        )
        if session_id is None:
            return None
        session = await self.session(str(session_id))
        # The index may lag a re-registration that raced: the session's own hash decides (SES-4).
        return session if session is not None and session.token_hash == token_hash else None

    async def session(self, session_id: str) -> Session | None:
        key = session_keys(session_id)[0]
        fields = await self._guard(lambda: self._redis.hgetall(key), idempotent=True)
        return _session(session_id, {str(k): str(v) for k, v in fields.items()}) if fields else None

    async def delete_session(self, session_id: str) -> bool:
        keys = list(session_keys(session_id))
        expires_at, old_hash = await self._script(
            self._lua_delete_session, keys, [], idempotent=False
        )
        if old_hash is not None:  # SES-23: the token stops working
            await self._guard(lambda: self._redis.delete(token_key(old_hash)), idempotent=True)
        return expires_at is not None and self.clock() < int(expires_at)  # SES-13

    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        key = session_keys(session_id)[1]
        value = await self._guard(lambda: self._redis.hget(key, channel), idempotent=True)
        if value is None:
            return None
        offset, _, epoch = str(value).partition(":")
        return Cursor(epoch, int(offset))

    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        keys = list(session_keys(session_id))
        fallback = self.clock() + self.session_grace_ms  # cursors of an unknown session
        args = [channel, epoch, offset, self.session_grace_ms, fallback]
        new_epoch, new_offset = await self._script(
            self._lua_advance_cursor, keys, args, idempotent=True
        )
        return Cursor(new_epoch, int(new_offset))
