"""Whole-trace checkers: name what went wrong the way published analyses of queues do.

Each checker reads a :class:`~conformance.trace.Trace` and reports :class:`Anomaly`s:

==================  ==========================================================  =======
anomaly             meaning                                                     clause
==================  ==========================================================  =======
lost                an acknowledged publish never delivered to a subscription   HND-2
                    that was still open at the end and whose range covers it
duplicate           one subscription delivered an offset twice                  ORD-3
reorder             one subscription delivered an offset below an earlier one   ORD-2
gap                 one subscription skipped offsets (or did not start at from) ORD-2
divergence          two observers saw different id/data at one offset, or a     CNS-1
                    publish's reply named an offset that holds something else
phantom             a delivered message that nobody published                   MSG-2
duplicated-publish  one publish stored at two offsets                           PUB-4
duplicate-id        one publisher id at two offsets (targets with idempotency)  IDM-6
leak                a delivery the socket's grants did not allow, or one after  ACC-5
                    its session was deleted (1 s grace, SES-15)
unsignalled-loss    a subscribe answered from a later offset than asked,        SIG-1
                    without saying ``truncated``
==================  ==========================================================  =======

``conformance.composition`` adds the anomalies two rules meeting produce (an offset given
twice, a ``head``, ``first`` or cursor going back, a delivery after a revocation or a
deletion); :func:`check` runs them all.

An indeterminate publish (its reply lost to a cut) may be stored or not, but at most once:
``duplicated-publish`` covers it. Checks are conservative: they only report what the spec
rules out whatever the timing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from conformance.anomaly import ANOMALY_CLAUSES, REVOCATION_GRACE_S, Anomaly
from conformance.composition import COMPOSITION_CHECKERS
from conformance.protocol import grants_allow
from conformance.trace import Span, Trace, canonical

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["ANOMALY_CLAUSES", "Anomaly", "check", "check_log"]


def _spans(trace: Trace) -> Iterable[Span]:
    return (span for span in trace.spans if isinstance(span.start, int))


def check_order(trace: Trace) -> list[Anomaly]:
    """duplicate, reorder, gap: within each subscription, offsets run from, from+1, ..."""
    found: list[Anomaly] = []
    for span in _spans(trace):
        expected = span.start
        seen: set[object] = set()
        for delivery in span.deliveries:
            where = f"{span.actor} on {span.channel} (from {span.start})"
            offset = delivery.offset
            if offset in seen:
                found.append(
                    Anomaly("duplicate", f"{where}: offset {offset} again", (delivery.seq,))
                )
                break
            if not isinstance(offset, int) or not isinstance(expected, int):
                break
            if offset < expected:
                after = f"after {expected - 1}" if seen else f"first, below its from {span.start}"
                found.append(Anomaly("reorder", f"{where}: {offset} {after}", (delivery.seq,)))
                break
            if offset > expected:
                found.append(
                    Anomaly("gap", f"{where}: {offset} where {expected} was due", (delivery.seq,))
                )
                break
            seen.add(offset)
            expected = offset + 1
    return found


def check_lost(trace: Trace) -> list[Anomaly]:
    """lost: every acknowledged publish reaches the subscriptions still open at the end."""
    found: list[Anomaly] = []
    for span in _spans(trace):
        if not span.live:
            continue
        delivered = {d.offset for d in span.deliveries}
        for publish in trace.publishes:
            covered = (
                publish.outcome == "ok"
                and publish.channel == span.channel
                and publish.epoch == span.epoch
                and isinstance(publish.offset, int)
                and isinstance(span.start, int)
                and publish.offset >= span.start
            )
            if covered and publish.offset not in delivered:
                found.append(
                    Anomaly(
                        "lost",
                        f"{publish.actor}'s publish at {span.channel}#{publish.offset} was "
                        f"acknowledged but never reached {span.actor} (subscribed from "
                        f"{span.start}, still open)",
                        (publish.seq, span.opened_seq),
                    )
                )
    return found


def check_consistency(trace: Trace) -> list[Anomaly]:
    """divergence and phantom: one content per offset, and only published content."""
    found: list[Anomaly] = []
    at_offset: dict[tuple[str, object, object], tuple[object, str, int]] = {}
    for publish in trace.publishes:
        if publish.outcome == "ok" and not publish.duplicate:
            stored: tuple[str, object, object] = (publish.channel, publish.epoch, publish.offset)
            at_offset.setdefault(stored, (publish.stored_id, canonical(publish.data), publish.seq))
    published: defaultdict[str, set[str]] = defaultdict(set)
    for publish in trace.publishes:
        published[publish.channel].add(canonical(publish.data))
    reported: set[tuple[str, object, object]] = set()
    for delivery in trace.deliveries:
        key: tuple[str, object, object] = (delivery.channel, delivery.epoch, delivery.offset)
        content = canonical(delivery.data)
        if content not in published[delivery.channel] and key not in reported:
            reported.add(key)
            found.append(
                Anomaly(
                    "phantom",
                    f"{delivery.actor} got {delivery.channel}#{delivery.offset} = {content[:80]}, "
                    "which nobody published",
                    (delivery.seq,),
                )
            )
            continue
        first = at_offset.setdefault(key, (delivery.id, content, delivery.seq))
        if (first[0], first[1]) != (delivery.id, content) and key not in reported:
            reported.add(key)
            found.append(
                Anomaly(
                    "divergence",
                    f"{delivery.channel}#{delivery.offset}: {delivery.actor} got id "
                    f"{delivery.id!r} {content[:60]}, earlier seen as id {first[0]!r} "
                    f"{first[1][:60]}",
                    (first[2], delivery.seq),
                )
            )
    return found


def check_stored_once(trace: Trace) -> list[Anomaly]:
    """duplicated-publish: one publish's data stored at one offset only."""
    found: list[Anomaly] = []
    offsets_of: defaultdict[tuple[str, object, str], dict[object, int]] = defaultdict(dict)
    for delivery in trace.deliveries:
        key = (delivery.channel, delivery.epoch, canonical(delivery.data))
        offsets_of[key].setdefault(delivery.offset, delivery.seq)
    data_counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    for publish in trace.publishes:
        data_counts[(publish.channel, canonical(publish.data))] += 1
    for (channel, _epoch, data), offsets in offsets_of.items():
        if len(offsets) < 2 or data_counts[(channel, data)] > 1:
            continue  # once, or the same data published more than once on purpose
        found.append(
            Anomaly(
                "duplicated-publish",
                f"{channel}: one publish ({data[:60]}) stored at offsets "
                f"{sorted(o for o in offsets if isinstance(o, int))}",
                tuple(offsets.values()),
            )
        )
    return found


