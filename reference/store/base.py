"""The store interface every backend implements: the single source of truth.

The store assigns offsets atomically (OFF-1, PUB-4), keeps idempotency keys (IDM-*), applies
retention (RET-*), owns epochs (EPO-*), and keeps sessions and cursors. Everything above it
(the delivery loops, the HTTP and Socket.IO handlers) is stateless with respect to history, so
several server nodes sharing one store behave as one server (CLU-1).

The same contract test suite (``tests/test_store_contract.py``) runs against every
implementation.
"""

from __future__ import annotations

import abc
import itertools
import secrets
import time
from collections.abc import Callable, Iterator, Sequence

from reference.core.batch_publish import BatchEntry
from reference.core.model import (
    AppendResult,
    ChannelState,
    Cursor,
    Payload,
    ReadResult,
    Retention,
    Session,
)
from reference.core.payloads import RetentionUpdate

Clock = Callable[[], int]
"""Returns the current time in milliseconds since the Unix epoch."""


def wall_clock_ms() -> int:
    """The default clock: wall time in milliseconds."""
    return time.time_ns() // 1_000_000


def message_ids() -> Iterator[str]:
    """Ids for messages published without one (MSG-3), each store drawing from its own.

    Unique across processes (a random prefix per store) and within one (a counter), without
    uuid4's cost on every publish.
    """
    prefix = secrets.token_hex(6) + "-"
    for n in itertools.count(1):
        yield f"{prefix}{n:x}"


class Store(abc.ABC):
    """A replay store. All methods are safe to call concurrently from one event loop."""

    #: True when every acknowledged publish and every epoch survive a restart (INF-4, DUR-2).
    durable: bool = False
    #: True when several server processes may share this store (feature ``cluster``).
    shared: bool = False

    def __init__(self, *, clock: Clock = wall_clock_ms, idempotency_window_s: int = 3600) -> None:
        self.clock = clock
        self.idempotency_window_s = idempotency_window_s

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect, create indexes and the like. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once at shutdown."""

    # --- channels ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def state(self, channel: str) -> ChannelState:
        """The channel's current state; a never-used channel gets its epoch now (CHN-3, CHN-4)."""

    @abc.abstractmethod
    async def append(self, channel: str, payload: Payload, message_id: str | None) -> AppendResult:
        """Store one message at ``head + 1`` and return where it went.

        With ``message_id`` already given to a message of this channel's current epoch within
        the idempotency window, store nothing and return the original offset with
        ``duplicate=True`` (IDM-6, IDM-7, IDM-5, IDM-9). Without one, assign a unique id
        (MSG-3), which is no key (IDM-8). Apply retention after appending (RET-12).
        """

    @abc.abstractmethod
    async def append_batch(
        self, channel: str, entries: Sequence[BatchEntry]
    ) -> tuple[AppendResult, ...]:
        """Store ``entries`` at consecutive offsets from ``head + 1``, in order, as one atomic
        step (BAT-2, BAT-3), and return one result per entry, all of one epoch.

        Each entry is treated as ``append`` treats one message, in order, so an ``id`` an
        earlier entry of the batch gave is a duplicate of it (BAT-8). Retention applies once,
        after the whole batch (BAT-11).
        """

    @abc.abstractmethod
    async def read(self, channel: str, start: int, limit: int) -> ReadResult:
        """Up to ``limit`` consecutive messages from offset ``start``, with the state they
        belong to (HIS-5). Messages older than ``max_age_s`` are never returned (RET-3)."""

    @abc.abstractmethod
    async def set_retention(self, channel: str, update: RetentionUpdate) -> Retention:
        """Apply a retention update (RET-1) at once (RET-6) and return the settings now in
        force. What the settings in force removed stays removed, read or not (RET-8)."""

    # --- sessions and cursors ---------------------------------------------------------------

    @abc.abstractmethod
    async def upsert_session(self, session: Session) -> bool:
        """Create or replace a session atomically; True when it was created (SES-1 to SES-3).

        Replacing keeps the session's cursors (SES-2), whatever the new ``client_id``
        (SES-18). A session whose ``expires_at`` has passed counts as absent: it is replaced by
        a new one, without cursors (SES-17).
        """

    @abc.abstractmethod
    async def session_by_token_hash(self, token_hash: str) -> Session | None:
        """The live or expired session whose current token has this hash, if any."""

    @abc.abstractmethod
    async def session(self, session_id: str) -> Session | None:
        """The session with this id, live or expired, if any."""

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and its cursors; False when there was no live session (SES-13)."""

    @abc.abstractmethod
    async def cursor(self, session_id: str, channel: str) -> Cursor | None:
        """The session's cursor on a channel, whatever its epoch."""

    @abc.abstractmethod
    async def advance_cursor(
        self, session_id: str, channel: str, epoch: str, offset: int
    ) -> Cursor:
        """Set the cursor to ``max(cursor, offset)`` in ``epoch`` atomically (ACK-4); a cursor
        of another epoch is replaced (ACK-7)."""
