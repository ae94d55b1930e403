"""What one client received, channel by channel, and the order checks made as it arrives.

A :class:`Stream` is everything a client received about one channel; its ``subscriptions``
are the client's :class:`~conformance.spans.Span`\\ s on it. :class:`StreamBook` files each
``replay:messages`` batch through a :class:`~conformance.spans.SpanBook` and checks it where it
lands: ``from <= head + 1`` (SUB-12), the subscription's epoch (DLV-1), at most ``max_batch``
messages (DLV-2), offsets from ``from`` up by one (ORD-1..3), the subscribe reply first
(SUB-13), nothing outside a subscription (UNS-3, UNS-6, CON-4). Each problem goes to the
``report`` callback it was given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.spans import Delivery, Placement, Span, SpanBook
from conformance.text import ranges

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Stream", "StreamBook"]


@dataclass(eq=False)
class Stream:
    """Everything one client received about one channel."""

    channel: str
    subscriptions: list[Span]  # the client's spans on the channel, oldest first
    received: list[dict[str, Any]] = field(default_factory=list)  # all messages, arrival order
    unsubscribed: list[dict[str, Any]] = field(default_factory=list)  # replay:unsubscribed

    @property
    def current(self) -> Span | None:
        """The live subscription, if any."""
        last = self.subscriptions[-1] if self.subscriptions else None
        return last if last is not None and last.live else None

    @property
    def offsets(self) -> list[int]:
        """Offsets of every message received on the channel, in arrival order."""
        return [m["offset"] for m in self.received if isinstance(m.get("offset"), int)]


class StreamBook:
    """One client's streams, by channel: opens and ends subscriptions, files and checks batches.

    ``report(clause, expected, received, channel)`` records a violation. Every method is a
    plain function (no ``await``), so that the client's handlers keep the arrival order.
    """

    def __init__(
        self,
        report: Callable[[str, str, str, str | None], None],
        actor: str,
        max_batch: int | None = None,
    ) -> None:
        self.spans = SpanBook(actor)
        self.streams: dict[str, Stream] = {}
        self.max_batch = max_batch
        self._report = report
        self._broken: set[Span] = set()  # an order violation was recorded: later ones echo it

    def stream(self, channel: str) -> Stream:
        """The :class:`Stream` of ``channel`` (created empty if nothing arrived yet)."""
        if channel not in self.streams:
            self.streams[channel] = Stream(channel, self.spans.spans(channel))
        return self.streams[channel]

    def open(
        self,
        channel: str,
        start: Mapping[str, Any],
        *,
        seq: int,
        origin: str,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        """Start a subscription from a subscribe reply or a ``replay:subscribed`` payload;
        batches that arrived before the reply (SUB-13) are checked into it now."""
        self.stream(channel)
        span, held = self.spans.open(channel, start, seq=seq, origin=origin, request=request)
        first, head = span.start, span.head
        if isinstance(first, int) and isinstance(head, int) and first > head + 1:
            self._report("SUB-12", "from <= head + 1", f"from {first}, head {head}", channel)
        at = 0
        for _, batch in itertools.groupby(held, key=lambda d: d.seq):
            deliveries = list(batch)
            self._check(span, deliveries[0].epoch, at, len(deliveries))
            at += len(deliveries)

    def end(self, channel: str, why: str, seq: int) -> None:
        """End the live subscription to ``channel``, if any, for reason ``why``."""
        self.spans.end(channel, why, seq)

    def end_all(self, why: str, seq: int) -> None:
        """End every live subscription (the connection ended)."""
        self.spans.end_all(why, seq)

    def receive(
        self,
        channel: str,
        epoch: object,
        messages: list[Any],
        *,
        seq: int,
        t: float,
        connected: bool,
    ) -> None:
        """File a ``replay:messages`` batch: into the live subscription; held for the one a
        pending subscribe opens, breaking SUB-13; or, with none, as stray."""
        stream = self.stream(channel)
        raw = [m for m in messages if isinstance(m, dict)]
        stream.received.extend(raw)
        batch = [Delivery(seq, t, self.spans.actor, channel, epoch, m) for m in raw]
        placement = self.spans.receive(channel, batch)
        if placement is Placement.LIVE:
            span = stream.subscriptions[-1]
            self._check(span, epoch, len(span.deliveries) - len(batch), len(batch))
        elif placement is Placement.HELD:
            self._report(
                "SUB-13",
                f"the reply to replay:subscribe {channel} before its first replay:messages",
                "replay:messages first",
                channel,
            )
        else:
            self._stray(stream, raw, connected)

    def _check(self, span: Span, epoch: object, at: int, size: int) -> None:
        """Check a batch in ``epoch``, the ``size`` deliveries at index ``at`` of ``span``:
        DLV-1, DLV-2 and ORD-1..3."""
        channel, batch = span.channel, span.deliveries[at : at + size]
        if epoch != span.epoch:
            self._report(
                "DLV-1",
                f"replay:messages in the subscription's epoch {span.epoch!r}",
                f"epoch {epoch!r}",
                channel,
            )
        if self.max_batch is not None and size > self.max_batch:
            self._report(
                "DLV-2",
                f"at most max_batch={self.max_batch} messages per event",
                f"{size}",
                channel,
            )
        delivered = [d.offset for d in span.deliveries[:at] if isinstance(d.offset, int)]
        for delivery in batch:
            offset = delivery.offset
            if span not in self._broken and isinstance(span.start, int):
                expected = delivered[-1] + 1 if delivered else span.start
                if offset != expected:
                    clause = (
                        "ORD-1" if not delivered else "ORD-3" if offset in delivered else "ORD-2"
                    )
                    self._report(
                        clause,
                        f"offset {expected} next (subscription from {span.start}, "
                        f"delivered [{ranges(delivered)}])",
                        f"offset {offset}",
                        channel,
                    )
                    self._broken.add(span)
            if isinstance(offset, int):
                delivered.append(offset)

    def _stray(self, stream: Stream, batch: list[dict[str, Any]], connected: bool) -> None:
        """A batch outside any subscription: UNS-3, UNS-6 or CON-4, by how the last one ended."""
        last = stream.subscriptions[-1] if stream.subscriptions else None
        offsets = ranges(m["offset"] for m in batch if isinstance(m.get("offset"), int))
        received = f"replay:messages [{offsets}]"
        if last is not None and last.end == "unsubscribe":
            self._report(
                "UNS-3", "no replay:messages after the unsubscribe reply", received, stream.channel
            )
        elif last is not None and (last.end or "").startswith("unsubscribed:"):
            self._report(
                "UNS-6", "no replay:messages after replay:unsubscribed", received, stream.channel
            )
        elif not connected:
            pass  # in flight when this connection ended: the server had not seen the end yet
        else:
            self._report(
                "CON-4",
                "replay:messages only for channels the socket subscribes",
                received,
                stream.channel,
            )
