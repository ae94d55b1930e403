"""Whole-trace checkers for what two rules meeting break, where no single case looks.

==================  ==========================================================  =======
anomaly             meaning                                                     clause
==================  ==========================================================  =======
reassigned          two acknowledged publishes, different messages, answered    OFF-3
                    with one offset in one epoch
rewritten           one offset delivered with two different ``ts`` (a different  OFF-3
                    ``id`` or ``data`` is ``divergence``)
head-regressed      a ``head`` below one reported or assigned before it         OFF-4
first-regressed     a ``first`` below one reported before it                    OFF-4
resurrected         a subscription answered from below a ``first`` reported     SUB-6
                    before it (a removed message is gone for good, RET-8)
cursor-regressed    an ack answered with a cursor below one answered before     ACK-4
after-revoke        a delivery on a socket after its subscription ended         ACC-6
                    ``revoked``, before any new subscription of the channel
after-delete        a delivery to a socket more than 1 s after its session was  SES-15
                    deleted, even if the session id was registered again
==================  ==========================================================  =======

"Before" is conservative (spec §10.13): a reading binds a later one only when the later one's
request was sent after the earlier arrived, on the same socket (one node answers both), or at
least :data:`CLUSTER_LAG_S` later on any other (a cluster's nodes may lag by that much).
Everything is within one channel and epoch; cursors also within one session, counted anew
when a deletion or a 201 starts another session under the same id (SES-16, SES-17).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import TYPE_CHECKING

from conformance.anomaly import REVOCATION_GRACE_S, Anomaly
from conformance.trace import Reading, Trace, canonical

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "CLUSTER_LAG_S",
    "COMPOSITION_CHECKERS",
    "check_after_delete",
    "check_after_revoke",
    "check_assigned_once",
    "check_monotonic",
]

CLUSTER_LAG_S = 1.0  # §10.13: other nodes report epoch, first, head within 1 s (CLU-3, CLU-4)

# A reading kind -> the kinds of earlier readings that bound it from below.
BOUNDS: dict[str, tuple[str, ...]] = {
    "head": ("head", "assigned", "delivered"),
    "first": ("first",),
    "from": ("first",),  # nothing below first can be started from (SUB-6, SUB-7, SUB-11)
    "cursor": ("cursor",),
}
REGRESSION_KIND = {
    "head": "head-regressed",
    "first": "first-regressed",
    "from": "resurrected",
    "cursor": "cursor-regressed",
}
# The group each kind of reading belongs to, and the kinds judged in each group.
FAMILY = {
    "head": "head",
    "assigned": "head",
    "delivered": "head",
    "first": "first",
    "from": "first",
}
JUDGED = {"head": ("head",), "first": ("first", "from"), "cursor": ("cursor",)}


def check_assigned_once(trace: Trace) -> list[Anomaly]:
    """reassigned and rewritten: one message per offset in an epoch, never changed (OFF-3)."""
    found: list[Anomaly] = []
    answered: dict[tuple[str, object, int], tuple[object, str, int]] = {}
    for publish in trace.publishes:
        if publish.outcome != "ok" or publish.duplicate or not isinstance(publish.offset, int):
            continue
        key = (publish.channel, publish.epoch, publish.offset)
        message = (publish.stored_id, canonical(publish.data), publish.seq)
        first = answered.setdefault(key, message)
        if first[:2] != message[:2]:
            found.append(
                Anomaly(
                    "reassigned",
                    f"{publish.channel}#{publish.offset} (epoch {publish.epoch}) answered to two "
                    f"publishes: id {first[0]!r} {first[1][:50]} and id {message[0]!r} "
                    f"{message[1][:50]}",
                    (first[2], publish.seq),
                )
            )
    stamped: dict[tuple[str, object, object], tuple[object, int]] = {}
    for delivery in trace.deliveries:
        key_d = (delivery.channel, delivery.epoch, delivery.offset)
        ts = delivery.message.get("ts")
        earlier = stamped.setdefault(key_d, (ts, delivery.seq))
        if earlier[0] != ts:
            found.append(
                Anomaly(
                    "rewritten",
                    f"{delivery.channel}#{delivery.offset}: {delivery.actor} got ts {ts!r}, "
                    f"earlier delivered with ts {earlier[0]!r}",
                    (earlier[1], delivery.seq),
                )
            )
            stamped[key_d] = (ts, delivery.seq)  # report each change once
    return found


class _Floor:
    """The highest value among readings that arrived by a time, overall and per actor."""

    def __init__(self, readings: Sequence[Reading]) -> None:
        self._all = self._prefix(sorted(readings, key=lambda r: r.t))
        by_actor: defaultdict[str, list[Reading]] = defaultdict(list)
        for reading in readings:
            # A delivery shows the offset exists, not that its node's reports have caught up
            # (another node answered the publish): it binds only after the lag.
            if reading.what != "delivered":
                by_actor[reading.actor].append(reading)
        self._actor = {a: self._prefix(sorted(rs, key=lambda r: r.t)) for a, rs in by_actor.items()}

    @staticmethod
    def _prefix(readings: list[Reading]) -> tuple[list[float], list[Reading]]:
        """Arrival times, and for each the reading of highest value arrived by then."""
        times: list[float] = []
        best: list[Reading] = []
        for reading in readings:
            top = best[-1] if best and best[-1].value >= reading.value else reading
            times.append(reading.t)
            best.append(top)
        return times, best

    @staticmethod
    def _at(prefix: tuple[list[float], list[Reading]], t: float) -> Reading | None:
        times, best = prefix
        index = bisect.bisect_right(times, t)
        return best[index - 1] if index else None

    def below(self, reading: Reading) -> Reading | None:
        """The earlier reading that binds ``reading`` and is higher than it, if any."""
        if reading.sent_t is None:
            return None  # an event: produced at some unknown time before it arrived
        candidates = [self._at(self._all, reading.sent_t - CLUSTER_LAG_S)]
        if reading.actor in self._actor:
            candidates.append(self._at(self._actor[reading.actor], reading.sent_t))
        bound = max((c for c in candidates if c is not None), key=lambda r: r.value, default=None)
        return bound if bound is not None and bound.value > reading.value else None


def _incarnation(trace: Trace, session: str | None, seq: int) -> int:
    """How many sessions the id ``session`` had started or ended by log position ``seq``."""
    return sum(
        1
        for change in trace.grant_changes
        if change.session_id == session
        and change.seq < seq
        and (change.grants is None or change.created)
    )


def _groups(trace: Trace) -> dict[tuple[object, ...], list[Reading]]:
    """Readings by what must not go back: (kind family, channel, epoch[, session])."""
    groups: defaultdict[tuple[object, ...], list[Reading]] = defaultdict(list)
    for reading in trace.readings:
        if reading.what == "cursor":
            life = (reading.session, _incarnation(trace, reading.session, reading.seq))
            groups[("cursor", reading.channel, reading.epoch, *life)].append(reading)
        else:
            groups[(FAMILY[reading.what], reading.channel, reading.epoch)].append(reading)
    return groups


def check_monotonic(trace: Trace) -> list[Anomaly]:
    """head-, first- and cursor-regressed, and resurrected: within an epoch none of them goes
    back, and no subscription starts below a ``first`` already reported."""
    found: list[Anomaly] = []
    for key, readings in _groups(trace).items():
        if key[2] is None or (key[0] == "cursor" and key[3] is None):
            continue  # no epoch (or no session) to compare within
        for kind in JUDGED[str(key[0])]:
            floor = _Floor([r for r in readings if r.what in BOUNDS[kind]])
            for reading in readings:
                if reading.what != kind:
                    continue  # an assigned offset bounds head, it is not one
                bound = floor.below(reading)
                if bound is None:
                    continue
                found.append(
                    Anomaly(
                        REGRESSION_KIND[kind],
                        f"{reading.actor} was told {reading.what} {reading.value} for "
                        f"{reading.channel} (epoch {reading.epoch}) after {bound.actor} saw "
                        f"{bound.what} {bound.value}",
                        (bound.seq, reading.seq),
                    )
                )
                break  # the first regression per group says it; the rest follow from it
    return found


def check_after_revoke(trace: Trace) -> list[Anomaly]:
    """after-revoke: nothing on a channel after its subscription ended ``revoked`` (ACC-6)."""
    found: list[Anomaly] = []
    for delivery in trace.unattributed:
        before = [
            span
            for span in trace.spans
            if span.actor == delivery.actor
            and span.channel == delivery.channel
            and span.opened_seq < delivery.seq
        ]
        last = max(before, key=lambda span: span.opened_seq, default=None)
        if last is not None and last.end == "unsubscribed:revoked":
            found.append(
                Anomaly(
                    "after-revoke",
                    f"{delivery.actor} got {delivery.channel}#{delivery.offset} after its "
                    "subscription ended 'revoked'",
                    (last.ended_seq or last.opened_seq, delivery.seq),
                )
            )
    return found


def _connection(trace: Trace, actor: str, seq: int) -> tuple[int, str | None] | None:
    """The socket's connection open at log position ``seq``: (seq of its connect, session)."""
    current = None
    for connection in trace.connections.get(actor, ()):
        if connection[0] > seq:
            break
        current = connection
    return current


