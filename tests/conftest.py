"""Shared fixtures. Store fixtures: every store kind behind one factory, and a fake clock.

``store`` / ``make_store`` run a test on each kind: ``memory``, ``mongomock`` (MongoStore on
mongomock-motor, with a task switch before every database call so that concurrent appends
really interleave), ``mongodb`` (MongoStore on a real MongoDB in a testcontainers
container, started once per session; skipped when no Docker engine answers) and ``redis``
(RedisStore on a real ``redis-server`` started once per session, see ``redis_server.py``; its
database is flushed before and after each test) and ``redis-cluster`` (RedisClusterStore on a
real three-master Redis Cluster started once per session, see ``redis_cluster.py``; flushed
likewise).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis_cluster import RedisCluster, running_cluster
from redis_server import RedisServer, running_redis

from reference.store import MemoryStore, Store
from reference.store.base import wall_clock_ms
from reference.store.mongo import MongoStore

STORE_KINDS = ("memory", "mongomock", "mongodb", "redis", "redis-cluster")
MONGO_KINDS = ("mongomock", "mongodb")
NO_DOCKER = "no Docker engine running: real-MongoDB store tests need Docker (testcontainers)"
MONGO_IMAGE = "mongo:7.0"


class FakeClock:
    """A store clock (ms since the Unix epoch) that only moves when a test advances it.

    It starts at the wall time so that real MongoDB's TTL monitor, which compares
    ``expires_at`` with its own clock, never removes a key a test still expects.
    """

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float = 0, *, ms: int = 0) -> None:
        self.now_ms += round(seconds * 1000) + ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_clock_ms())


# --- mongomock with task switches ---------------------------------------------------------


class _YieldingCursor:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def sort(self, *args: Any) -> _YieldingCursor:
        self._inner = self._inner.sort(*args)
        return self

    def limit(self, *args: Any) -> _YieldingCursor:
        self._inner = self._inner.limit(*args)
        return self

    async def to_list(self, *args: Any) -> list[Any]:
        await asyncio.sleep(0)
        return list(await self._inner.to_list(*args))


class _YieldingCollection:
    """mongomock-motor never suspends, so every call would be atomic; real drivers are not."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def find(self, *args: Any) -> _YieldingCursor:
        return _YieldingCursor(self._inner.find(*args))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await attr(*args, **kwargs)

        return call


class YieldingDatabase:
    """A mongomock-motor database whose collections switch tasks before every call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name

    def __getitem__(self, name: str) -> _YieldingCollection:
        return _YieldingCollection(self.inner[name])

    def __getattr__(self, name: str) -> Any:  # ``command`` and the like, unchanged
        return getattr(self.inner, name)


# --- real MongoDB --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_running() -> bool:
    """Whether a Docker engine answers; asked once per session."""
    with warnings.catch_warnings():
        # The docker SDK leaks the socket of a refused connection: collect it here, quietly,
        # rather than let it surface later as an unraisable ResourceWarning.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env()
            try:
                answered = bool(client.ping())
            finally:
                client.close()
        except Exception:
            answered = False
        gc.collect()
    return answered


@pytest.fixture(scope="session")
def mongodb_url(docker_running: bool) -> Iterator[str]:
    """The URL of a MongoDB container shared by the session; skips without Docker."""
    if not docker_running:
        pytest.skip(NO_DOCKER)
    try:
        from testcontainers.community.mongodb import MongoDbContainer
    except ImportError:  # testcontainers before the community split
        from testcontainers.mongodb import MongoDbContainer
    with MongoDbContainer(MONGO_IMAGE) as container:
        yield container.get_connection_url()


# --- real Redis ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` without persistence, shared by the session (db 0 for stores)."""
    with running_redis(tmp_path_factory.mktemp("redis"), aof=False) as server:
        yield server


@contextlib.asynccontextmanager
async def _redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The URL of the session's Redis database, empty now and flushed again afterwards."""
    from redis.asyncio import Redis

    server: RedisServer = request.getfixturevalue("redis_server")
    admin = Redis.from_url(server.url())
    try:
        await admin.flushdb()
        yield server.url()
        await admin.flushdb()
    finally:
        await admin.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster without persistence, shared by the session."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@contextlib.contextmanager
def _redis_cluster_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of the session's Redis Cluster, empty now and flushed again afterwards."""
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    yield cluster.url()
    cluster.flush()


# --- stores ---------------------------------------------------------------------------------

StoreFactory = Callable[..., Awaitable[Store]]
"""``await make_store(**kwargs)``: another opened store on the same backing data."""


@contextlib.asynccontextmanager
async def _mongo_database(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh, empty database of this kind, dropped afterwards."""
    name = f"replay_test_{uuid.uuid4().hex[:12]}"
    if kind == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield YieldingDatabase(AsyncMongoMockClient()[name])
        return
    from pymongo import AsyncMongoClient

    url: str = request.getfixturevalue("mongodb_url")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        yield client[name]
        await client.drop_database(name)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _factory(
    kind: str, request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[tuple[StoreFactory, Any]]:
    opened: list[Store] = []
    async with contextlib.AsyncExitStack() as stack:
        db: Any = None
        if kind in MONGO_KINDS:
            db = await stack.enter_async_context(_mongo_database(kind, request))
        elif kind == "redis":
            db = await stack.enter_async_context(_redis_url(request))
        elif kind == "redis-cluster":
            db = stack.enter_context(_redis_cluster_url(request))

        async def make_store(**kwargs: Any) -> Store:
            kwargs.setdefault("clock", clock)
            store: Store
            if kind == "redis":
                from reference.store.redis import RedisStore

                store = RedisStore.from_url(db, **kwargs)
            elif kind == "redis-cluster":
                from reference.store.redis_cluster import RedisClusterStore

                store = RedisClusterStore.from_cluster_url(db, **kwargs)
            else:
                store = MemoryStore(**kwargs) if db is None else MongoStore(db, **kwargs)
            await store.open()
            opened.append(store)
            return store

        try:
            yield make_store, db
        finally:
            for store in opened:
                await store.close()


@pytest.fixture(params=STORE_KINDS)
async def make_store(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[StoreFactory]:
    """A factory of opened stores of one kind sharing one backing database (if any)."""
    async with _factory(request.param, request, clock) as (factory, _):
        yield factory


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    """An opened store of each kind, on the fake ``clock``."""
    return await make_store()


@pytest.fixture(params=MONGO_KINDS)
async def mongo(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[tuple[StoreFactory, Any]]:
    """``(make_store, db)`` for the MongoDB kinds: the raw database lets a test look inside
    (for mongomock, ``db.inner`` skips the task switches)."""
    async with _factory(request.param, request, clock) as pair:
        yield pair
