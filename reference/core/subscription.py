"""The subscription lifecycle: a state table and the decision taken after each store read.

Theory of operation
-------------------
A subscription delivers one channel to one socket, starting at a resolved offset (spec §6.1).
It holds no messages of its own: the store is the single source of truth, and the
subscription is only an offset ``next`` into it. Each turn of its loop

1. samples the channel's notifier version,
2. reads at most one batch from the store at ``next``,
3. asks ``decide`` what that read means:

   * ``Deliver``: messages start at ``next``; emit them as one ``replay:messages`` event and
     advance ``next`` past them (ORD-1, ORD-2);
   * ``CaughtUp``: ``next`` is ``head + 1``; wait until the notifier's version moves past the
     one sampled in step 1, then read again;
   * ``End``: ``next`` is no longer retained (SIG-2) or the epoch changed (SIG-3); tell the
     client with ``replay:unsubscribed`` instead of skipping anything (SIG-1).

History and live delivery are the same loop, so the handoff has no seam to lose or repeat a
message at (HND-1, HND-2): a publish racing the subscribe has an offset above the resolved
``head`` and is simply read when ``next`` reaches it. Sampling the version before reading
closes the race between "read found nothing" and "start waiting": a publish in between moves
the version, and the wait returns at once.

Before emitting, the loop waits while the socket's send queue is above its high-water mark
(FLW-2), so a slow reader holds an offset, not a growing buffer; if retention overtakes it
meanwhile, the next read ends it with ``truncated``.

The table ``TRANSITIONS`` is the lifecycle; the shell moves a subscription only through
``advance``, so an impossible move (a delivery after the end, say) fails loudly.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from reference.core.batching import cut_batch
from reference.core.model import Message, ReadResult


class State(enum.Enum):
    STARTING = "starting"  # resolved; the reply (or replay:subscribed) is not yet sent
    READING = "reading"  # reading batches from the store and emitting them
    WAITING = "waiting"  # caught up with the head; waiting for it to move
    DRAINING = "draining"  # the socket's send queue is full; waiting for it to drain
    ENDED = "ended"  # final


class Trigger(enum.Enum):
    ANNOUNCED = "announced"  # the ok reply or replay:subscribed is on its way
    CAUGHT_UP = "caught_up"
    HEAD_MOVED = "head_moved"
    BACKLOGGED = "backlogged"
    DRAINED = "drained"
    # Endings the client asked for, or caused by losing the connection: no event is sent.
    UNSUBSCRIBED = "unsubscribed"
    DISCONNECTED = "disconnected"
    # Endings the server decides: each is announced with replay:unsubscribed.
    TRUNCATED = "truncated"
    EPOCH_CHANGED = "epoch_changed"
    REVOKED = "revoked"
    FAILED = "failed"  # an unexpected server error: reported as "internal" rather than skipping


_LIVE = (State.STARTING, State.READING, State.WAITING, State.DRAINING)
_ENDINGS = (
    Trigger.UNSUBSCRIBED,
    Trigger.DISCONNECTED,
    Trigger.TRUNCATED,
    Trigger.EPOCH_CHANGED,
    Trigger.REVOKED,
    Trigger.FAILED,
)

TRANSITIONS: Mapping[tuple[State, Trigger], State] = {
    (State.STARTING, Trigger.ANNOUNCED): State.READING,
    (State.READING, Trigger.CAUGHT_UP): State.WAITING,
    (State.WAITING, Trigger.HEAD_MOVED): State.READING,
    (State.READING, Trigger.BACKLOGGED): State.DRAINING,
    (State.DRAINING, Trigger.DRAINED): State.READING,
    **{(state, ending): State.ENDED for state in _LIVE for ending in _ENDINGS},
}

# The reason a server-decided ending reports in replay:unsubscribed (§7.3).
UNSUBSCRIBED_REASONS: Mapping[Trigger, str] = {
    Trigger.TRUNCATED: "truncated",
    Trigger.EPOCH_CHANGED: "epoch_changed",
    Trigger.REVOKED: "revoked",
    Trigger.FAILED: "internal",
}


class IllegalTransition(RuntimeError):
    """A subscription was moved in a way the lifecycle does not allow: a server bug."""


def advance(state: State, trigger: Trigger) -> State:
    """The state after ``trigger``; raises ``IllegalTransition`` when the table has no entry."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.value} is not allowed in {state.value}") from None


@dataclass(frozen=True, slots=True)
class Deliver:
    batch: tuple[Message, ...]

    @property
    def next_offset(self) -> int:
        return self.batch[-1].offset + 1


@dataclass(frozen=True, slots=True)
class CaughtUp:
    pass


@dataclass(frozen=True, slots=True)
class End:
    trigger: Trigger  # TRUNCATED or EPOCH_CHANGED


Decision = Deliver | CaughtUp | End


def decide(
    next_offset: int, epoch: str, read: ReadResult, *, max_count: int, max_bytes: int
) -> Decision:
    """What a subscription at ``next_offset`` in ``epoch`` does with one store read."""
    if read.state.epoch != epoch:
        return End(Trigger.EPOCH_CHANGED)  # SIG-3
    if next_offset < read.state.lowest:
        return End(Trigger.TRUNCATED)  # SIG-2
    if not read.messages:
        return CaughtUp()
    if read.messages[0].offset != next_offset:
        # A store that returns anything else is broken; never paper over it (SIG-1).
        raise AssertionError(
            f"store returned offset {read.messages[0].offset} for a read at {next_offset}"
        )
    return Deliver(cut_batch(read.messages, max_count=max_count, max_bytes=max_bytes))