def check_idempotency(trace: Trace) -> list[Anomaly]:
    """duplicate-id: a publisher's id names one message per channel and epoch (IDM-6).

    Judged from the publish answers (two stored offsets for one id, or a duplicate answered
    with another offset than the original's) and from deliveries (one id at two offsets).
    Only for targets that claim ``idempotency``, and assuming the trace is shorter than
    the idempotency window.
    """
    found: list[Anomaly] = []
    stored: defaultdict[tuple[str, object, str], dict[object, int]] = defaultdict(dict)
    for publish in trace.publishes:
        if publish.outcome == "ok" and publish.requested_id is not None:
            answered: tuple[str, object, str] = (
                publish.channel,
                publish.epoch,
                publish.requested_id,
            )
            stored[answered].setdefault(publish.offset, publish.seq)  # a duplicate adds none
    # A delivered id counts only on a message some publish of that id sent: a server-assigned
    # id may equal a publisher's (IDM-8), and then names another message.
    requested: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for publish in trace.publishes:
        if publish.requested_id is not None:
            requested[(publish.channel, publish.requested_id)].add(canonical(publish.data))
    for delivery in trace.deliveries:
        sent = requested.get((delivery.channel, str(delivery.id)))
        if sent is not None and canonical(delivery.data) in sent:
            key = (delivery.channel, delivery.epoch, str(delivery.id))
            stored[key].setdefault(delivery.offset, delivery.seq)
    for (channel, _epoch, message_id), offsets in stored.items():
        if len(offsets) > 1:
            found.append(
                Anomaly(
                    "duplicate-id",
                    f"{channel}: id {message_id!r} answered or delivered at offsets "
                    f"{sorted(o for o in offsets if isinstance(o, int))}",
                    tuple(offsets.values()),
                )
            )
    return found


def check_access(trace: Trace) -> list[Anomaly]:
    """leak: deliveries the socket's session grants did not allow, or after its deletion."""
    found: list[Anomaly] = []
    for delivery in trace.deliveries:
        session = trace.session_at(delivery.actor, delivery.seq)
        if session is None:
            continue  # a connection the trace cannot attribute (token from elsewhere)
        window = trace.grants_between(session, delivery.t - REVOCATION_GRACE_S, delivery.t)
        if not any(
            grants is not None and grants_allow(grants, delivery.channel, "subscribe")
            for grants in window
        ):
            found.append(
                Anomaly(
                    "leak",
                    f"{delivery.actor} got {delivery.channel}#{delivery.offset} although its "
                    f"session {session} had no subscribe grant for it (or was deleted more "
                    f"than {REVOCATION_GRACE_S:g} s before)",
                    (delivery.seq,),
                )
            )
    return found


def check_signalled(trace: Trace) -> list[Anomaly]:
    """unsignalled-loss: a subscription that starts later than asked must say ``truncated``."""
    found: list[Anomaly] = []
    for span in trace.spans:
        asked = span.requested
        if isinstance(asked, int) and span.start != asked and span.truncated is None:
            found.append(
                Anomaly(
                    "unsignalled-loss",
                    f"{span.actor} subscribed to {span.channel} from {asked} and was answered "
                    f"from {span.start} without 'truncated'",
                    (span.opened_seq,),
                )
            )
    return found


CHECKERS: tuple[Callable[[Trace], list[Anomaly]], ...] = (
    check_order,
    check_lost,
    check_consistency,
    check_stored_once,
    check_access,
    check_signalled,
    *COMPOSITION_CHECKERS,
)


def check(trace: Trace, *, idempotency: bool = True) -> list[Anomaly]:
    """Every anomaly of ``trace``, ordered by where the log first shows it.

    ``idempotency``: the target claims the feature, so repeated ids must not store twice.
    """
    checkers = [*CHECKERS, *([check_idempotency] if idempotency else [])]
    found = [anomaly for checker in checkers for anomaly in checker(trace)]
    return sorted(found, key=lambda a: min(a.seqs, default=0))


def check_log(entries: Iterable[object], *, idempotency: bool = True) -> list[Anomaly]:
    """Check a case's log entries (``EventLog.entries``)."""
    return check(Trace.from_log(list(entries)), idempotency=idempotency)  # type: ignore[arg-type]
