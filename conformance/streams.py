"""What one client received, channel by channel, and the order checks made as it arrives.

A :class:`Stream` is everything a client received about one channel; a :class:`Subscription`
is one subscription within it, from its start (the ``replay:subscribe`` reply or a
``replay:subscribed`` event) to its end. :class:`StreamBook` files each ``replay:messages``
batch into the live subscription and checks it there: ``from <= head + 1`` (SUB-12), the
subscription's epoch (DLV-1), at most ``max_batch`` messages (DLV-2), offsets from ``from`` up
by one (ORD-1..3), the subscribe reply first (SUB-13), nothing outside a subscription (UNS-3,
UNS-6, CON-4). Each problem goes to the ``report`` callback it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.findings import ranges

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Stream", "StreamBook", "Subscription"]


@dataclass(eq=False)
class Subscription:
    """One subscription as the client saw it: its start, its messages, how it ended."""

    channel: str
    epoch: object
    from_: object  # the resolved ``from`` (an int, unless the target sent garbage)
    head: object
    origin: str  # "reply" (replay:subscribe) or "auto" (replay:subscribed)
    messages: list[dict[str, Any]] = field(default_factory=list)
    ended: str | None = None  # "unsubscribe", "unsubscribed:<reason>", "disconnect", ...
    broken: bool = False  # an order violation was recorded; later ones would only echo it

    @property
    def offsets(self) -> list[int]:
        """Offsets delivered by this subscription, in arrival order."""
        return [m["offset"] for m in self.messages if isinstance(m.get("offset"), int)]


@dataclass(eq=False)
class Stream:
    """Everything one client received about one channel."""

    channel: str
    subscriptions: list[Subscription] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # all messages, arrival order
    unsubscribed: list[dict[str, Any]] = field(default_factory=list)  # replay:unsubscribed
    early: list[tuple[object, list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def current(self) -> Subscription | None:
        """The live subscription, if any."""
        last = self.subscriptions[-1] if self.subscriptions else None
        return last if last is not None and last.ended is None else None

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
        self, report: Callable[[str, str, str, str | None], None], max_batch: int | None = None
    ) -> None:
        self.streams: dict[str, Stream] = {}
        self.max_batch = max_batch
        self._report = report

    def stream(self, channel: str) -> Stream:
        """The :class:`Stream` of ``channel`` (created empty if nothing arrived yet)."""
        if channel not in self.streams:
            self.streams[channel] = Stream(channel)
        return self.streams[channel]

    def open(self, channel: str, start: dict[str, Any], origin: str) -> None:
        """Start a subscription from a subscribe reply or a ``replay:subscribed`` payload;
        batches that arrived before the reply (SUB-13) are delivered to it now."""
        stream = self.stream(channel)
        if stream.current is not None:
            stream.current.ended = "replaced"
        subscription = Subscription(
            channel, start.get("epoch"), start.get("from"), start.get("head"), origin
        )
        stream.subscriptions.append(subscription)
        first, head = subscription.from_, subscription.head
        if isinstance(first, int) and isinstance(head, int) and first > head + 1:
            self._report("SUB-12", "from <= head + 1", f"from {first}, head {head}", channel)
        early, stream.early = stream.early, []
        for epoch, batch in early:
            self._deliver(subscription, epoch, batch)

    def end(self, channel: str, why: str) -> None:
        """End the live subscription to ``channel``, if any, for reason ``why``."""
        current = self.stream(channel).current
        if current is not None:
            current.ended = why

    def end_all(self, why: str) -> None:
        """End every live subscription (the connection ended)."""
        for stream in self.streams.values():
            if stream.current is not None:
                stream.current.ended = why

    def receive(
        self,
        channel: str,
        epoch: object,
        messages: list[Any],
        *,
        subscribing: bool,
        connected: bool,
    ) -> None:
        """File a ``replay:messages`` batch: into the live subscription; held for the one a
        pending subscribe (``subscribing``) opens, breaking SUB-13; or, with none, as stray."""
        stream = self.stream(channel)
        batch = [m for m in messages if isinstance(m, dict)]
        stream.received.extend(batch)
        subscription = stream.current
        if subscription is not None:
            self._deliver(subscription, epoch, batch)
        elif subscribing:
            self._report(
                "SUB-13",
                f"the reply to replay:subscribe {channel} before its first replay:messages",
                "replay:messages first",
                channel,
            )
            stream.early.append((epoch, batch))
        else:
            self._stray(stream, batch, connected)

    def _deliver(self, sub: Subscription, epoch: object, batch: list[dict[str, Any]]) -> None:
        """Append a batch to a subscription, checking DLV-1, DLV-2 and ORD-1..3."""
        channel = sub.channel
        if epoch != sub.epoch:
            self._report(
                "DLV-1",
                f"replay:messages in the subscription's epoch {sub.epoch!r}",
                f"epoch {epoch!r}",
                channel,
            )
        if self.max_batch is not None and len(batch) > self.max_batch:
            self._report(
                "DLV-2",
                f"at most max_batch={self.max_batch} messages per event",
                f"{len(batch)}",
                channel,
            )
        for message in batch:
            offset = message.get("offset")
            if not sub.broken and isinstance(sub.from_, int):
                delivered = sub.offsets
                expected = delivered[-1] + 1 if delivered else sub.from_
                if offset != expected:
                    clause = (
                        "ORD-1" if not delivered else "ORD-3" if offset in delivered else "ORD-2"
                    )
                    self._report(
                        clause,
                        f"offset {expected} next (subscription from {sub.from_}, "
                        f"delivered [{ranges(delivered)}])",
                        f"offset {offset}",
                        channel,
                    )
                    sub.broken = True
            sub.messages.append(message)

    def _stray(self, stream: Stream, batch: list[dict[str, Any]], connected: bool) -> None:
        """A batch outside any subscription: UNS-3, UNS-6 or CON-4, by how the last one ended."""
        last = stream.subscriptions[-1] if stream.subscriptions else None
        offsets = ranges(m["offset"] for m in batch if isinstance(m.get("offset"), int))
        received = f"replay:messages [{offsets}]"
        if last is not None and last.ended == "unsubscribe":
            self._report(
                "UNS-3", "no replay:messages after the unsubscribe reply", received, stream.channel
            )
        elif last is not None and (last.ended or "").startswith("unsubscribed:"):
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
