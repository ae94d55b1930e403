"""What the MongoDB deployment behind the store can promise, decided once when the store opens.

Theory of operation
-------------------
``durable`` (INF-4, DUR-2) is true only when an acknowledged write survives a restart of any
process: the storage engine keeps data on disk (``serverStatus``'s ``storageEngine.persistent``;
the in-memory engine does not, and acknowledges ``j: true`` writes all the same), and writes can
wait for the journal. Both are asked of the server, not assumed: ``hello`` says what the
deployment is, ``serverStatus`` what it stores on, and one journaled write proves that
journaling is on. Where the answer is unknown, ``durable`` is false: a user not allowed to run
``serverStatus``, and a sharded cluster, whose ``mongos`` stores nothing and so names no engine
(its writes and reads are still those of a replica set).

Whatever the deployment's default write concern (a primary-secondary-arbiter set defaults to
``w: 1``), the store then writes with its own: ``w: "majority"`` with ``j: true``, so an
acknowledged write is in the journal of a majority of the data-bearing members (on a
standalone, its own), and a failover cannot roll it back. It reads with ``readConcern:
majority`` on a replica set or sharded cluster, so a read never returns what a failover may
still roll back, and it reads from the primary whatever the connection string asks, so a
read after a write sees it (PUB-10). On a standalone nothing rolls back, and ``local`` reads
what every write acknowledged; it may also read a write whose journal flush is still under way
(``majority`` means the same there), which only a crash in that instant loses, before its
publisher was told it succeeded.

A persistent deployment that cannot journal (``--nojournal``, before MongoDB 6.1) is refused:
after a crash it would come back with the channels' epochs but without the writes since its
last checkpoint, which is the one thing no durability setting allows (DUR-3). A non-persistent
one is accepted with ``durable: false``: a restart loses everything, epochs included, so every
channel gets a new epoch (EPO-3).

mongomock-motor implements no server command: ``hello`` raising ``NotImplementedError`` is how
the store knows it runs on the test double, which keeps nothing past its process (``durable:
false``) and takes no write or read concern.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pymongo import ReadPreference, WriteConcern
from pymongo.errors import OperationFailure
from pymongo.read_concern import ReadConcern

from reference.store.mongo_collection import Database
from reference.store.mongo_errors import sorted_errors

log = logging.getLogger(__name__)

#: What ``open_store`` passes to ``AsyncMongoClient`` over the URL's own options: reads from
#: the primary, and a server selection and a connection that give up within seconds.
CLIENT_OPTIONS: Mapping[str, Any] = {
    "readPreference": "primary",
    "serverSelectionTimeoutMS": 5_000,
    "connectTimeoutMS": 5_000,
}

STANDALONE, REPLICA_SET, SHARDED, TEST_DOUBLE = (
    "standalone",
    "replica set",
    "sharded cluster",
    "test double",
)
_NO_JOURNAL_CODE = 2  # BadValue: "cannot use 'j' option when a host does not have journaling"


class Unjournaled(RuntimeError):
    """The deployment keeps data on disk but cannot journal writes: refused (DUR-3)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """What ``hello`` and ``serverStatus`` said, and what follows from it."""

    kind: str
    persistent: bool | None  # None: the server would not say
    journaled: bool

    @property
    def durable(self) -> bool:
        return self.kind != TEST_DOUBLE and self.persistent is True and self.journaled

    def write_concern(self) -> WriteConcern:
        journal = self.journaled and self.persistent is not False
        return WriteConcern(w="majority", j=True if journal else None)

    def read_concern(self) -> ReadConcern:
        return ReadConcern("local" if self.kind == STANDALONE else "majority")


def kind_of(hello: Mapping[str, Any]) -> str:
    """The deployment a ``hello`` reply describes."""
    if hello.get("msg") == "isdbgrid":
        return SHARDED
    return REPLICA_SET if "setName" in hello else STANDALONE


def persistent_of(status: Mapping[str, Any] | None) -> bool | None:
    """Whether ``serverStatus`` says the storage engine keeps data across a restart."""
    engine = (status or {}).get("storageEngine")
    flag = engine.get("persistent") if isinstance(engine, Mapping) else None
    return flag if isinstance(flag, bool) else None


async def inspect(db: Database) -> Deployment:
    """Ask the deployment behind ``db`` what it is (see the module docstring). An unreachable
    deployment answers ``Unavailable`` within seconds."""
    try:
        with sorted_errors():
            hello = await db.command("hello")
    except NotImplementedError:  # mongomock-motor: no server behind it
        return Deployment(TEST_DOUBLE, persistent=False, journaled=False)
    kind = kind_of(hello)
    status: Mapping[str, Any] | None = None
    try:
        with sorted_errors(keep=(OperationFailure,)):
            status = await db.command("serverStatus")
    except OperationFailure as exc:  # e.g. not authorised: durability cannot be shown
        log.warning("MongoDB store: serverStatus refused (%s); durable: false", exc)
    persistent = persistent_of(status)
    journaled = await _journals(db) if persistent is not False else False
    if persistent and not journaled:
        raise Unjournaled(
            "this MongoDB keeps data on disk but does not journal writes: after a crash it "
            "would keep the channels' epochs and lose acknowledged messages (DUR-3); "
            "run it with journaling (the default, and the only way since MongoDB 6.1)"
        )
    return Deployment(kind, persistent, journaled)


async def _journals(db: Database) -> bool:
    """One journaled write: whether the server accepts ``j: true`` at all."""
    journaled: Database = cast(Any, db).with_options(write_concern=WriteConcern(w=1, j=True))
    try:
        with sorted_errors(keep=(OperationFailure,)):
            await journaled["replay_meta"].update_one(
                {"_id": "journal"}, {"$currentDate": {"checked_at": True}}, upsert=True
            )
    except OperationFailure as exc:
        if exc.code == _NO_JOURNAL_CODE and "journal" in str(exc):
            return False
        raise
    return True


def configured(db: Database, deployment: Deployment) -> Database:
    """``db`` with the store's write concern, read concern and read preference."""
    if deployment.kind == TEST_DOUBLE:
        return db  # mongomock-motor takes no concerns
    with_options: Database = cast(Any, db).with_options(
        write_concern=deployment.write_concern(),
        read_concern=deployment.read_concern(),
        read_preference=ReadPreference.PRIMARY,
    )
    return with_options
