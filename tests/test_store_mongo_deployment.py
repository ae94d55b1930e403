"""What the MongoDB store decides from its deployment in ``open()``: ``durable``, the write
concern, the read concern and the read preference (``reference.store.mongo_deployment``).

mongomock answers no server command, so a ``Deployed`` database stands in front of it and
answers ``hello`` and ``serverStatus`` as each kind of deployment does, and records the options
the store then asks for. The real thing is in ``test_store_mongo_real.py`` (Docker).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import ReadPreference
from pymongo.errors import AutoReconnect, OperationFailure

from reference.core.errors import Unavailable
from reference.store.mongo import MongoStore
from reference.store.mongo_deployment import (
    REPLICA_SET,
    SHARDED,
    STANDALONE,
    Unjournaled,
    kind_of,
    persistent_of,
)

PRIMARY: dict[str, Any] = {"isWritablePrimary": True, "maxWireVersion": 21}
REPLICA = {**PRIMARY, "setName": "rs0", "hosts": ["a:27017", "b:27017", "c:27017"]}
PSA = {**PRIMARY, "setName": "rs0", "hosts": ["a:27017", "b:27017"], "arbiters": ["c:27017"]}
MONGOS = {**PRIMARY, "msg": "isdbgrid"}
ON_DISK = {"storageEngine": {"name": "wiredTiger", "persistent": True}}
IN_MEMORY = {"storageEngine": {"name": "inMemory", "persistent": False}}


class _NoJournal:
    """A collection on a ``mongod --nojournal``: every ``j: true`` write is refused."""

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        message = "cannot use 'j' option when a host does not have journaling enabled"
        raise OperationFailure(message, 2)


class Deployed:
    """A mongomock database that answers server commands as ``hello`` and ``status`` say."""

    def __init__(
        self,
        hello: Mapping[str, Any] | BaseException,
        status: Mapping[str, Any] | BaseException,
        *,
        journal: bool = True,
    ) -> None:
        self.inner = AsyncMongoMockClient()["deployed"]
        self.name = self.inner.name
        self._answers: dict[str, Any] = {"hello": hello, "serverStatus": status}
        self._journal = journal
        self.options: list[dict[str, Any]] = []

    def __getitem__(self, name: str) -> Any:
        return self.inner[name]

    async def command(self, name: str) -> Any:
        answer = self._answers[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def with_options(self, **options: Any) -> Any:
        self.options.append(options)
        wc = options.get("write_concern")
        if wc is not None and wc.document.get("j") and not self._journal:
            return {"replay_meta": _NoJournal()}
        return self


async def opened(db: Deployed) -> MongoStore:
    store = MongoStore(db)
    await store.open()
    return store


def test_kind_of_hello() -> None:
    assert kind_of(PRIMARY) == STANDALONE
    assert kind_of(REPLICA) == kind_of(PSA) == REPLICA_SET
    assert kind_of(MONGOS) == SHARDED


def test_persistent_of_server_status() -> None:
    assert persistent_of(ON_DISK) is True
    assert persistent_of(IN_MEMORY) is False
    assert persistent_of({}) is None
    assert persistent_of(None) is None


@pytest.mark.parametrize(
    ("hello", "read_concern"),
    [(PRIMARY, "local"), (REPLICA, "majority"), (PSA, "majority")],
)
async def test_a_journaled_deployment_is_durable(hello: dict[str, Any], read_concern: str) -> None:
    db = Deployed(hello, ON_DISK)
    store = await opened(db)
    assert store.durable is True  # INF-4, DUR-2
    configured = db.options[-1]  # after the journal probe
    # Whatever the deployment's default (w: 1 on a PSA set): majority, journaled.
    assert configured["write_concern"].document == {"w": "majority", "j": True}
    # Nothing a failover may roll back is read; a standalone has nothing to roll back.
    assert configured["read_concern"].level == read_concern
    assert configured["read_preference"] == ReadPreference.PRIMARY  # PUB-10


async def test_an_in_memory_deployment_is_not_durable() -> None:
    db = Deployed(REPLICA, IN_MEMORY)
    store = await opened(db)
    assert store.durable is False  # it acknowledges j: true but keeps nothing on disk
    assert db.options[-1]["write_concern"].document == {"w": "majority"}


async def test_a_sharded_cluster_claims_nothing_it_cannot_see() -> None:
    db = Deployed(MONGOS, {"process": "mongos"})  # mongos has no storage engine to report
    store = await opened(db)
    assert store.durable is False
    assert db.options[-1]["read_concern"].level == "majority"
    assert db.options[-1]["write_concern"].document == {"w": "majority", "j": True}


async def test_a_deployment_that_will_not_say_is_not_durable() -> None:
    db = Deployed(PRIMARY, OperationFailure("not authorized on admin", 13))
    assert (await opened(db)).durable is False


async def test_an_unjournaled_deployment_on_disk_is_refused() -> None:
    with pytest.raises(Unjournaled, match="DUR-3"):
        await opened(Deployed(PRIMARY, ON_DISK, journal=False))


async def test_an_unreachable_deployment_answers_unavailable() -> None:
    with pytest.raises(Unavailable):
        await opened(Deployed(AutoReconnect("connection refused"), ON_DISK))
