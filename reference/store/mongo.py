"""A shared store on MongoDB (PyMongo's async API), for clusters (CLU-1).

Theory of operation
-------------------
The store is four parts, each with its own argument:

- ``mongo_log``: channels, offsets and messages. An append commits its message and its offset
  in one atomic update of the channel's document, and copies it out afterwards, so offsets are
  dense and never reused whatever trims, crashes or delays do, at a bounded cost per append
  (OFF-2, OFF-3, PUB-4, DUR-1), without transactions, so a standalone ``mongod`` serves too.
- ``mongo_claims``: idempotency (IDM-2 to IDM-9): unique claims, taken over on the server's
  clock behind a fence, so that no id is stored twice.
- ``mongo_sessions``: a session and its cursors in one document, removed together (SES-16)
  and, past their expiry, by a TTL index.
- ``mongo_deployment`` and ``mongo_errors``: what the deployment promises, decided in
  ``open()`` (``durable``, the write and read concerns, the read preference), and every call
  bounded in time with its errors mapped (``unavailable`` for what a retry may cure).

Epochs (EPO-2, EPO-3, CHN-4). A channel's epoch is created with its document and persisted. It
changes only if that document is lost: a new one gets a new random epoch and every query
filters on the epoch, so messages and claims of the old one are ignored (RET-11: so are its
retention settings).

Everything after a commit (copying out, recording the claim's offset, tidying, retention) is
bookkeeping: it runs shielded from the caller's cancellation, its failures are logged, and
whoever comes next completes it. A publish that committed is answered with success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from reference.core.batch_publish import BatchEntry, earlier_repeats
from reference.core.errors import ReplayError, Unavailable
from reference.core.model import AppendResult, ChannelState, Cursor, Payload, ReadResult, Session
from reference.store.base import Clock, Store, message_ids, wall_clock_ms
from reference.store.mongo_claims import Claim, Claims
from reference.store.mongo_collection import Closable, Database
from reference.store.mongo_deployment import Deployment, configured, inspect
from reference.store.mongo_errors import guarded
from reference.store.mongo_log import ChannelLog, Committed, Snapshot, element
from reference.store.mongo_sessions import Sessions

if TYPE_CHECKING:
    from reference.core.model import Retention
    from reference.core.payloads import RetentionUpdate

log = logging.getLogger(__name__)


class MongoStore(Store):
    """The replay store on a MongoDB database (``AsyncMongoClient(url)[name]``)."""

    durable = False  # decided by ``open()``
    shared = True

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
        self._message_ids = message_ids()
        self._bookkeeping: set[asyncio.Task[None]] = set()
        self.deployment: Deployment | None = None
        self._attach(db)

    def _attach(self, db: Database) -> None:
        """Build the parts over ``db``, guarded (see ``mongo_errors``)."""
        safe = guarded(db)
        self.log = ChannelLog(safe["channels"], safe["messages"], clock=self.clock)
        self.claims = Claims(
            safe["idempotency"], self.log, clock=self.clock, window_s=self.idempotency_window_s
        )
        self.log.record_claim = self.claims.record
        self.sessions = Sessions(safe["sessions"], clock=self.clock)

    @property
    def database_name(self) -> str:
        return self._db.name

    @property
    def database(self) -> Database:
        """The database as given, for a bus over the same deployment (``reference.bus.mongo``)."""
        return self._db

    @property
    def leftover_s(self) -> float:
        """How long a committed message may wait in its channel's document for its copy."""
        return self.log.leftover_ms / 1000

    async def open(self) -> None:
        self.deployment = await inspect(self._db)
        self.durable = self.deployment.durable
        self._attach(configured(self._db, self.deployment))
        await self.log.create_indexes()
        await self.claims.create_indexes()
        await self.sessions.create_indexes()
        log.info("MongoDB store on a %s; durable: %s", self.deployment.kind, self.durable)

    async def close(self) -> None:
        if self._bookkeeping:
            await asyncio.wait(self._bookkeeping, timeout=5)
        if self._client is not None:
            await self._client.close()

    # --- channels ---------------------------------------------------------------------------

    async def state(self, channel: str) -> ChannelState:
        snap = await self.log.snapshot(channel)
        return ChannelState(snap.epoch, await self.log.first(snap, self.clock()), snap.head)

    async def append(self, channel: str, payload: Payload, message_id: str | None) -> AppendResult:
        if message_id is None:  # MSG-3: no key (IDM-8), so nothing to claim
            message_id = next(self._message_ids)
            el = element(message_id, self.clock(), payload.encoded, payload.size, None)
            committed = await self.log.commit(channel, el)
            assert committed is not None  # unconditional
            return await self._answer(committed, message_id, None)
        while True:
            snap = await self.log.snapshot(channel)  # its fence, read before claiming
            claimed = await self.claims.claim(channel, message_id, snap)
            if isinstance(claimed, AppendResult):
                return claimed
            claim: Claim | None = claimed
            el = element(message_id, self.clock(), payload.encoded, payload.size, claimed.owner)
            while claim is not None:
                committed = await self.log.commit(channel, el, epoch=claim.epoch, fence=claim.fence)
                if committed is not None:
                    return await self._answer(committed, message_id, claim)
                claim = await self.claims.renew(claim)  # None: taken over; claim again

    async def _answer(
        self, committed: Committed, message_id: str, claim: Claim | None
    ) -> AppendResult:
        """Answer a committed publish after its bookkeeping."""
        await self._after_commit(committed, {} if claim is None else {committed.offset: claim})
        snap = committed.snapshot
        return AppendResult(snap.channel, committed.offset, snap.epoch, message_id, False)

    async def _after_commit(self, committed: Committed, claims: dict[int, Claim]) -> None:
        """The bookkeeping of a commit (``claims`` by offset), which a cancelled caller (a
        client gone) does not interrupt: it goes on in a task of its own."""
        task = asyncio.ensure_future(self._settle(committed, claims))
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)
        await asyncio.shield(task)

    async def _settle(self, committed: Committed, claims: dict[int, Claim]) -> None:
        offset = committed.offset
        try:
            for at, claim in claims.items():  # first: a copied message may be trimmed
                await self.claims.record(claim.channel, claim.message_id, claim.owner, at)
            await self.log.settle(committed)
        except Exception as exc:  # stored all the same; whoever comes next completes it
            channel = committed.snapshot.channel
            log.warning("channel %r: bookkeeping after offset %d failed (%s)", channel, offset, exc)

    async def append_batch(
        self, channel: str, entries: Sequence[BatchEntry]
    ) -> tuple[AppendResult, ...]:
        for _ in range(self.claims.renewals):
            done = await self._try_batch(channel, entries)
            if done is not None:
                return done
        raise Unavailable(f"channel {channel!r}: the batch's claims kept changing; retry")

    async def _try_batch(
        self, channel: str, entries: Sequence[BatchEntry]
    ) -> tuple[AppendResult, ...] | None:
        """Claim every distinct ``id`` (in sorted order, so two batches never wait on each
        other's claims), then commit the new entries in one update conditioned on the epoch
        and fence the claims hold (BAT-3, BAT-9). None: a claim moved; nothing was stored and
        every claim taken here is released."""
        snap = await self.log.snapshot(channel)
        keyed = sorted({e.id for e in entries if e.id is not None})
        claims: dict[str, Claim] = {}
        known: dict[str, AppendResult] = {}
        try:
            for message_id in keyed:
                claimed = await self.claims.claim(channel, message_id, snap)
                if isinstance(claimed, AppendResult):
                    known[message_id] = claimed
                else:
                    claims[message_id] = claimed
        except BaseException:
            await self._release(claims.values())
            raise
        terms = {(c.epoch, c.fence) for c in claims.values()} | {(snap.epoch, snap.fence)}
        if len(terms) > 1 or any(r.epoch != snap.epoch for r in known.values()):
            await self._release(claims.values())  # decided under different views: again
            return None
        return await self._commit_batch(snap, entries, claims, known)

    async def _commit_batch(
        self,
        snap: Snapshot,
        entries: Sequence[BatchEntry],
        claims: dict[str, Claim],
        known: dict[str, AppendResult],
    ) -> tuple[AppendResult, ...] | None:
        now, channel = self.clock(), snap.channel
        repeats = earlier_repeats([e.id for e in entries])
        fresh = [i for i, e in enumerate(entries) if i not in repeats and e.id not in known]
        ids = [e.id if e.id is not None else next(self._message_ids) for e in entries]
        els = [
            element(ids[i], now, entries[i].payload.encoded, entries[i].payload.size,
                    claims[ids[i]].owner if ids[i] in claims else None)
            for i in fresh
        ]  # fmt: skip
        results: list[AppendResult | None] = [None] * len(entries)
        if els:
            fence = snap.fence if claims else None
            committed = await self.log.commit_many(channel, els, epoch=snap.epoch, fence=fence)
            if committed is None:  # the fence moved or the channel was lost: nothing stored
                await self._release(claims.values())
                return None
            by_offset = {}
            for i, offset in zip(fresh, committed.offsets, strict=True):
                results[i] = AppendResult(channel, offset, snap.epoch, ids[i], False)
                if ids[i] in claims:
                    by_offset[offset] = claims[ids[i]]
            await self._after_commit(committed, by_offset)
        for i, message_id in enumerate(ids):
            if i in repeats:
                original = results[repeats[i]] or known[message_id]
                results[i] = replace(original, duplicate=True)  # BAT-8: a repeat in the batch
            elif results[i] is None:
                results[i] = known[message_id]
        return tuple(r for r in results if r is not None)

    async def _release(self, claims: Iterable[Claim]) -> None:
        for claim in claims:
            with contextlib.suppress(ReplayError):  # a claim left behind is taken over later
                await self.claims.release(claim)

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        return await self.log.read(channel, start, limit)

    async def set_retention(self, channel: str, update: RetentionUpdate) -> Retention:
        fields: dict[str, int | None] = {}
        if update.sets_max_messages():  # RET-1: an omitted member keeps its value
            fields["retention.max_messages"] = update.max_messages
        if update.sets_max_age():
            fields["retention.max_age_s"] = update.max_age_s
        return await self.log.set_retention(channel, fields)

    # --- sessions and cursors ---------------------------------------------------------------

    async def upsert_session(self, session: Session) -> bool:
        return await self.sessions.upsert(session)

    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        return await self.sessions.by_token_hash(token_hash)

    async def session(self, session_id: str) -> Session | None:
        return await self.sessions.get(session_id)

    async def delete_session(self, session_id: str) -> bool:
        return await self.sessions.delete(session_id)

    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        return await self.sessions.cursor(session_id, channel)

    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        return await self.sessions.advance_cursor(session_id, channel, epoch, offset)
