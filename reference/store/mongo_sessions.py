"""Sessions and their cursors in the MongoDB store: one document each (SES-*, ACK-*).

Theory of operation
-------------------
A session is one document in ``sessions`` (``_id`` = the session id) holding its record
(``reference.store.records``), its ``incarnation`` and its cursors, under ``cursors`` keyed by
an escaped channel name (a field name may not contain ``.`` or start with ``$``; ``%`` escapes
them). Whatever removes a session removes its cursors in the same write, so no crash or racing
ack can leave cursors for a session registered again later (SES-16, SES-17):

- deleting is one ``find_one_and_delete``;
- creating, or replacing an expired session, is one ``replace_one`` of the whole document,
  conditioned on the old one being expired or absent, with an upsert (SES-1, SES-3); a live
  session that appears meanwhile makes the insert collide on ``_id``, and the next round
  updates it in place (SES-2), keeping its cursors and incarnation.

An ack for a session that does not exist (deleted, or never registered) keeps its cursor in a
document without a record, which counts as an expired session: whatever registers that id next
replaces the document, cursors and all, as the in-memory store forgets them.

``expires_at`` is the session's expiry on the store's clock, an integer as the record has it.
``gone_at`` is a date for the TTL index: ``grace_ms`` after the expiry, so an expired session is
still seen as expired for a while (SES-13), and then vanishes with its cursors.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reference.core.errors import Unavailable
from reference.core.model import Cursor, Session
from reference.store.base import Clock
from reference.store.mongo_collection import AFTER, Collection, duplicate_key_errors
from reference.store.records import session_from_record, session_record

_ESCAPES = str.maketrans({"%": "%25", ".": "%2E", "$": "%24", "\0": "%00"})


def cursor_field(channel: str) -> str:
    """The field of a session document holding its cursor on ``channel``."""
    return "cursors.c" + channel.translate(_ESCAPES)


def _date(ms: int) -> datetime:
    return datetime.fromtimestamp(max(ms, 0) / 1000, tz=UTC)


class Sessions:
    """The ``sessions`` collection of a ``MongoStore``."""

    #: Rounds of update-or-create a registration tries while other registrations race it.
    upsert_attempts: int = 5
    #: How long a session's document outlives its expiry (and an ack's, its session).
    grace_ms: int = 3_600_000

    def __init__(self, sessions: Collection, *, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock
        self._dup = duplicate_key_errors()

    async def create_indexes(self) -> None:
        s = self._sessions
        await s.create_index([("token_hash", 1)], name="token", unique=True, sparse=True)
        await s.create_index([("gone_at", 1)], name="ttl", expireAfterSeconds=0)

    async def upsert(self, session: Session) -> bool:
        sid = session.session_id
        fields: dict[str, Any] = dict(session_record(session))
        fields["gone_at"] = _date(session.expires_at + self.grace_ms)
        for _ in range(self.upsert_attempts):
            now = self._clock()
            # SES-2: a live session is updated in place and keeps its incarnation and cursors.
            live = {"_id": sid, "expires_at": {"$gt": now}}
            if await self._sessions.find_one_and_update(live, {"$set": fields}) is not None:
                return False
            # SES-1, SES-17: otherwise it is created, or an expired one replaced, cursors and
            # all, in one atomic write (SES-3).
            new = {**fields, "incarnation": session.incarnation, "cursors": {}}
            absent = {"_id": sid, "expires_at": {"$lte": now}}
            try:
                await self._sessions.replace_one(absent, new, upsert=True)
            except self._dup:
                continue  # a live session appeared meanwhile: update it
            return True
        raise Unavailable(f"session {sid!r} kept changing under registration; retry")

    async def by_token_hash(self, token_hash: str) -> Session | None:
        doc = await self._sessions.find_one({"token_hash": token_hash})
        return None if doc is None else session_from_record(doc["_id"], doc)

    async def get(self, session_id: str) -> Session | None:
        doc = await self._sessions.find_one({"_id": session_id})
        if doc is None or "token_hash" not in doc:  # none, or only cursors of no session
            return None
        return session_from_record(session_id, doc)

    async def delete(self, session_id: str) -> bool:
        old = await self._sessions.find_one_and_delete({"_id": session_id})  # SES-16
        return old is not None and self._clock() < old["expires_at"]  # SES-13

    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        field = cursor_field(channel)
        doc = await self._sessions.find_one({"_id": session_id}, {field: 1})
        return _cursor(doc, field)

    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        field = cursor_field(channel)
        while True:
            doc = await self._sessions.find_one_and_update(  # ACK-4: max, atomically
                {"_id": session_id, f"{field}.e": epoch},
                {"$max": {f"{field}.o": offset}},
                projection={field: 1},
                return_document=AFTER,
            )
            found = _cursor(doc, field)
            if found is not None:
                return found
            orphan = {"expires_at": 0, "gone_at": _date(self._clock() + self.grace_ms)}
            try:  # ACK-7: absent, or of another epoch: replace
                doc = await self._sessions.find_one_and_update(
                    {"_id": session_id, f"{field}.e": {"$ne": epoch}},
                    {"$set": {field: {"e": epoch, "o": offset}}, "$setOnInsert": orphan},
                    projection={field: 1},
                    upsert=True,
                    return_document=AFTER,
                )
            except self._dup:
                continue  # a racing ack set it in this epoch: take the max path again
            found = _cursor(doc, field)
            if found is not None:
                return found


def _cursor(doc: Any, field: str) -> Cursor | None:
    value: Any = doc
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return None if value is None else Cursor(value["e"], value["o"])
