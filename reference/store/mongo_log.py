"""A channel's history in the MongoDB store: who gets which offset, and where the message is.

Theory of operation
-------------------
A channel is one document in ``channels`` (``_id`` = the channel name): its ``epoch``, its
``head``, ``pending`` (the newest messages, see below), ``trimmed`` (every offset up to it is
removed by retention), ``fence`` (see ``reference.store.mongo_claims``) and ``retention``.
Messages are copied out into ``messages``, one document each, unique on ``(channel, epoch,
offset)``; ``data`` is kept as the compact JSON text of the payload, because BSON cannot hold
every JSON value exactly.

An append is one atomic update of the channel's document, the *commit*: ``$inc`` the head and
``$push`` the message onto ``pending``, returning the document after the update. Then, as
bookkeeping, the publisher copies its message out into ``messages``, and removes it from
``pending`` (or, if an older one is still there, marks it copied and drops its data). The
claim is that offsets are gap-free and never reused, whatever trims, crashes or delays do:

- Every commit increments ``head`` by one on a single document, atomically with writing the
  message, so each offset goes to exactly one commit, in order, and ``head`` never goes down.
  Nothing else chooses an offset: not a read of the head followed by an insert (which a trim
  could empty in between), not the ``messages`` collection. Reuse needs the document itself
  to be lost, and then the channel gets a new epoch (EPO-3), which every query filters on.
- ``pending`` always holds the messages at offsets ``head - len(pending) + 1`` to ``head``, in
  order: a commit appends one element as it adds one to the head; an element is marked in
  place; and elements leave only from the front, as a run already copied out (a ``$pull`` of
  tags seen at the front of ``pending`` removes a prefix even if others ran meanwhile: all
  removals are prefixes of one sequence). So every element's offset is known.
- Every offset from ``trimmed + 1`` to ``head`` has its message in ``pending`` or in
  ``messages`` from the moment its commit returns: an element is copied before it is marked
  or removed, and retention raises ``trimmed`` before it deletes. A publisher that dies after
  its commit leaves its message in ``pending``, from where readers serve it, and the next
  publisher to find it there for longer than ``leftover_ms`` copies it out. Nothing is a hole.
- A message's content is written once, in its element; the copy is that element, so a copy
  made twice (by the publisher and by whoever completes a leftover) collides on the unique
  index with an identical one.

A publish is acknowledged once its commit returned: copying out, tidying ``pending`` and
retention cannot turn that into a failure (they are logged and redone by whoever comes next).
Each append costs a bounded number of writes whatever the contention: the commit, the copy,
one update of ``pending`` (two when it must mark and remove), and retention's two.

Reads take one snapshot of the document, then the messages ``pending`` does not hold from
``messages``, and answer with the snapshot's state (HIS-5). The messages are immutable and were
all stored at the snapshot, unless a trim deleted some meanwhile; that leaves a hole in what
was read, and the read starts again. Retention (RET-*) is the floor ``trimmed`` plus the
settings: ``first`` is above ``head - max_messages`` and above every message past
``max_age_s`` below the lowest young one (always a prefix, RET-4). Whoever computes a higher
floor than ``trimmed`` (a publisher after its append, a reader of an idle channel whose
messages aged) writes it down and deletes below it, so the expired prefix is scanned once,
not on every read; a copy that arrives after a trim lies below the floor, is never read, and
goes with the next trim.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reference.core.errors import ReplayError, Unavailable
from reference.core.model import ChannelState, Message, ReadResult, Retention
from reference.store.base import Clock
from reference.store.mongo_collection import AFTER, Collection, Document, duplicate_key_errors

log = logging.getLogger(__name__)

NO_LIMITS: Mapping[str, None] = {"max_messages": None, "max_age_s": None}
_OFFSET_ONLY = {"offset": 1, "_id": 0}
_MESSAGE_FIELDS = ("id", "ts", "data", "size")

# What completes a keyed leftover's idempotency claim: (channel, id, owner, offset).
RecordClaim = Callable[[str, str, str, int], Awaitable[None]]


def retention_of(doc: Document) -> Retention:
    r = doc.get("retention") or NO_LIMITS
    return Retention(max_messages=r.get("max_messages"), max_age_s=r.get("max_age_s"))


def element(message_id: str, ts: int, data: str, size: int, owner: str | None) -> dict[str, Any]:
    """A message as a commit pushes it onto ``pending``: ``t`` tags it, ``k`` is the
    idempotency claim it was stored under, if any."""
    el: dict[str, Any] = {"t": secrets.token_hex(8), "id": message_id, "ts": ts}
    el |= {"data": data, "size": size}
    if owner is not None:
        el["k"] = owner
    return el


def _message(offset: int, doc: Document) -> Message:
    return Message(offset, doc["id"], doc["ts"], json.loads(doc["data"]), doc["size"])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of a channel's document, read atomically."""

    channel: str
    doc: Document

    @property
    def epoch(self) -> str:
        return str(self.doc["epoch"])

    @property
    def head(self) -> int:
        return int(self.doc.get("head", 0))

    @property
    def trimmed(self) -> int:
        return int(self.doc.get("trimmed", 0))

    @property
    def fence(self) -> int:
        return int(self.doc.get("fence", 0))

    @property
    def retention(self) -> Retention:
        return retention_of(self.doc)

    def pending(self) -> Iterator[tuple[int, Document]]:
        """``(offset, element)`` for each element of ``pending``, oldest first."""
        elements = self.doc.get("pending") or []
        base = self.head - len(elements) + 1
        return ((base + i, el) for i, el in enumerate(elements))

    def uncopied(self) -> dict[int, Document]:
        """The elements still holding their message, by offset."""
        return {offset: el for offset, el in self.pending() if not el.get("c")}


