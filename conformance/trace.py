"""A case's event log read back as a trace: publishes, sessions, subscriptions, deliveries.

The checkers in ``conformance.checkers`` judge this trace as a whole, after the fact, the way
Jepsen judges a history of a queue: an operation was invoked, then completed ok, failed, or
stayed indeterminate (its reply was lost), and every delivery is attributed to the
subscription that was open on its socket when it arrived (by the same
:class:`~conformance.spans.SpanBook` the client used while receiving). Everything here is
derived from ``LogEntry`` records alone, so any case (or the Hypothesis scenarios) can be
checked the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from conformance.protocol import ROUTE_MESSAGES, ROUTE_SESSION, ROUTE_SESSIONS
from conformance.spans import Delivery, Placement, Span, SpanBook

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conformance.eventlog import LogEntry

__all__ = [
    "Delivery",
    "GrantChange",
    "Publish",
    "Reading",
    "Span",
    "Trace",
    "canonical",
    "route_of",
]


def canonical(value: object) -> str:
    """A JSON value as a comparable string (key order does not matter in JSON objects)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def route_of(name: str) -> tuple[str, str]:
    """A logged HTTP request's name (``"POST /replay/v1/..."``) as (method, path)."""
    method, _, path = name.partition(" ")
    return method, path.partition("?")[0]


@dataclass
class Publish:
    """One publish invocation, through the backend or a client."""

    seq: int  # of its send entry
    actor: str
    channel: str
    data: object
    requested_id: str | None
    outcome: str = "pending"  # ok, failed, indeterminate, pending (no completion logged)
    offset: int | None = None
    epoch: str | None = None
    stored_id: str | None = None
    duplicate: bool = False
    done_seq: int | None = None


@dataclass
class GrantChange:
    """A session's grants from time ``t`` on; ``grants`` None means deleted (SES-15)."""

    seq: int
    t: float
    session_id: str
    grants: list[dict[str, Any]] | None
    created: bool = False  # a 201: a new session under this id (SES-1, SES-16, SES-17)


@dataclass(frozen=True)
class Reading:
    """A value the server reported for a channel in one epoch, and when.

    ``what`` is ``head`` or ``first`` (a subscribe's or a history read's answer, or
    ``replay:subscribed``), ``from`` (where a subscribe's answer starts),
    ``assigned`` or ``delivered`` (a publish answer or a delivery named this offset, so
    ``head`` was at least this much then) or ``cursor`` (an ack's answer, for ``session``).
    ``sent_t`` is when the request that drew it was sent, None for an event (produced at an
    unknown time before it arrived): only a request sent after another reading arrived is
    bound to see at least as much (spec §10.13).
    """

    seq: int
    sent_t: float | None
    t: float
    actor: str
    channel: str
    epoch: object
    what: str
    value: int
    session: str | None = None


@dataclass
class Trace:
    """Everything the checkers need, rebuilt from a case's log."""

    publishes: list[Publish] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    grant_changes: list[GrantChange] = field(default_factory=list)
    # actor -> [(seq of its connect, session id)], one entry per connection
    connections: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    unattributed: list[Delivery] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    # Messages a history read returned; also in ``deliveries``, in no span.
    history_reads: list[Delivery] = field(default_factory=list)

    @classmethod
    def from_log(cls, entries: Sequence[LogEntry]) -> Trace:
        """Rebuild the trace of a case from its log entries, in order."""
        return _Builder().build(entries)

    def session_at(self, actor: str, seq: int) -> str | None:
        """The session a socket was connected with at log position ``seq``."""
        session = None
        for connected_at, session_id in self.connections.get(actor, ()):
            if connected_at > seq:
                break
            session = session_id
        return session

    def grants_between(
        self, session_id: str, t_from: float, t_to: float
    ) -> list[list[dict[str, Any]] | None]:
        """Every grant set the session had at some instant of ``[t_from, t_to]``."""
        changes = [c for c in self.grant_changes if c.session_id == session_id]
        current: list[dict[str, Any]] | None = None
        seen: list[list[dict[str, Any]] | None] = []
        for change in changes:
            if change.t <= t_from:
                current = change.grants
            elif change.t <= t_to:
                seen.append(change.grants)
        return [current, *seen]


