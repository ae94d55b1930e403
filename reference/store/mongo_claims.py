"""Idempotency claims of the MongoDB store: which publish stores a message id (IDM-2 to IDM-9).

Theory of operation
-------------------
A publish with an id first claims ``(channel, id)`` in ``idempotency``, where a unique index on
both makes a second live claim impossible, then commits its message (``mongo_log``) tagged with
the claim's owner token, then records the offset on the claim. A publisher that finds the key
claimed answers with the recorded offset as a duplicate (IDM-6, IDM-7). While the claim is
pending it waits, and looks meanwhile for the owner's message in the channel: found, it is
committed, and the waiter records its offset for the owner.

A claim still pending ``stale_ms`` after it was made, on the *server's* clock (``claimed_at``
is ``$currentDate``; a node's clock may be off by seconds), is taken over: its publisher died,
or is stalled by an election or a pause. Taking over must not let that publisher store the id
a second time when it wakes up, and timing alone cannot promise that (a request can sit in a
socket for longer than any timeout). So the channel's document carries a ``fence``, and a
keyed commit is conditioned on the fence its publisher read *before* claiming. A takeover
first increments the fence, atomically reading the channel's document: from then on no commit
prepared before can succeed, and any commit made before is in that document's ``pending`` or
already copied to ``messages``, where the takeover looks for it. Found, it is recorded and
answered as a duplicate; not found, it never will be, and the claim is replaced by a
compare-and-swap on what was read (owner, fence, offset), so of two takeovers only one wins.
A publisher whose commit fails on a moved fence re-reads the fence and renews its claim by the
same compare-and-swap; if it lost the claim instead, it goes back to claiming, and now finds
the other publisher's. Every write's outcome is checked (``matched_count``); each store call
ends within ``OPERATION_TIMEOUT_S`` (5 s), half the takeover time, so a live publisher is
rarely taken over, and when one is, the fence makes it harmless.

The offset is recorded on the claim *before* the message is copied out of ``pending``: so a
copied message, which retention may delete, always has its claim's offset (IDM-5), and a
message still to be found by a takeover is still in ``pending``. Whoever completes a left-over
keyed message records its claim first for the same reason.

A claim from another epoch, or past its window (``expires_ms``, on the store's clock, which
is the window's clock), is replaced the same way (IDM-9). Keys carry ``expires_at`` (a date)
for a TTL index; they are unique on ``(channel, id)`` fields rather than on a document
``_id`` because mongomock's TTL emulation cannot delete documents whose ``_id`` is a document.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from reference.core.errors import Unavailable
from reference.core.model import AppendResult
from reference.store.base import Clock
from reference.store.mongo_collection import AFTER, Collection, Document, duplicate_key_errors
from reference.store.mongo_log import ChannelLog, Snapshot

log = logging.getLogger(__name__)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _naive_utc(moment: datetime) -> datetime:
    """PyMongo and mongomock return naive UTC datetimes; a test may have written aware ones."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim this publisher holds: it may commit in ``epoch`` while the fence is ``fence``."""

    channel: str
    message_id: str
    owner: str
    epoch: str
    fence: int


