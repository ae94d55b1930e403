"""A case's event log read back as a history: publishes, sessions, subscriptions, deliveries.

The checkers in ``conformance.checkers`` judge this history as a whole, after the fact, the
way Jepsen judges a queue: an operation was invoked, then completed ok, failed, or stayed
indeterminate (its reply was lost), and every delivery is attributed to the subscription that
was open on its socket when it arrived. Everything here is derived from ``LogEntry`` records
alone, so any case (or the Hypothesis scenarios) can be checked the same way.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from conformance.findings import LogEntry

__all__ = [
    "Delivery",
    "GrantChange",
    "History",
    "Publish",
    "Span",
    "canonical",
    "grants_allow",
]

_MESSAGES_ROUTE = re.compile(r"^POST /replay/v1/channels/(?P<channel>[^/?]+)/messages$")
_SESSIONS_ROUTE = "POST /replay/v1/sessions"
_DELETE_ROUTE = re.compile(r"^DELETE /replay/v1/sessions/(?P<session>[^/?]+)$")


def canonical(value: object) -> str:
    """A JSON value as a comparable string (key order does not matter in JSON objects)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def grants_allow(grants: Iterable[dict[str, Any]], channel: str, action: str) -> bool:
    """Whether grants allow ``action`` on ``channel`` (spec §9.1: exact, ``prefix*``, ``*``)."""
    for grant in grants:
        pattern = grant.get("channels", "")
        if action not in grant.get("actions", ()):
            continue
        if pattern == channel or (pattern.endswith("*") and channel.startswith(pattern[:-1])):
            return True
    return False


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
class Delivery:
    """One message as one socket received it."""

    seq: int
    t: float
    actor: str
    channel: str
    epoch: object
    offset: object
    id: object
    data: object


@dataclass
class Span:
    """One subscription on one socket, from its ok reply (or ``replay:subscribed``) to its end."""

    actor: str
    channel: str
    epoch: object
    start: object  # the resolved ``from``
    opened_seq: int
    requested: object = None  # the ``from`` the client asked for (None: omitted or auto)
    requested_epoch: object = None
    truncated: object = None
    ended_seq: int | None = None
    end: str | None = None  # unsubscribe, unsubscribed:<reason>, disconnect
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """Still open when the history ends."""
        return self.end is None


@dataclass
class GrantChange:
    """A session's grants from time ``t`` on; ``grants`` None means deleted (SES-15)."""

    seq: int
    t: float
    session_id: str
    grants: list[dict[str, Any]] | None


@dataclass
class History:
    """Everything the checkers need, rebuilt from a case's log."""

    publishes: list[Publish] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    grant_changes: list[GrantChange] = field(default_factory=list)
    # actor -> [(seq of its connect, session id)], one entry per connection
    connections: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    unattributed: list[Delivery] = field(default_factory=list)

    @classmethod
    def from_log(cls, entries: Sequence[LogEntry]) -> History:
        """Rebuild the history of a case from its log entries, in order."""
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


