"""A durable, shared store on MongoDB (PyMongo's async API), for clusters (CLU-1).

Theory of operation
-------------------
Collections: ``channels`` (``_id`` = channel name, ``epoch``, ``head``, ``retention``),
``messages`` (one document per message: ``channel``, ``epoch``, ``offset``, ``id``, ``ts``,
``data`` as the compact JSON text of the payload, because BSON cannot hold every JSON value
exactly, and ``size``), ``idempotency`` (one key per channel and publisher id), ``sessions``
(``_id`` = session id) and ``cursors`` (``_id`` = ``{session, channel}``; never a map keyed by
channel names, which may contain dots).

Offsets (OFF-2, PUB-4, DUR-1). A unique index on ``(channel, epoch, offset)`` makes the
messages themselves the arbiter of who owns an offset; ``channels.head`` is only a counter
that can never run ahead of them. To append, insert at ``head + 1``. A duplicate-key error
means another publisher took that offset: re-read the highest stored offset (an index-backed
sort, limit 1) and retry just above it. After the insert succeeds, advance the counter with
``$max``. Offset ``n + 1`` is therefore only ever inserted after ``n`` exists, so offsets are
dense; a process that dies between its insert and its ``$max`` leaves the counter briefly
behind, never a hole, because every reader takes ``head = max(channels.head, highest offset
stored)`` and the next publisher's insert collides and moves on. Before retention deletes
anything, the counter is advanced over what it deletes, so the head is never forgotten.

Epochs (EPO-2, EPO-3, CHN-4). A channel's epoch is created with its document by an upsert with
``$setOnInsert`` and persisted. It changes only if that document is lost: a new one gets a new
random epoch and every query filters on the epoch, so messages of the old one are ignored.

Idempotency (IDM-2 to IDM-9): claims on ``(channel, id)`` in ``idempotency``; see
``reference.store.mongo_claims``.

Retention (RET-*). After each append, delete by count (``offset <= head - max_messages``) and
by age (every offset below the lowest message young enough to keep: always a prefix, RET-4);
an update trims with the old settings, then with the new ones (RET-8, RET-6).
Reads compute ``first`` with an index-backed query that skips messages past the age limit, and
return nothing below it (RET-3).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

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
from reference.store.base import Clock, Store, message_ids, wall_clock_ms
from reference.store.mongo_claims import Claims
from reference.store.mongo_collection import (
    AFTER,
    BEFORE,
    Closable,
    Database,
    Document,
    duplicate_key_errors,
)
from reference.store.records import session_from_record, session_record

if TYPE_CHECKING:
    from reference.core.payloads import RetentionUpdate

_OFFSET_ONLY = {"offset": 1, "_id": 0}
_MESSAGE_FIELDS = {"_id": 0, "offset": 1, "id": 1, "ts": 1, "data": 1, "size": 1}
_NO_LIMITS = {"max_messages": None, "max_age_s": None}


def _retention(doc: Document) -> Retention:
    r = doc.get("retention") or _NO_LIMITS
    return Retention(max_messages=r.get("max_messages"), max_age_s=r.get("max_age_s"))


def _message(doc: Document) -> Message:
    return Message(doc["offset"], doc["id"], doc["ts"], json.loads(doc["data"]), doc["size"])


def _session(doc: Document) -> Session:
    return session_from_record(doc["_id"], doc)


class MongoStore(Store):
    """The replay store on a MongoDB database (``AsyncMongoClient(url)[name]``)."""

    durable = True
    shared = True

    #: Rounds of update-or-create a registration tries while other registrations race it.
    upsert_attempts: int = 5

    def __init__(
        self,
        db: Database,
        *,
        client: Closable | None = None,
        clock: Clock = wall_clock_ms,
        idempotency_window_s: int = 3600,
    ) -> None:
        super().__init__(clock=clock, idempotency_window_s=idempotency_window_s)
        self._db = db
        self._client = client
        self._channels = db["channels"]
        self._messages = db["messages"]
        self._sessions = db["sessions"]
        self._cursors = db["cursors"]
        self._dup = duplicate_key_errors()
        self._message_ids = message_ids()
        self.claims = Claims(
            db["idempotency"],
            self._messages,
            clock=clock,
            window_s=idempotency_window_s,
            duplicate=self._dup,
        )

    @property
    def database_name(self) -> str:
        return self._db.name

    @property
    def database(self) -> Database:
        """The database, for a bus over the same deployment (``reference.bus.mongo``)."""
        return self._db

    async def open(self) -> None:
        m = self._messages
        await m.create_index(
            [("channel", 1), ("epoch", 1), ("offset", 1)], name="offset", unique=True
        )  # OFF-3: one message per offset, the arbiter of every append
        await m.create_index([("channel", 1), ("epoch", 1), ("id", 1)], name="id")
        await self.claims.create_indexes()
        await self._sessions.create_index([("token_hash", 1)], name="token_hash", unique=True)
        await self._cursors.create_index([("_id.session", 1)], name="session")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    # --- channels ---------------------------------------------------------------------------

    async def _channel(self, channel: str) -> Document:
        """The channel's document, created with a new epoch on first touch (CHN-3, EPO-4)."""
        doc = await self._channels.find_one({"_id": channel})
        while doc is None:
            fresh = {"epoch": secrets.token_hex(8), "head": 0, "retention": _NO_LIMITS}
            try:
                doc = await self._channels.find_one_and_update(
                    {"_id": channel}, {"$setOnInsert": fresh}, upsert=True, return_document=AFTER
                )
            except self._dup:  # a racing upsert created it first: use theirs (CHN-4)
                doc = await self._channels.find_one({"_id": channel})
        return doc

    async def _top(self, channel: str, epoch: str, above: int = 0) -> int:
        """The highest stored offset if above ``above``, else ``above`` (index-backed)."""
        query = {"channel": channel, "epoch": epoch, "offset": {"$gt": above}}
        docs = await self._messages.find(query, _OFFSET_ONLY).sort("offset", -1).limit(1).to_list(1)
        return int(docs[0]["offset"]) if docs else above

    async def _first(
        self, channel: str, epoch: str, retention: Retention, head: int, now: int
    ) -> int | None:
        """The lowest offset still retained, or None (OFF-4, RET-12, RET-3)."""
        query: dict[str, Any] = {"channel": channel, "epoch": epoch}
        if retention.max_age_s is not None:
            query["ts"] = {"$gte": now - retention.max_age_s * 1000}
        docs = await self._messages.find(query, _OFFSET_ONLY).sort("offset", 1).limit(1).to_list(1)
        if not docs or docs[0]["offset"] > head:
            return None
        first = int(docs[0]["offset"])
        if retention.max_messages is not None:  # an append's trim may not have run yet
            first = max(first, head - retention.max_messages + 1)
        return first

    async def _trim(
        self, channel: str, epoch: str, retention: Retention, head: int, now: int
    ) -> None:
        """Apply retention up to ``head``, which the counter must already cover."""
        upper = 0
        if retention.max_messages is not None:  # RET-12
            upper = head - retention.max_messages
        if retention.max_age_s is not None:  # RET-3: all below the first young message, RET-4
            age_only = Retention(max_age_s=retention.max_age_s)
            young = await self._first(channel, epoch, age_only, head, now)
            upper = max(upper, head if young is None else young - 1)
        if upper >= 1:
            query = {"channel": channel, "epoch": epoch, "offset": {"$lte": upper}}
            await self._messages.delete_many(query)

    async def _advance_head(self, channel: str, epoch: str, head: int) -> None:
        await self._channels.update_one({"_id": channel, "epoch": epoch}, {"$max": {"head": head}})

    async def state(self, channel: str) -> ChannelState:
        doc = await self._channel(channel)
        epoch = doc["epoch"]
        head = await self._top(channel, epoch, above=doc["head"])  # OFF-4
        first = await self._first(channel, epoch, _retention(doc), head, self.clock())
        return ChannelState(epoch, first, head)

    async def append(self, channel: str, payload: Payload, message_id: str | None) -> AppendResult:
        doc = await self._channel(channel)
        epoch: str = doc["epoch"]
        now = self.clock()
        owner = None
        if message_id is None:
            message_id = next(self._message_ids)
        else:
            claimed = await self.claims.claim(channel, epoch, message_id, now)
            if isinstance(claimed, AppendResult):
                return claimed
            owner = claimed
        message = {
            "channel": channel,
            "epoch": epoch,
            "offset": doc["head"] + 1,
            "id": message_id,
            "ts": now,  # MSG-4
            "data": payload.encoded,  # MSG-2: JSON text survives BSON exactly
            "size": payload.size,
        }
        offset = await self._insert(message)
        if owner is not None:
            await self.claims.settle(channel, message_id, owner, offset)
        await self._advance_head(channel, epoch, offset)
        await self._trim(channel, epoch, _retention(doc), offset, now)
        return AppendResult(channel, offset, epoch, message_id, duplicate=False)

    async def _insert(self, message: dict[str, Any]) -> int:
        """Insert at ``message["offset"]`` or, when taken, just above the real top (PUB-4)."""
        while True:
            try:
                await self._messages.insert_one(message)
                return int(message["offset"])
            except self._dup:
                message.pop("_id", None)  # the driver added one to the refused document
                top = await self._top(message["channel"], message["epoch"])
                message["offset"] = max(message["offset"], top) + 1

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        doc = await self._channel(channel)
        epoch = doc["epoch"]
        now = self.clock()
        head = await self._top(channel, epoch, above=doc["head"])
        docs: list[Document] = []
        if start <= head and limit > 0:
            query = {"channel": channel, "epoch": epoch, "offset": {"$gte": start, "$lte": head}}
            found = self._messages.find(query, _MESSAGE_FIELDS).sort("offset", 1).limit(limit)
            docs = list(await found.to_list(limit))
        # Computed after the messages: retention only removes a prefix, so a start at or above
        # this ``first`` was still stored when the messages were read (HIS-5).
        first = await self._first(channel, epoch, _retention(doc), head, now)
        state = ChannelState(epoch, first, head)
        if first is None or start < first or not docs or docs[0]["offset"] != start:
            return ReadResult(state, ())
        return ReadResult(state, tuple(_message(d) for d in docs))

    async def set_retention(self, channel: str, update: RetentionUpdate) -> Retention:
        fields: dict[str, int | None] = {}
        if update.sets_max_messages():  # RET-1: an omitted member keeps its value
            fields["retention.max_messages"] = update.max_messages
        if update.sets_max_age():
            fields["retention.max_age_s"] = update.max_age_s
        doc = await self._channel(channel)
        # RET-8: what the limits in force removed stays removed, even if nothing read the
        # channel since and this update lifts them.
        await self._apply_retention(channel, doc, self.clock())
        while fields:
            updated = await self._channels.find_one_and_update(
                {"_id": channel, "epoch": doc["epoch"]}, {"$set": fields}, return_document=AFTER
            )
            if updated is not None:
                doc = updated
                break
            doc = await self._channel(channel)  # the channel was lost in between: start over
        await self._apply_retention(channel, doc, self.clock())  # RET-6: applies at once
        return _retention(doc)

    async def _apply_retention(self, channel: str, doc: Document, now: int) -> None:
        """Trim the channel to the settings of ``doc``, its document, up to the real head."""
        epoch = doc["epoch"]
        head = await self._top(channel, epoch, above=doc["head"])
        if head > doc["head"]:
            await self._advance_head(channel, epoch, head)  # before deleting: _trim's rule
        await self._trim(channel, epoch, _retention(doc), head, now)

    # --- sessions and cursors ---------------------------------------------------------------

    async def upsert_session(self, session: Session) -> bool:
        sid = session.session_id
        fields = session_record(session)
        for _ in range(self.upsert_attempts):
            now = self.clock()
            # SES-2: a live session is updated in place and keeps its incarnation and cursors.
            live = {"_id": sid, "expires_at": {"$gt": now}}
            if await self._sessions.find_one_and_update(live, {"$set": fields}) is not None:
                return False
            # SES-1, SES-17: otherwise it is created, or an expired one replaced, in one atomic
            # upsert (SES-3). A live session that appeared meanwhile makes the insert collide
            # on _id; the next round then updates it.
            absent = {"_id": sid, "expires_at": {"$lte": now}}
            created = {"$set": {**fields, "incarnation": session.incarnation}}
            try:
                old = await self._sessions.find_one_and_update(
                    absent, created, upsert=True, return_document=BEFORE
                )
            except self._dup:
                continue
            if old is not None:  # the expired session's cursors go with it
                await self._cursors.delete_many({"_id.session": sid})
            return True
        raise Unavailable(f"session {sid!r} kept changing under registration; retry")

    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        doc = await self._sessions.find_one({"token_hash": token_hash})
        return None if doc is None else _session(doc)

    async def session(self, session_id: str) -> Session | None:
        doc = await self._sessions.find_one({"_id": session_id})
        return None if doc is None else _session(doc)

    async def delete_session(self, session_id: str) -> bool:
        old = await self._sessions.find_one_and_delete({"_id": session_id})
        await self._cursors.delete_many({"_id.session": session_id})  # SES-16
        return old is not None and self.clock() < old["expires_at"]  # SES-13

    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        doc = await self._cursors.find_one({"_id": {"session": session_id, "channel": channel}})
        return None if doc is None else Cursor(doc["epoch"], doc["offset"])

    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        key = {"session": session_id, "channel": channel}
        while True:
            doc = await self._cursors.find_one_and_update(  # ACK-4: max, atomically
                {"_id": key, "epoch": epoch}, {"$max": {"offset": offset}}, return_document=AFTER
            )
            if doc is not None:
                return Cursor(epoch, doc["offset"])
            try:  # ACK-7: absent, or of another epoch: replace
                doc = await self._cursors.find_one_and_update(
                    {"_id": key, "epoch": {"$ne": epoch}},
                    {"$set": {"epoch": epoch, "offset": offset}},
                    upsert=True,
                    return_document=AFTER,
                )
            except self._dup:
                continue  # a racing ack created it in this epoch: take the max path again
            if doc is not None:
                return Cursor(epoch, doc["offset"])
