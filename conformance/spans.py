"""Subscriptions as one socket saw them: where each began, what it delivered, how it ended.

The one place that turns received events into subscriptions. A :class:`Span` is one
subscription on one socket, from its start (an ok ``replay:subscribe`` reply or a
``replay:subscribed`` event) to its end (an ok ``replay:unsubscribe`` reply,
``replay:unsubscribed``, a disconnect, or a newer start on the same channel). A
:class:`SpanBook` keeps one socket's spans and files each delivered message into the live one.

The client builds a book while it receives (and checks each batch as it lands, in
:mod:`conformance.streams`); the checkers' trace builds one per socket from the event log
afterwards (:mod:`conformance.trace`). Both therefore agree on which subscription a message
belongs to. Pure: plain data in, plain data out.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "Placement", "Span", "SpanBook"]


@dataclass(frozen=True)
class Delivery:
    """One message as one socket received it, in a ``replay:messages`` event."""

    seq: int  # the log entry of the event
    t: float
    actor: str
    channel: str
    epoch: object
    message: Mapping[str, Any]

    @property
    def offset(self) -> object:
        return self.message.get("offset")

    @property
    def id(self) -> object:
        return self.message.get("id")

    @property
    def data(self) -> object:
        return self.message.get("data")


@dataclass(eq=False)
class Span:
    """One subscription on one socket: its start, its deliveries, how it ended."""

    actor: str
    channel: str
    epoch: object
    start: object  # the resolved ``from`` (an int, unless the target sent garbage)
    head: object
    origin: str  # "reply" (replay:subscribe) or "auto" (replay:subscribed)
    opened_seq: int
    requested: object = None  # the ``from`` the client asked for (None: omitted or auto)
    requested_epoch: object = None
    truncated: object = None
    ended_seq: int | None = None
    end: str | None = None  # unsubscribe, unsubscribed:<reason>, disconnect, replaced
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Not ended (as far as the socket knows)."""
        return self.end is None

    @property
    def offsets(self) -> list[int]:
        """Offsets delivered by this subscription, in arrival order."""
        return [d.offset for d in self.deliveries if isinstance(d.offset, int)]

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        """Messages delivered by this subscription, in arrival order."""
        return [d.message for d in self.deliveries]


class Placement(enum.Enum):
    """Where a delivered message went."""

    LIVE = "live"  # into the live span
    HELD = "held"  # no span yet, but a subscribe awaits its reply: it opens the span (SUB-13)
    STRAY = "stray"  # outside any subscription


class SpanBook:
    """One socket's spans, by channel; every method is a plain function (no ``await``)."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.by_channel: dict[str, list[Span]] = {}
        self._held: dict[str, list[Delivery]] = {}
        self._subscribing: Counter[str] = Counter()

    def spans(self, channel: str) -> list[Span]:
        """Every span on ``channel``, oldest first (the list itself: it grows)."""
        return self.by_channel.setdefault(channel, [])

    def live(self, channel: str) -> Span | None:
        """The live span on ``channel``, if any."""
        spans = self.by_channel.get(channel)
        return spans[-1] if spans and spans[-1].live else None

    def last(self, channel: str) -> Span | None:
        """The newest span on ``channel``, live or ended."""
        spans = self.by_channel.get(channel)
        return spans[-1] if spans else None

    def subscribing(self, channel: str) -> bool:
        """A ``replay:subscribe`` on ``channel`` was sent and is not answered yet."""
        return self._subscribing[channel] > 0

    def sent_subscribe(self, channel: str) -> None:
        self._subscribing[channel] += 1

    def answered_subscribe(self, channel: str) -> None:
        """The subscribe's reply arrived, or it never will (the connection died)."""
        self._subscribing[channel] -= 1

    def open(
        self,
        channel: str,
        start: Mapping[str, Any],
        *,
        seq: int,
        origin: str,
        request: Mapping[str, Any] | None = None,
    ) -> tuple[Span, list[Delivery]]:
        """Start a span from a subscribe reply (``origin="reply"``, with its ``request``) or a
        ``replay:subscribed`` payload (``"auto"``). A live span on the channel ends as
        ``replaced``. Returns the span and the deliveries held for it, now filed into it."""
        self.end(channel, "replaced", seq)
        request = request or {}
        span = Span(
            self.actor,
            channel,
            start.get("epoch"),
            start.get("from"),
            start.get("head"),
            origin,
            seq,
            requested=request.get("from"),
            requested_epoch=request.get("epoch"),
            truncated=start.get("truncated"),
        )
        self.spans(channel).append(span)
        held = self._held.pop(channel, [])
        span.deliveries.extend(held)
        return span, held

    def end(self, channel: str, why: str, seq: int) -> Span | None:
        """End the live span on ``channel``, if any, for reason ``why``; returns it."""
        span = self.live(channel)
        if span is not None:
            span.end, span.ended_seq = why, seq
        return span

    def end_all(self, why: str, seq: int) -> None:
        """End every live span (the connection ended)."""
        for channel in self.by_channel:
            self.end(channel, why, seq)

    def receive(self, channel: str, batch: list[Delivery]) -> Placement:
        """File one ``replay:messages`` batch: into the live span, held for the span a pending
        subscribe opens, or stray."""
        span = self.live(channel)
        if span is not None:
            span.deliveries.extend(batch)
            return Placement.LIVE
        if self.subscribing(channel):
            self._held.setdefault(channel, []).extend(batch)
            return Placement.HELD
        return Placement.STRAY