@dataclass(frozen=True, slots=True)
class Committed:
    """An append's commit: its messages are stored at ``offsets``, the last at ``offset``."""

    snapshot: Snapshot
    elements: tuple[Document, ...]

    @property
    def offset(self) -> int:
        return self.snapshot.head

    @property
    def offsets(self) -> range:
        return range(self.snapshot.head - len(self.elements) + 1, self.snapshot.head + 1)


class ChannelLog:
    """The ``channels`` and ``messages`` collections of a ``MongoStore``."""

    #: An element still in ``pending`` this long after its commit lost its publisher.
    leftover_ms: int = 5_000
    #: Reads that a trim keeps emptying give up, ``unavailable``, after this many tries.
    read_attempts: int = 5

    def __init__(self, channels: Collection, messages: Collection, *, clock: Clock) -> None:
        self._channels = channels
        self._messages = messages
        self._clock = clock
        self._dup = duplicate_key_errors()
        self.record_claim: RecordClaim | None = None

    async def create_indexes(self) -> None:
        m = self._messages
        by_offset = [("channel", 1), ("epoch", 1), ("offset", 1)]
        await m.create_index(by_offset, name="offset", unique=True)  # OFF-3: one copy each
        await m.create_index([("channel", 1), ("epoch", 1), ("id", 1)], name="id")

    @staticmethod
    def _fresh() -> dict[str, Any]:
        return {"epoch": secrets.token_hex(8), "trimmed": 0, "fence": 0, "retention": NO_LIMITS}

    async def snapshot(self, channel: str) -> Snapshot:
        """The channel's document, created with a new epoch on first touch (CHN-3, EPO-4)."""
        doc = await self._channels.find_one({"_id": channel})
        while doc is None:
            try:
                doc = await self._channels.find_one_and_update(
                    {"_id": channel},
                    {"$setOnInsert": {**self._fresh(), "head": 0, "pending": []}},
                    upsert=True,
                    return_document=AFTER,
                )
            except self._dup:  # a racing first touch created it: use theirs (CHN-4)
                doc = await self._channels.find_one({"_id": channel})
        return Snapshot(channel, doc)

    # --- appending ----------------------------------------------------------------------------

    async def commit(
        self, channel: str, el: Document, *, epoch: str | None = None, fence: int | None = None
    ) -> Committed | None:
        """Store ``el`` at the next offset (OFF-2, PUB-4); with a ``fence``, only if the
        channel is still in ``epoch`` with that fence, else None. Without one the channel is
        created on first touch."""
        return await self.commit_many(channel, (el,), epoch=epoch, fence=fence)

    async def commit_many(
        self,
        channel: str,
        els: Sequence[Document],
        *,
        epoch: str | None = None,
        fence: int | None = None,
    ) -> Committed | None:
        """Store ``els`` at the next offsets, in order, in one atomic update (BAT-2, BAT-3):
        ``head`` moves by their number as they join ``pending``, so its invariant holds. With
        an ``epoch`` (and a ``fence``), only if the channel is still in it, else None; without,
        the channel is created on first touch."""
        query: dict[str, Any] = {"_id": channel}
        update: dict[str, Any] = {
            "$inc": {"head": len(els)},
            "$push": {"pending": {"$each": list(els)}},
        }
        if epoch is None and fence is None:
            update["$setOnInsert"] = self._fresh()
        else:
            query["epoch"] = epoch
            if fence is not None:
                query["fence"] = fence
        while True:
            try:
                doc = await self._channels.find_one_and_update(
                    query, update, upsert="epoch" not in query, return_document=AFTER
                )
            except self._dup:  # a racing first touch created the channel: append to it
                continue
            return None if doc is None else Committed(Snapshot(channel, doc), tuple(els))

    async def settle(self, committed: Committed) -> None:
        """The bookkeeping after a commit: copy out, tidy ``pending``, apply retention."""
        snap = committed.snapshot
        for offset, el in zip(committed.offsets, committed.elements, strict=True):
            await self._copy(snap, offset, el)
        now = await self._channels.find_one({"_id": snap.channel, "epoch": snap.epoch})
        if now is not None:
            snap = Snapshot(snap.channel, now)
            await self._tidy(snap, {str(el["t"]) for el in committed.elements})
            await self.first(snap, self._clock())

    async def _copy(self, snap: Snapshot, offset: int, el: Document) -> None:
        doc = {"channel": snap.channel, "epoch": snap.epoch, "offset": offset}
        doc |= {f: el[f] for f in (*_MESSAGE_FIELDS, "k") if f in el}
        with contextlib.suppress(*self._dup):  # a duplicate: copied already, identically
            await self._messages.insert_one(doc)

    async def _tidy(self, snap: Snapshot, own: set[str]) -> None:
        """Remove the copied run at the front of ``pending``, completing leftovers in it;
        mark each of ``own`` not in that run copied in place."""
        done: list[str] = []
        now = self._clock()
        for offset, el in snap.pending():
            tag = str(el["t"])
            if not (el.get("c") or tag in own):
                if now - int(el["ts"]) < self.leftover_ms:
                    break  # its publisher is (probably) still at it
                await self._complete(snap, offset, el)
            done.append(tag)
        key = {"_id": snap.channel, "epoch": snap.epoch}
        for tag in sorted(own - set(done)):
            marked = {"$set": {"pending.$": {"t": tag, "c": True}}}
            await self._channels.update_one({**key, "pending.t": tag}, marked)
        if done:
            await self._channels.update_one(key, {"$pull": {"pending": {"t": {"$in": done}}}})

    async def _complete(self, snap: Snapshot, offset: int, el: Document) -> None:
        """Copy out a message whose publisher died after its commit (see ``mongo_claims``
        for why its claim is completed first)."""
        log.info("channel %r: completing offset %d, left by its publisher", snap.channel, offset)
        if "k" in el and self.record_claim is not None:
            await self.record_claim(snap.channel, str(el["id"]), str(el["k"]), offset)
        if offset > snap.trimmed:
            await self._copy(snap, offset, el)

    # --- idempotency takeovers ------------------------------------------------------------------

    async def bump_fence(self, channel: str, epoch: str) -> Snapshot | None:
        """Stop every keyed commit prepared under the fence before now (``mongo_claims``)."""
        doc = await self._channels.find_one_and_update(
            {"_id": channel, "epoch": epoch}, {"$inc": {"fence": 1}}, return_document=AFTER
        )
        return None if doc is None else Snapshot(channel, doc)

    async def owned_offset(self, snap: Snapshot, message_id: str, owner: str) -> int | None:
        """Where the message committed under claim ``owner`` is, if it is committed; read in
        ``snap`` first, then in ``messages`` (an element is copied before it leaves)."""
        for offset, el in snap.pending():
            if el.get("k") == owner:
                return offset
        query = {"channel": snap.channel, "epoch": snap.epoch, "id": message_id, "k": owner}
        found = await self._messages.find(query, _OFFSET_ONLY).limit(1).to_list(1)
        return int(found[0]["offset"]) if found else None

    # --- reading and retention ----------------------------------------------------------------

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        """Up to ``limit`` consecutive messages from ``start``, with the state they belong to."""
        for _ in range(self.read_attempts):
            snap = await self.snapshot(channel)
            first = await self.first(snap, self._clock())
            state = ChannelState(snap.epoch, first, snap.head)
            if first is None or not first <= start <= snap.head or limit <= 0:
                return ReadResult(state, ())
            offsets = range(start, min(snap.head, start + limit - 1) + 1)
            found = await self._stored(snap, offsets)
            if len(found) == len(offsets):
                return ReadResult(state, tuple(_message(o, found[o]) for o in offsets))
            # A trim deleted some of them after the snapshot: they are gone, read again.
        raise Unavailable(f"channel {channel!r} kept changing under the read; retry")

    async def _stored(self, snap: Snapshot, offsets: range) -> dict[int, Document]:
        found = {o: el for o, el in snap.uncopied().items() if o in offsets}
        if len(found) < len(offsets):
            between = {"$gte": offsets.start, "$lte": offsets.stop - 1}
            query = {"channel": snap.channel, "epoch": snap.epoch, "offset": between}
            cursor = self._messages.find(query).sort("offset", 1).limit(len(offsets))
            found |= {int(d["offset"]): d for d in await cursor.to_list(len(offsets))}
        return found

    async def first(self, snap: Snapshot, now: int, *, best_effort: bool = True) -> int | None:
        """The lowest offset still retained in ``snap``, or None (OFF-4, RET-12, RET-3); a
        floor higher than ``trimmed`` is written down and trimmed to. Trimming errors are
        logged unless not ``best_effort``."""
        retention = snap.retention
        low = snap.trimmed + 1
        if retention.max_messages is not None:
            low = max(low, snap.head - retention.max_messages + 1)
        first: int | None = low if low <= snap.head else None
        if first is not None and retention.max_age_s is not None:
            first = await self._young(snap, first, now - retention.max_age_s * 1000)
        floor = snap.head if first is None else first - 1
        if floor > snap.trimmed:
            try:
                await self._trim(snap, floor)
            except ReplayError as exc:
                if not best_effort:
                    raise
                log.warning("channel %r: trimming to %d failed (%s)", snap.channel, floor, exc)
        return first

    async def _young(self, snap: Snapshot, low: int, cutoff: int) -> int | None:
        """The lowest offset from ``low`` whose message is not past the age limit (RET-3)."""
        query = {"channel": snap.channel, "epoch": snap.epoch, "ts": {"$gte": cutoff}}
        query |= {"offset": {"$gte": low, "$lte": snap.head}}
        docs = await self._messages.find(query, _OFFSET_ONLY).sort("offset", 1).limit(1).to_list(1)
        candidates = [int(d["offset"]) for d in docs]
        candidates += [o for o, el in snap.uncopied().items() if o >= low and el["ts"] >= cutoff]
        return min(candidates, default=None)

    async def _trim(self, snap: Snapshot, floor: int) -> None:
        """Raise the floor, then delete below it: never the other way round (see above)."""
        key = {"_id": snap.channel, "epoch": snap.epoch}
        await self._channels.update_one(key, {"$max": {"trimmed": floor}})
        query = {"channel": snap.channel, "epoch": snap.epoch, "offset": {"$lte": floor}}
        await self._messages.delete_many(query)

    async def set_retention(self, channel: str, fields: Mapping[str, int | None]) -> Retention:
        """Set retention ``fields`` (dotted names) at once (RET-6); what the settings in force
        removed stays removed (RET-8)."""
        snap = await self.snapshot(channel)
        await self.first(snap, self._clock(), best_effort=False)  # RET-8: floor first
        while fields:
            doc = await self._channels.find_one_and_update(
                {"_id": channel, "epoch": snap.epoch}, {"$set": dict(fields)}, return_document=AFTER
            )
            if doc is not None:
                snap = Snapshot(channel, doc)
                break
            snap = await self.snapshot(channel)  # the channel was lost meanwhile: start over
        await self.first(snap, self._clock(), best_effort=False)  # RET-6
        return snap.retention
