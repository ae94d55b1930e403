"""The bus of nodes sharing a ``MongoStore``: a ``bus`` collection every node appends to.

Theory of operation
-------------------
Publishing takes the next number of a counter (``bus_seq``, one ``$inc``) and inserts the
node's events under that number as ``_id`` into ``bus``. The counter is one document for the
whole cluster, so a node does not take a number per event: events published while the node's
previous insert is under way wait for it and then go together, in one document under one
number (a group commit). The cost is one round trip of latency at most, and under load the
counter moves once per batch per node rather than once per publish. Every node reads ``bus``
from its *watermark*, the highest number below which it has seen every batch, so events are
read in order whatever the nodes' clocks. This needs nothing but plain CRUD, so it runs on a
standalone mongod and on mongomock. On a replica set a change stream on ``bus`` also wakes
the reader at each insert, making delivery immediate; without one the reader polls every
``poll_interval_s`` (the 1 s of CLU-2 and CLU-4 leave ample room), and with one it still
polls, less often, as a safety net.

Numbers are taken before the insert, so a reader can see ``n + 1`` before ``n``: it then waits
for ``n`` up to ``gap_wait_s``. A number still missing after that belongs to a publisher that
failed between its two steps (its outbox resends the events under a new number) or to a batch
already pruned; the reader moves past it and catches up (``RemoteBus._missed``), as it does
after a failed poll, since events may have expired meanwhile. Events older than ``keep_s`` are
removed by a TTL index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from reference.bus.remote import RemoteBus
from reference.store.mongo_collection import AFTER, Database

log = logging.getLogger(__name__)

_SEQ_ID = "bus"


def _connection_failure(exc: BaseException) -> bool:
    try:
        from pymongo.errors import ConnectionFailure
    except ImportError:  # pragma: no cover - a real deployment always has PyMongo
        return False
    return isinstance(exc, ConnectionFailure)


class MongoBus(RemoteBus):
    """Events through the ``bus`` collection of the store's database."""

    poll_interval_s: float = 0.1
    #: Polling interval while a change stream wakes the reader.
    streaming_poll_s: float = 1.0
    gap_wait_s: float = 2.0
    keep_s: int = 300
    batch: int = 500

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._events = db["bus"]
        self._seq = db["bus_seq"]
        self._queue: list[tuple[dict[str, str], asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._streaming = False
        self._watermark = 0
        self._seen: set[int] = set()  # numbers above the watermark already handled
        self._gap_since: float | None = None

    async def start(self) -> None:
        await self._events.create_index([("at", 1)], name="ttl", expireAfterSeconds=self.keep_s)
        counter = await self._seq.find_one({"_id": _SEQ_ID})
        self._watermark = int(counter["seq"]) if counter else 0  # older events are not ours
        self._spawn(self._poll_forever(), "mongo-bus-poll")
        self._spawn(self._watch_forever(), "mongo-bus-watch")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await super().stop()

    async def _send(self, wire: dict[str, str]) -> None:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((wire, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_queued())
        await sent  # raises what the batch's insert raised

    async def _send_queued(self) -> None:
        """Send what is queued, a batch at a time, until nothing is."""
        while self._queue:
            batch, self._queue = self._queue[: self.batch], self._queue[self.batch :]
            try:
                await self._insert([wire for wire, _ in batch])
            except Exception as exc:
                outcome: BaseException | None = exc
            else:
                outcome = None
            for _, sent in batch:
                if sent.done():  # its publisher was cancelled
                    continue
                if outcome is None:
                    sent.set_result(None)
                else:
                    sent.set_exception(outcome)

    async def _insert(self, wires: list[dict[str, str]]) -> None:
        counter = await self._seq.find_one_and_update(
            {"_id": _SEQ_ID}, {"$inc": {"seq": 1}}, upsert=True, return_document=AFTER
        )
        assert counter is not None
        batch = {"_id": int(counter["seq"]), "events": wires, "at": datetime.now(UTC)}
        await self._events.insert_one(batch)

    # --- reading ----------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        failing = False
        while True:
            interval = self.streaming_poll_s if self._streaming else self.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("bus: reading MongoDB failed (%s); retrying", exc)
                failing = True
                await asyncio.sleep(min(1.0, self.retry_max_s))
                continue
            if failing:  # events may have been pruned while we could not read
                failing = False
                await self._missed()

    async def poll(self) -> None:
        """Read and handle the events above the watermark once."""
        query = {"_id": {"$gt": self._watermark}}
        docs = await self._events.find(query).sort("_id", 1).limit(self.batch).to_list(self.batch)
        for doc in docs:
            number = int(doc["_id"])
            if number in self._seen or number <= self._watermark:
                continue
            self._seen.add(number)
            for wire in doc.get("events") or ():
                await self._received(wire)
        self._advance()
        if not self._seen:
            self._gap_since = None
            return
        now = asyncio.get_running_loop().time()
        if self._gap_since is None:
            self._gap_since = now
        elif now - self._gap_since > self.gap_wait_s:
            log.warning("bus: event %d never arrived; catching up", self._watermark + 1)
            self._watermark = min(self._seen) - 1
            self._advance()
            self._gap_since = None
            await self._missed()

    def _advance(self) -> None:
        while self._watermark + 1 in self._seen:
            self._watermark += 1
            self._seen.discard(self._watermark)

    async def _watch_forever(self) -> None:
        """Wake the reader on every insert, where change streams exist (replica sets)."""
        worked = False
        while True:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                worked = worked or self._streaming
                if not worked and not _connection_failure(exc):
                    log.info("bus: no change streams here (%s); polling", type(exc).__name__)
                    return
                log.warning("bus: change stream lost (%s); reopening", exc)
            finally:
                self._streaming = False
            await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        watch: Any = self._events.watch  # type: ignore[attr-defined]
        pipeline = [{"$match": {"operationType": "insert"}}]
        async with await watch(pipeline) as stream:
            self._streaming = True
            self._wake.set()  # read what was inserted before the stream opened
            async for _ in stream:
                self._wake.set()
