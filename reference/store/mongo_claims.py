"""Idempotency claims of the MongoDB store: which publish stores a message id (IDM-2 to IDM-9).

Theory of operation
-------------------
A publish with an id first claims ``(channel, id)`` by inserting into ``idempotency`` (unique on
both), then inserts the message, then records its offset on the claim (``settle``). A publisher
that finds the key claimed returns the recorded offset as a duplicate, polling briefly while the
claim is still pending. A claim pending for over ten seconds belongs to a publisher that died:
it is taken over atomically (a replace conditioned on its owner), after checking whether the
dead publisher's message was in fact stored. A claim from another epoch, or older than the
window, is taken over the same way. A publish that fails after claiming leaves its claim pending
on purpose: whether its insert reached the server is unknown, and the takeover's check settles
it. Keys carry ``expires_at`` (a date) for a TTL index and ``expires_ms`` (the store clock) for
the checks, since the TTL monitor runs only once a minute. Keys are unique on ``(channel, id)``
fields rather than on a ``{channel, id}`` ``_id`` because mongomock's TTL emulation cannot
delete documents whose ``_id`` is a document.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from reference.core.errors import Unavailable
from reference.core.model import AppendResult
from reference.store.base import Clock
from reference.store.mongo_collection import Collection, Document


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Claims:
    """The ``idempotency`` collection of a ``MongoStore``, and the messages it checks."""

    #: How often a publisher polls a pending claim, and for how long at most.
    poll_s: float = 0.01
    wait_s: float = 2.0
    #: A claim pending for longer than this belongs to a publisher that died.
    stale_ms: int = 10_000

    def __init__(
        self,
        keys: Collection,
        messages: Collection,
        *,
        clock: Clock,
        window_s: int,
        duplicate: tuple[type[Exception], ...],
    ) -> None:
        self._keys = keys
        self._messages = messages
        self._clock = clock
        self._window_s = window_s
        self._dup = duplicate

    async def create_indexes(self) -> None:
        await self._keys.create_index([("channel", 1), ("id", 1)], name="key", unique=True)
        await self._keys.create_index([("expires_at", 1)], name="ttl", expireAfterSeconds=0)

    async def claim(
        self, channel: str, epoch: str, message_id: str, now: int
    ) -> AppendResult | str:
        """Claim ``(channel, message_id)`` for this publish and return the claim's owner
        token, or the earlier publish of this id as a duplicate (IDM-6, IDM-2)."""
        owner = secrets.token_hex(8)
        expires_ms = now + self._window_s * 1000
        claim = {
            "channel": channel,
            "id": message_id,
            "epoch": epoch,
            "owner": owner,
            "offset": None,
            "claimed_at": now,
            "expires_ms": expires_ms,
            "expires_at": _utc(expires_ms),  # for the TTL index
        }
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while True:
            try:
                await self._keys.insert_one(dict(claim))
                return owner
            except self._dup:
                pass
            old = await self._keys.find_one({"channel": channel, "id": message_id})
            if old is None:
                continue  # expired or released in between: claim again
            now = self._clock()
            if old["epoch"] == epoch and old["expires_ms"] > now:  # IDM-9: not across epochs
                if old["offset"] is not None:  # IDM-6, IDM-5: the key outlives the message
                    return AppendResult(channel, old["offset"], epoch, message_id, duplicate=True)
                if now - old["claimed_at"] <= self.stale_ms:
                    if asyncio.get_running_loop().time() >= deadline:
                        raise Unavailable(
                            "a publish with the same id is still in progress; retry later"
                        )
                    await asyncio.sleep(self.poll_s)  # IDM-2: wait for its offset
                    continue
                stored = await self._recover(channel, epoch, message_id, old)
                if stored is not None:
                    return stored
            # Expired, from a lost epoch, or abandoned: take it over unless someone else did.
            taken = await self._keys.replace_one(
                {"channel": channel, "id": message_id, "owner": old["owner"]}, dict(claim)
            )
            if taken.matched_count == 1:
                return owner

    async def settle(self, channel: str, message_id: str, owner: str, offset: int) -> None:
        """Record on ``owner``'s claim the offset its message was stored at."""
        key = {"channel": channel, "id": message_id, "owner": owner}
        await self._keys.update_one(key, {"$set": {"offset": offset}})

    async def _recover(
        self, channel: str, epoch: str, message_id: str, claim: Document
    ) -> AppendResult | None:
        """Complete an abandoned claim whose publisher stored its message before dying."""
        query = {
            "channel": channel,
            "epoch": epoch,
            "id": message_id,
            "ts": {"$gte": claim["claimed_at"]},
        }
        offset_only = {"offset": 1, "_id": 0}
        found = await self._messages.find(query, offset_only).sort("offset", 1).limit(1).to_list(1)
        if not found:
            return None
        offset = int(found[0]["offset"])
        await self.settle(channel, message_id, claim["owner"], offset)
        return AppendResult(channel, offset, epoch, message_id, duplicate=True)
