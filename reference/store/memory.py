"""The embedded in-process store: plain Python data structures, nothing to set up.

It serves the zero-setup default and the benchmarks, so every operation is O(1) or O(batch).
It is not durable: a new process means a new store and therefore new epochs (DUR-3, EPO-3).

Concurrency safety comes from the event loop: no method awaits anything, so every
read-modify-write runs to completion before another task can observe the store.
"""

from __future__ import annotations

import bisect
import heapq
import secrets
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from reference.core import positions
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

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reference.core.batch_publish import BatchEntry
    from reference.core.payloads import RetentionUpdate


def _ts(message: Message) -> int:
    return message.ts


@dataclass(slots=True)
class _Channel:
    """One channel's history: ``messages[lo:]`` are retained, ``messages[i]`` has offset
    ``base + i``. Trimming moves ``lo``; the dead prefix is dropped once it is the larger half,
    so trimming costs amortised O(1) per message and offsets never move."""

    epoch: str
    messages: list[Message] = field(default_factory=list)
    base: int = 1
    lo: int = 0
    head: int = 0
    last_ts: int = 0
    retention: Retention = field(default_factory=Retention)
    # IDM-*: id -> (offset, expires_at ms), and the same keys in order of expiry
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)
    expiry: deque[tuple[int, str]] = field(default_factory=deque)

    @property
    def first(self) -> int | None:
        return self.base + self.lo if self.lo < len(self.messages) else None

    def drop_before(self, offset: int) -> None:
        """Forget every message below ``offset`` (a prefix only: RET-4)."""
        self.lo = max(self.lo, min(offset - self.base, len(self.messages)))
        if self.lo > len(self.messages) // 2:
            del self.messages[: self.lo]
            self.base += self.lo
            self.lo = 0

    def expire_age(self, now: int) -> None:
        """Drop messages older than ``max_age_s`` (RET-3); ``ts`` never decreases (MSG-5), so
        the old ones are a prefix and a bisection finds its end."""
        max_age_s = self.retention.max_age_s
        if max_age_s is None or self.lo >= len(self.messages):
            return
        cutoff = now - max_age_s * 1000
        if self.messages[self.lo].ts >= cutoff:
            return
        keep = bisect.bisect_left(self.messages, cutoff, lo=self.lo, key=_ts)
        self.drop_before(self.base + keep)

    def expire_count(self) -> None:
        """Keep at most the ``max_messages`` newest messages (RET-12)."""
        max_messages = self.retention.max_messages
        if max_messages is not None:
            self.drop_before(self.head - max_messages + 1)

    def expire_ids(self, now: int) -> None:
        """Forget idempotency keys whose window has passed."""
        expiry = self.expiry
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            entry = self.ids.get(key)
            # The key may have been used again after it expired: keep the newer entry.
            if entry is not None and entry[1] <= now:
                del self.ids[key]

    def state(self) -> ChannelState:
        return ChannelState(self.epoch, self.first, self.head)