class _Builder:
    def __init__(self) -> None:
        self.history = History()
        self.sends: dict[int, LogEntry] = {}
        self.publish_by_op: dict[int, Publish] = {}
        self.tokens: dict[str, str] = {}  # token -> session id
        self.open: dict[tuple[str, str], Span] = {}
        self.early: dict[tuple[str, str], list[Delivery]] = {}
        self.subscribing: Counter[tuple[str, str]] = Counter()

    def build(self, entries: Sequence[LogEntry]) -> History:
        for entry in entries:
            handler = getattr(self, f"_on_{entry.kind}", None)
            if handler is not None:
                handler(entry)
        return self.history

    def _on_send(self, entry: LogEntry) -> None:
        if entry.op is not None:
            self.sends[entry.op] = entry
        if entry.name == "replay:subscribe" and entry.channel is not None:
            self.subscribing[(entry.actor, entry.channel)] += 1
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        if entry.name == "replay:publish" and isinstance(payload.get("channel"), str):
            self._publish(entry, payload["channel"], payload)
        elif (match := _MESSAGES_ROUTE.match(entry.name)) and "data" in payload:
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
        self.history.publishes.append(publish)
        if entry.op is not None:
            self.publish_by_op[entry.op] = publish

    def _on_reply(self, entry: LogEntry) -> None:
        send = self.sends.get(entry.op) if entry.op is not None else None
        if send is None:
            return
        if send.name == "replay:subscribe" and send.channel is not None:
            self.subscribing[(send.actor, send.channel)] -= 1
        body = entry.payload
        if isinstance(body, dict) and "status" in body and "body" in body:
            body = body["body"]  # an HTTP answer: {"status", "body"}
        body = body if isinstance(body, dict) else {}
        publish = self.publish_by_op.get(entry.op) if entry.op is not None else None
        if publish is not None:
            publish.outcome = entry.outcome or "indeterminate"
            publish.done_seq = entry.seq
            if entry.outcome == "ok":
                publish.offset = body.get("offset")
                publish.epoch = body.get("epoch")
                publish.stored_id = body.get("id")
                publish.duplicate = body.get("duplicate") is True
        elif send.name == _SESSIONS_ROUTE and entry.outcome == "ok":
            self._registered(entry, send, body)
        elif (match := _DELETE_ROUTE.match(send.name)) and entry.outcome == "ok":
            change = GrantChange(entry.seq, entry.t, unquote(match["session"]), None)
            self.history.grant_changes.append(change)
        elif send.name == "replay:subscribe" and entry.outcome == "ok":
            request = send.payload if isinstance(send.payload, dict) else {}
            self._open_span(entry, body, request)
        elif send.name == "replay:unsubscribe" and entry.outcome == "ok":
            self._close_span(entry.actor, send.channel, entry.seq, "unsubscribe")

    def _registered(self, entry: LogEntry, send: LogEntry, body: dict[str, Any]) -> None:
        request = send.payload if isinstance(send.payload, dict) else {}
        session_id, token = body.get("session_id"), body.get("token")
        if not isinstance(session_id, str):
            return
        if isinstance(token, str):
            self.tokens[token] = session_id
        grants = request.get("grants")
        change = GrantChange(
            entry.seq, entry.t, session_id, grants if isinstance(grants, list) else []
        )
        self.history.grant_changes.append(change)

    def _on_connect(self, entry: LogEntry) -> None:
        send = self.sends.get(entry.op) if entry.op is not None else None
        auth = send.payload if send is not None and isinstance(send.payload, dict) else {}
        token = auth.get("token")
        session = self.tokens.get(token) if isinstance(token, str) else None
        self.history.connections.setdefault(entry.actor, []).append((entry.seq, session))

    def _on_disconnect(self, entry: LogEntry) -> None:
        for (actor, channel), _span in list(self.open.items()):
            if actor == entry.actor:
                self._close_span(actor, channel, entry.seq, "disconnect")

    def _on_event(self, entry: LogEntry) -> None:
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        channel = payload.get("channel")
        if not isinstance(channel, str):
            return
        if entry.name == "replay:messages":
            self._deliver(entry, channel, payload)
        elif entry.name == "replay:subscribed":
            self._open_span(entry, payload, {})
        elif entry.name == "replay:unsubscribed":
            reason = payload.get("reason")
            self._close_span(entry.actor, channel, entry.seq, f"unsubscribed:{reason}")

    def _open_span(self, entry: LogEntry, reply: dict[str, Any], request: dict[str, Any]) -> None:
        channel = reply.get("channel") or request.get("channel")
        if not isinstance(channel, str):
            return
        span = Span(
            entry.actor,
            channel,
            reply.get("epoch"),
            reply.get("from"),
            entry.seq,
            requested=request.get("from"),
            requested_epoch=request.get("epoch"),
            truncated=reply.get("truncated"),
        )
        self.history.spans.append(span)
        self.open[(entry.actor, channel)] = span
        for delivery in self.early.pop((entry.actor, channel), []):
            span.deliveries.append(delivery)  # arrived before the reply (SUB-13 broken)

    def _close_span(self, actor: str, channel: str | None, seq: int, why: str) -> None:
        if channel is None:
            return
        span = self.open.pop((actor, channel), None)
        if span is not None:
            span.ended_seq, span.end = seq, why

    def _deliver(self, entry: LogEntry, channel: str, payload: dict[str, Any]) -> None:
        messages = payload.get("messages")
        span = self.open.get((entry.actor, channel))
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            delivery = Delivery(
                entry.seq,
                entry.t,
                entry.actor,
                channel,
                payload.get("epoch"),
                message.get("offset"),
                message.get("id"),
                message.get("data"),
            )
            self.history.deliveries.append(delivery)
            if span is not None:
                span.deliveries.append(delivery)
            elif self._subscribing(entry.actor, channel):
                self.early.setdefault((entry.actor, channel), []).append(delivery)
            else:
                self.history.unattributed.append(delivery)

    def _subscribing(self, actor: str, channel: str) -> bool:
        """A subscribe of ``actor`` on ``channel`` was sent and has no reply yet."""
        return self.subscribing[(actor, channel)] > 0