def _messages(entry: LogEntry, channel: str, body: dict[str, Any]) -> list[Delivery]:
    """The messages an event or a history answer carries, as one socket received them."""
    messages = body.get("messages")
    return [
        Delivery(entry.seq, entry.t, entry.actor, channel, body.get("epoch"), message)
        for message in (messages if isinstance(messages, list) else ())
        if isinstance(message, dict)
    ]


class _Builder:
    def __init__(self) -> None:
        self.trace = Trace()
        self.sends: dict[int, LogEntry] = {}
        self.publish_by_op: dict[int, Publish] = {}
        self.tokens: dict[str, str] = {}  # token -> session id
        self.books: dict[str, SpanBook] = {}  # actor -> its spans

    def build(self, entries: Sequence[LogEntry]) -> Trace:
        for entry in entries:
            handler = getattr(self, f"_on_{entry.kind}", None)
            if handler is not None:
                handler(entry)
        return self.trace

    def _book(self, actor: str) -> SpanBook:
        if actor not in self.books:
            self.books[actor] = SpanBook(actor)
        return self.books[actor]

    def _on_send(self, entry: LogEntry) -> None:
        if entry.op is not None:
            self.sends[entry.op] = entry
        if entry.name == "replay:subscribe" and entry.channel is not None:
            self._book(entry.actor).sent_subscribe(entry.channel)
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        method, path = route_of(entry.name)
        if entry.name == "replay:publish" and isinstance(payload.get("channel"), str):
            self._publish(entry, payload["channel"], payload)
        elif method == "POST" and (match := ROUTE_MESSAGES.match(path)) and "data" in payload:
            self._publish(entry, unquote(match["channel"]), payload)

    def _publish(self, entry: LogEntry, channel: str, payload: dict[str, Any]) -> None:
        requested = payload.get("id")
        publish = Publish(
            entry.seq,
            entry.actor,
            channel,
            payload.get("data"),
            requested if isinstance(requested, str) else None,
        )
        self.trace.publishes.append(publish)
        if entry.op is not None:
            self.publish_by_op[entry.op] = publish

    def _on_reply(self, entry: LogEntry) -> None:
        send = self.sends.get(entry.op) if entry.op is not None else None
        if send is None:
            return
        if send.name == "replay:subscribe" and send.channel is not None:
            self._book(send.actor).answered_subscribe(send.channel)
        body = entry.payload
        if isinstance(body, dict) and "status" in body and "body" in body:
            body = body["body"]  # an HTTP answer: {"status", "body"}
        body = body if isinstance(body, dict) else {}
        method, path = route_of(send.name)
        publish = self.publish_by_op.get(entry.op) if entry.op is not None else None
        if publish is not None:
            publish.outcome = entry.outcome or "indeterminate"
            publish.done_seq = entry.seq
            if entry.outcome == "ok":
                publish.offset = body.get("offset")
                publish.epoch = body.get("epoch")
                publish.stored_id = body.get("id")
                publish.duplicate = body.get("duplicate") is True
                self._read(entry, send, publish.channel, body, {"offset": "assigned"})
        elif entry.outcome != "ok":
            return
        elif method == "POST" and ROUTE_SESSIONS.match(path):
            self._registered(entry, send, body)
        elif method == "DELETE" and (match := ROUTE_SESSION.match(path)):
            change = GrantChange(entry.seq, entry.t, unquote(match["session"]), None)
            self.trace.grant_changes.append(change)
        elif send.name == "replay:subscribe":
            request = send.payload if isinstance(send.payload, dict) else {}
            self._open(entry, body, request, "reply")
            fields = {"head": "head", "first": "first", "from": "from"}
            self._read(entry, send, send.channel, body, fields)
        elif send.name == "replay:history" and send.channel is not None:
            self._history(entry, send, send.channel, body)
        elif method == "GET" and (match := ROUTE_MESSAGES.match(path)):
            self._history(entry, send, unquote(match["channel"]), body)
        elif send.name == "replay:ack" and send.channel is not None:
            session = self.trace.session_at(entry.actor, entry.seq)
            self._read(entry, send, send.channel, body, {"cursor": "cursor"}, session)
        elif send.name == "replay:unsubscribe" and send.channel is not None:
            self._book(entry.actor).end(send.channel, "unsubscribe", entry.seq)

    def _read(
        self,
        entry: LogEntry,
        send: LogEntry | None,
        channel: str | None,
        body: dict[str, Any],
        fields: dict[str, str],
        session: str | None = None,
    ) -> None:
        """Keep the integer ``fields`` of an answer or event as readings (named by value)."""
        if not isinstance(channel, str):
            return
        sent_t = send.t if send is not None else None
        for name, what in fields.items():
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                reading = Reading(
                    entry.seq,
                    sent_t,
                    entry.t,
                    entry.actor,
                    channel,
                    body.get("epoch"),
                    what,
                    value,
                    session,
                )
                self.trace.readings.append(reading)

    def _history(self, entry: LogEntry, send: LogEntry, channel: str, body: dict[str, Any]) -> None:
        """A history read: its messages are judged with the deliveries (they are the same
        stored messages, OFF-3, CNS-1), though no subscription delivered them."""
        read = _messages(entry, channel, body)
        self.trace.deliveries.extend(read)
        self.trace.history_reads.extend(read)
        self._read(entry, send, channel, body, {"head": "head", "first": "first"})

    def _registered(self, entry: LogEntry, send: LogEntry, body: dict[str, Any]) -> None:
        request = send.payload if isinstance(send.payload, dict) else {}
        session_id, token = body.get("session_id"), body.get("token")
        if not isinstance(session_id, str):
            return
        if isinstance(token, str):
            self.tokens[token] = session_id
        grants = request.get("grants")
        created = isinstance(entry.payload, dict) and entry.payload.get("status") == 201
        change = GrantChange(
            entry.seq, entry.t, session_id, grants if isinstance(grants, list) else [], created
        )
        self.trace.grant_changes.append(change)

    def _on_connect(self, entry: LogEntry) -> None:
        send = self.sends.get(entry.op) if entry.op is not None else None
        auth = send.payload if send is not None and isinstance(send.payload, dict) else {}
        token = auth.get("token")
        session = self.tokens.get(token) if isinstance(token, str) else None
        self.trace.connections.setdefault(entry.actor, []).append((entry.seq, session))

    def _on_disconnect(self, entry: LogEntry) -> None:
        self._book(entry.actor).end_all("disconnect", entry.seq)

    def _on_event(self, entry: LogEntry) -> None:
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        channel = payload.get("channel")
        if not isinstance(channel, str):
            return
        if entry.name == "replay:messages":
            self._deliver(entry, channel, payload)
        elif entry.name == "replay:subscribed":
            self._open(entry, payload, {}, "auto")
            self._read(entry, None, channel, payload, {"head": "head", "first": "first"})
        elif entry.name == "replay:unsubscribed":
            why = f"unsubscribed:{payload.get('reason')}"
            self._book(entry.actor).end(channel, why, entry.seq)

    def _open(
        self, entry: LogEntry, reply: dict[str, Any], request: dict[str, Any], origin: str
    ) -> None:
        channel = reply.get("channel") or request.get("channel")
        if not isinstance(channel, str):
            return
        book = self._book(entry.actor)
        span, _ = book.open(channel, reply, seq=entry.seq, origin=origin, request=request)
        self.trace.spans.append(span)

    def _deliver(self, entry: LogEntry, channel: str, payload: dict[str, Any]) -> None:
        batch = _messages(entry, channel, payload)
        self.trace.deliveries.extend(batch)
        for delivery in batch:
            self._read(
                entry,
                None,
                channel,
                {"epoch": delivery.epoch, **delivery.message},
                {"offset": "delivered"},
            )
        if self._book(entry.actor).receive(channel, batch) is Placement.STRAY:
            self.trace.unattributed.extend(batch)
