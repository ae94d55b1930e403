"""What one Socket.IO connection of the suite receives, logged and checked as it arrives.

A :class:`Recorder` holds the handlers a :class:`~conformance.client.ReplayClient` registers
with python-socketio. Every handler and ack callback is a plain function that records on its
first line: python-socketio dispatches each incoming packet in its own task, in arrival order,
so recording before any ``await`` keeps the log in the order the packets arrived (SUB-13
depends on it).

While recording it checks what needs no case-specific knowledge: every reply and event payload
against its schema (EVT-1, DLV-1, AUT-2, UNS-6, MSG-1, CON-2), and, through its
:class:`~conformance.streams.StreamBook`, every subscription's stream. A problem is recorded as
a violation in the event log and fails the case when it ends.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from conformance import schemas
from conformance.errors import ConnectionLost
from conformance.protocol import channel_of
from conformance.streams import StreamBook

if TYPE_CHECKING:
    from conformance.eventlog import EventLog, LogEntry

__all__ = ["Pending", "Recorder"]

# Which schema, and which clause defining it, each server event's payload is checked against.
_EVENT_SCHEMAS: Final = {
    "replay:messages": ("messages-event", "DLV-1"),
    "replay:subscribed": ("subscribed-event", "AUT-2"),
    "replay:unsubscribed": ("unsubscribed-event", "UNS-6"),
}
_MESSAGE_PROBLEM = re.compile(r"^messages/\d+")


@dataclass(eq=False)
class Pending:
    """An emitted event waiting for its ack."""

    op: int
    event: str
    channel: str | None
    request: object
    future: asyncio.Future[tuple[object, ...]]


class Recorder:
    """One client's record of its connection: the log's entries, the streams, the pending acks."""

    def __init__(self, name: str, log: EventLog, max_batch: int | None) -> None:
        self.name = name
        self.log = log
        self.book = StreamBook(self.violation, name, max_batch)
        self.events: list[tuple[str, Any]] = []  # every server event, in arrival order
        self.disconnects: list[str] = []  # reasons, in order
        self.connected = False
        self.pending: dict[int, Pending] = {}
        self.connect_op: int | None = None
        self.connect_error: tuple[object, ...] | None = None
        self.changed = asyncio.Event()

    def notify(self) -> None:
        """Wake whoever waits for something to arrive."""
        self.changed.set()
        self.changed = asyncio.Event()

    def awaiting(self, op: int, event: str, channel: str | None, request: object) -> Pending:
        """Register an emitted event whose ack is now awaited."""
        future = asyncio.get_running_loop().create_future()
        pending = self.pending[op] = Pending(op, event, channel, request, future)
        if event == "replay:subscribe" and channel is not None:
            self.book.spans.sent_subscribe(channel)
        return pending

    def complete(
        self, op: int, event: str, channel: str | None, outcome: str, payload: object
    ) -> LogEntry:
        """Log the completion of operation ``op``; returns its entry."""
        return self.log.record(
            self.name, "reply", event, channel=channel, op=op, outcome=outcome, payload=payload
        )

    def _settled(self, pending: Pending) -> bool:
        """Forget an awaited ack; False if it was settled already."""
        if self.pending.pop(pending.op, None) is None:
            return False
        if pending.event == "replay:subscribe" and pending.channel is not None:
            self.book.spans.answered_subscribe(pending.channel)
        return True

    def drop(self, pending: Pending, outcome: str) -> None:
        """Give up on an ack (a timeout, a disconnect): the outcome is unknown."""
        if self._settled(pending):
            self.complete(pending.op, pending.event, pending.channel, outcome, None)

    def on_reply(self, pending: Pending, args: tuple[object, ...]) -> None:
        """The ack of an emitted event arrived."""
        reply = args[0] if len(args) == 1 else list(args)
        ok = isinstance(reply, dict) and reply.get("ok") is True
        outcome = "ok" if ok else "failed"
        entry = self.complete(pending.op, pending.event, pending.channel, outcome, reply)
        self._settled(pending)
        if len(args) != 1:
            self.violation(
                "EVT-1", f"one reply argument to {pending.event}", f"{len(args)}", pending.channel
            )
        elif problems := schemas.validate_reply(pending.event, reply):
            self.violation(
                "EVT-1", f"a valid reply to {pending.event}", "; ".join(problems), pending.channel
            )
        if ok and isinstance(reply, dict) and pending.channel is not None:
            if pending.event == "replay:subscribe":
                request = pending.request if isinstance(pending.request, dict) else None
                self.book.open(
                    pending.channel, reply, seq=entry.seq, origin="reply", request=request
                )
            elif pending.event == "replay:unsubscribe":
                self.book.end(pending.channel, "unsubscribe", entry.seq)
        if not pending.future.done():
            pending.future.set_result(args)
        self.notify()

    def on_connect(self) -> None:
        self.log.record(self.name, "connect", "connect", op=self.connect_op, outcome="ok")
        self.connected = True
        self.notify()

    def on_connect_error(self, *args: object) -> None:
        payload = args[0] if len(args) == 1 else list(args)
        self.log.record(
            self.name,
            "connect_error",
            "connect",
            op=self.connect_op,
            outcome="failed",
            payload=payload,
        )
        self.connect_error = args
        self.notify()

    def on_disconnect(self, reason: object = None) -> None:
        entry = self.log.record(self.name, "disconnect", "disconnect", payload=str(reason))
        self.connected = False
        self.disconnects.append(str(reason))
        self.book.end_all("disconnect", entry.seq)
        for pending in list(self.pending.values()):
            self.drop(pending, "indeterminate")
            if not pending.future.done():
                pending.future.set_exception(
                    ConnectionLost(
                        f"{self.name} disconnected ({reason}) before {pending.event}'s reply"
                    )
                )
        self.notify()

    def on_messages(self, *args: object) -> None:
        payload, entry = self._event("replay:messages", args)
        if isinstance(payload, dict) and isinstance(payload.get("channel"), str):
            messages = payload.get("messages")
            if isinstance(messages, list):
                self.book.receive(
                    payload["channel"],
                    payload.get("epoch"),
                    messages,
                    seq=entry.seq,
                    t=entry.t,
                    connected=self.connected,
                )
        self.notify()

    def on_subscribed(self, *args: object) -> None:
        payload, entry = self._event("replay:subscribed", args)
        if isinstance(payload, dict) and isinstance(payload.get("channel"), str):
            self.book.open(payload["channel"], payload, seq=entry.seq, origin="auto")
        self.notify()

    def on_unsubscribed(self, *args: object) -> None:
        payload, entry = self._event("replay:unsubscribed", args)
        if isinstance(payload, dict) and isinstance(payload.get("channel"), str):
            channel = payload["channel"]
            self.book.stream(channel).unsubscribed.append(payload)
            self.book.end(channel, f"unsubscribed:{payload.get('reason')}", entry.seq)
        self.notify()

    def on_other(self, event: str, *args: object) -> None:
        self._event(event, args)
        self.notify()

    def _event(self, event: str, args: tuple[object, ...]) -> tuple[object, LogEntry]:
        """Log a server event, validate its payload; return the payload and its entry."""
        payload = args[0] if len(args) == 1 else list(args)
        entry = self.log.record(
            self.name, "event", event, channel=channel_of(payload), payload=payload
        )
        self.events.append((event, payload))
        if event in _EVENT_SCHEMAS:
            schema, clause = _EVENT_SCHEMAS[event]
            if len(args) != 1:
                self.violation(clause, f"one object argument in {event}", f"{len(args)}", None)
            problems = schemas.validate(schema, payload)
            if problems:
                if schema == "messages-event" and all(_MESSAGE_PROBLEM.match(p) for p in problems):
                    clause = "MSG-1"
                self.violation(
                    clause, f"a valid {event} payload", "; ".join(problems), channel_of(payload)
                )
        return payload, entry

    def check(self, schema: str, clause: str, payload: object, what: str) -> None:
        """Record a violation of ``clause`` unless ``payload`` is valid against ``schema``."""
        problems = schemas.validate(schema, payload)
        if problems:
            self.violation(clause, f"a valid {what} payload", "; ".join(problems), None)

    def violation(self, clause: str, expected: str, received: str, channel: str | None) -> None:
        self.log.violation(clause, expected, received, channel=channel, actor=self.name)