class Claims:
    """The ``idempotency`` collection of a ``MongoStore``, over its channel log."""

    #: How often a publisher polls a pending claim, and for how long at most.
    poll_s: float = 0.02
    wait_s: float = 2.0
    #: A claim pending for longer than this, on the server's clock, is taken over.
    stale_ms: int = 10_000
    #: A claim pending for longer than this may be committed with its offset not recorded
    #: (its publisher failed or died right after its commit): look for its message.
    search_after_ms: int = 500
    #: Renewals of a claim whose fence keeps moving, before giving up ``unavailable``.
    renewals: int = 10

    def __init__(
        self, keys: Collection, channels: ChannelLog, *, clock: Clock, window_s: int
    ) -> None:
        self._keys = keys
        self._log = channels
        self._clock = clock
        self._window_s = window_s
        self._dup = duplicate_key_errors()

    async def create_indexes(self) -> None:
        await self._keys.create_index([("channel", 1), ("id", 1)], name="key", unique=True)
        await self._keys.create_index([("expires_at", 1)], name="ttl", expireAfterSeconds=0)

    def _terms(self, claim: Claim) -> dict[str, Any]:
        expires_ms = self._clock() + self._window_s * 1000
        terms = {"owner": claim.owner, "epoch": claim.epoch, "fence": claim.fence}
        return terms | {"offset": None, "expires_ms": expires_ms, "expires_at": _utc(expires_ms)}

    async def claim(self, channel: str, message_id: str, snap: Snapshot) -> AppendResult | Claim:
        """Claim ``(channel, message_id)`` under ``snap``'s epoch and fence, read before (see
        above), or answer with the earlier publish of this id as a duplicate."""
        mine = Claim(channel, message_id, secrets.token_hex(8), snap.epoch, snap.fence)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        ages: dict[Any, tuple[float, float]] = {}  # claim _id -> (loop time, server age ms)
        while True:
            key = {"channel": channel, "id": message_id}
            try:
                await self._keys.update_one(  # an upsert only ever inserts: ``owner`` is new
                    {**key, "owner": mine.owner},
                    {"$setOnInsert": self._terms(mine), "$currentDate": {"claimed_at": True}},
                    upsert=True,
                )
                return mine
            except self._dup:
                pass
            old = await self._keys.find_one(key)
            if old is None:
                continue  # expired or taken over in between: claim again
            decided = await self._decide(old, mine, snap, ages, deadline)
            if isinstance(decided, Snapshot):  # our view of the channel was stale
                snap = decided
                mine = replace(mine, epoch=snap.epoch, fence=snap.fence)
            elif decided is not None:
                return decided

    async def _decide(
        self,
        old: Document,
        mine: Claim,
        snap: Snapshot,
        ages: dict[Any, tuple[float, float]],
        deadline: float,
    ) -> AppendResult | Claim | Snapshot | None:
        """What another publisher's claim means for this one: the answer, the claim taken
        over, the channel's current state to decide again under, or None: look again."""
        channel, message_id = mine.channel, mine.message_id
        if old.get("epoch") != snap.epoch:
            current = await self._log.snapshot(channel)
            if current.epoch != snap.epoch:
                return current  # the channel has a newer epoch than we knew
            return mine if await self._take(old, mine) else None  # IDM-9: a lost epoch's
        if old["expires_ms"] <= self._clock():  # the window passed: its publisher is gone
            return mine if await self._take(old, mine) else None
        if old.get("offset") is not None:  # IDM-6, IDM-5: the key outlives the message
            return AppendResult(channel, old["offset"], snap.epoch, message_id, duplicate=True)
        age = await self._age_ms(old, ages)
        if age > self.search_after_ms:
            found = await self._committed(await self._log.snapshot(channel), old)
            if found is not None:
                return found
        if age <= self.stale_ms:
            if asyncio.get_running_loop().time() >= deadline:
                raise Unavailable("a publish with the same id is still in progress; retry later")
            await asyncio.sleep(self.poll_s)  # IDM-2: wait for its offset
            return None
        fenced = await self._log.bump_fence(channel, snap.epoch)
        if fenced is None:  # the channel was lost meanwhile: its claim is of a lost epoch
            return await self._log.snapshot(channel)
        found = await self._committed(fenced, old)
        if found is not None:
            return found
        log.warning("channel %r: taking over the stale claim of id %r", channel, message_id)
        ours = replace(mine, fence=fenced.fence)
        return ours if await self._take(old, ours) else None

    async def _committed(self, snap: Snapshot, old: Document) -> AppendResult | None:
        """The claim's message as a duplicate if its owner committed it, recording it."""
        channel, message_id, owner = snap.channel, str(old["id"]), str(old["owner"])
        offset = await self._log.owned_offset(snap, message_id, owner)
        if offset is None:
            return None
        await self.record(channel, message_id, owner, offset)
        return AppendResult(channel, offset, snap.epoch, message_id, duplicate=True)

    async def _age_ms(self, old: Document, ages: dict[Any, tuple[float, float]]) -> float:
        """How long ago, on the server's clock, the claim was made; asked once per claim."""
        now = asyncio.get_running_loop().time()
        seen = ages.get((old["_id"], old.get("claimed_at")))
        if seen is None:
            doc = await self._keys.find_one_and_update(
                {"_id": old["_id"]}, {"$currentDate": {"seen_at": True}}, return_document=AFTER
            )
            if doc is None or not isinstance(doc.get("claimed_at"), datetime):
                return float("inf")  # gone meanwhile, or of no known age: look again
            age = _naive_utc(doc["seen_at"]) - _naive_utc(doc["claimed_at"])
            seen = ages[(old["_id"], old.get("claimed_at"))] = (now, age.total_seconds() * 1000)
        return seen[1] + (now - seen[0]) * 1000

    async def _take(self, old: Document, mine: Claim) -> bool:
        """Replace ``old`` by ``mine`` if nobody changed it since it was read."""
        seen = {f: old.get(f) for f in ("owner", "fence", "offset")}
        taken = await self._keys.update_one(
            {"_id": old["_id"], **seen},
            {"$set": self._terms(mine), "$currentDate": {"claimed_at": True}},
        )
        return taken.matched_count == 1

    async def renew(self, claim: Claim) -> Claim | None:
        """After a commit refused for a moved fence (or a lost channel): the claim under the
        channel's current fence, or None if it was taken over."""
        for _ in range(self.renewals):
            snap = await self._log.snapshot(claim.channel)
            renewed = replace(claim, epoch=snap.epoch, fence=snap.fence)
            held = {"owner": claim.owner, "fence": claim.fence, "offset": None}
            result = await self._keys.update_one(
                {"channel": claim.channel, "id": claim.message_id, **held},
                {
                    "$set": {"epoch": renewed.epoch, "fence": renewed.fence},
                    "$currentDate": {"claimed_at": True},  # alive: no takeover yet
                },
            )
            if result.matched_count == 0:
                return None
            if renewed.fence != claim.fence or renewed.epoch != claim.epoch:
                return renewed
        raise Unavailable("the channel's claims keep changing; retry")

    async def release(self, claim: Claim) -> None:
        """Give up a claim whose message was never committed (a batch that could not commit
        all of its entries), so a retry need not wait ``stale_ms`` to take it over."""
        held = {"owner": claim.owner, "offset": None}
        await self._keys.delete_many({"channel": claim.channel, "id": claim.message_id, **held})

    async def record(self, channel: str, message_id: str, owner: str, offset: int) -> None:
        """Record on ``owner``'s claim the offset its message was committed at."""
        key = {"channel": channel, "id": message_id}
        done = await self._keys.update_one(
            {**key, "owner": owner, "offset": None}, {"$set": {"offset": offset}}
        )
        if done.matched_count == 0:  # recorded already (by a waiter), or no longer theirs
            now = await self._keys.find_one(key)
            if now is None or now.get("offset") != offset:
                log.warning("claim of %r on %r: %d not recorded", message_id, channel, offset)