class MemoryStore(Store):
    """A non-durable, non-shared store held in this process's memory."""

    durable = False
    shared = False

    def __init__(self, *, clock: Clock = wall_clock_ms, idempotency_window_s: int = 3600) -> None:
        super().__init__(clock=clock, idempotency_window_s=idempotency_window_s)
        self._channels: dict[str, _Channel] = {}
        self._sessions: dict[str, Session] = {}
        self._by_token_hash: dict[str, str] = {}
        self._cursors: dict[str, dict[str, Cursor]] = {}
        # (expires_at, session_id) of every registration, so expired sessions can be dropped
        # instead of accumulating for the life of the process.
        self._expiries: list[tuple[int, str]] = []
        self._message_ids = message_ids()

    def _channel(self, channel: str) -> _Channel:
        ch = self._channels.get(channel)
        if ch is None:
            # CHN-3, EPO-4: 64 random bits, so a new store never repeats an old epoch (DUR-3)
            ch = self._channels[channel] = _Channel(secrets.token_hex(8))
        return ch

    # --- channels ---------------------------------------------------------------------------

    async def state(self, channel: str) -> ChannelState:
        ch = self._channel(channel)
        ch.expire_age(self.clock())
        return ch.state()

    async def append(self, channel: str, payload: Payload, message_id: str | None) -> AppendResult:
        ch = self._channel(channel)
        now = self.clock()
        result = self._add(channel, ch, payload, message_id, now)
        ch.expire_count()
        ch.expire_age(now)
        return result

    async def append_batch(
        self, channel: str, entries: Sequence[BatchEntry]
    ) -> tuple[AppendResult, ...]:
        ch = self._channel(channel)
        now = self.clock()
        # Atomic because nothing here awaits (BAT-3); retention once, after all (BAT-11).
        results = tuple(self._add(channel, ch, e.payload, e.id, now) for e in entries)
        ch.expire_count()
        ch.expire_age(now)
        return results

    def _add(
        self, channel: str, ch: _Channel, payload: Payload, message_id: str | None, now: int
    ) -> AppendResult:
        """Store one message at ``head + 1`` unless its ``id`` is a duplicate; no retention."""
        keyed = message_id is not None
        if message_id is not None:
            ch.expire_ids(now)
            known = ch.ids.get(message_id)
            if known is not None and known[1] > now:  # IDM-6, IDM-5: keys outlive retention
                return AppendResult(channel, known[0], ch.epoch, message_id, duplicate=True)
        else:
            message_id = next(self._message_ids)
        ts = ch.last_ts = max(now, ch.last_ts)  # MSG-4, MSG-5
        offset = ch.head + 1  # OFF-2
        if not ch.messages:
            ch.base = offset
        ch.messages.append(Message(offset, message_id, ts, payload.value, payload.size))
        ch.head = offset
        if keyed:
            expires_at = now + self.idempotency_window_s * 1000
            ch.ids[message_id] = (offset, expires_at)
            ch.expiry.append((expires_at, message_id))
        return AppendResult(channel, offset, ch.epoch, message_id, duplicate=False)

    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        ch = self._channel(channel)
        ch.expire_age(self.clock())  # RET-3
        state = ch.state()
        if state.first is None or start < state.first or start > ch.head or limit <= 0:
            return ReadResult(state, ())
        i = start - ch.base
        return ReadResult(state, tuple(ch.messages[i : i + limit]))  # HIS-5

    async def set_retention(self, channel: str, update: RetentionUpdate) -> Retention:
        ch = self._channel(channel)
        now = self.clock()
        # RET-8: what the limits in force have removed stays removed, even if nothing read the
        # channel since and the update lifts them.
        ch.expire_age(now)
        retention = ch.retention
        if update.sets_max_messages():  # RET-1: an omitted member keeps its value
            retention = replace(retention, max_messages=update.max_messages)
        if update.sets_max_age():
            retention = replace(retention, max_age_s=update.max_age_s)
        ch.retention = retention
        ch.expire_count()  # RET-6: applies at once
        ch.expire_age(now)
        return retention

    # --- sessions and cursors ---------------------------------------------------------------

    def _forget_expired_sessions(self) -> None:
        """Drop sessions past their expiry. Invisible on the wire: an expired session already
        counts as absent everywhere (SES-1, SES-10, SES-13)."""
        now = self.clock()
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, session_id = heapq.heappop(self._expiries)
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at == expires_at:
                self._sessions.pop(session_id)
                self._cursors.pop(session_id, None)
                if self._by_token_hash.get(session.token_hash) == session_id:
                    del self._by_token_hash[session.token_hash]

    async def upsert_session(self, session: Session) -> bool:
        self._forget_expired_sessions()
        heapq.heappush(self._expiries, (session.expires_at, session.session_id))
        old = self._sessions.get(session.session_id)
        if old is not None and self._by_token_hash.get(old.token_hash) == old.session_id:
            del self._by_token_hash[old.token_hash]  # SES-4: the old token stops working
        created = old is None or not old.is_live(self.clock())
        if old is not None and not created:
            session = replace(session, incarnation=old.incarnation)  # SES-2: the same session
        else:
            # SES-1, SES-17: an expired session counts as absent and loses its cursors
            self._cursors.pop(session.session_id, None)
        self._sessions[session.session_id] = session
        self._by_token_hash[session.token_hash] = session.session_id
        return created

    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        session_id = self._by_token_hash.get(token_hash)
        return None if session_id is None else self._sessions.get(session_id)

    async def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def delete_session(self, session_id: str) -> bool:
        old = self._sessions.pop(session_id, None)
        self._cursors.pop(session_id, None)
        if old is None:
            return False
        if self._by_token_hash.get(old.token_hash) == session_id:
            del self._by_token_hash[old.token_hash]
        return old.is_live(self.clock())  # SES-13

    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        return self._cursors.get(session_id, {}).get(channel)

    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        cursors = self._cursors.setdefault(session_id, {})
        # ACK-4, ACK-7 as the core states them; atomic because nothing here awaits.
        new = cursors[channel] = positions.advance_cursor(cursors.get(channel), epoch, offset)
        return new