def check_after_delete(trace: Trace) -> list[Anomaly]:
    """after-delete: a deleted session's sockets get nothing after the grace (SES-15).

    Unlike ``leak``, which asks whether the session id has grants, this holds when the id
    was registered again: that is a new session (SES-16), not the socket's.
    """
    found: list[Anomaly] = []
    deletions = [change for change in trace.grant_changes if change.grants is None]
    reported: set[tuple[str, int]] = set()
    read = {id(message) for message in trace.history_reads}  # answers, not replay:messages
    for delivery in trace.deliveries:
        if id(delivery) in read:
            continue
        connection = _connection(trace, delivery.actor, delivery.seq)
        if (
            connection is None
            or connection[1] is None
            or (delivery.actor, connection[0]) in reported
        ):
            continue
        for deletion in deletions:
            if (
                deletion.session_id == connection[1]
                and connection[0] < deletion.seq < delivery.seq
                and delivery.t - deletion.t > REVOCATION_GRACE_S
            ):
                reported.add((delivery.actor, connection[0]))
                found.append(
                    Anomaly(
                        "after-delete",
                        f"{delivery.actor} got {delivery.channel}#{delivery.offset} "
                        f"{delivery.t - deletion.t:.1f} s after its session {connection[1]} "
                        "was deleted",
                        (deletion.seq, delivery.seq),
                    )
                )
                break
    return found


COMPOSITION_CHECKERS: tuple[Callable[[Trace], list[Anomaly]], ...] = (
    check_assigned_once,
    check_monotonic,
    check_after_revoke,
    check_after_delete,
)
