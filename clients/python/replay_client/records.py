"""The values the library hands to the application: messages, positions and events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ErrorEvent",
    "HistoryPage",
    "Message",
    "MessagesEvent",
    "Position",
    "State",
    "SubscribedEvent",
    "Truncation",
    "UnsubscribedEvent",
]

State = Literal["subscribing", "subscribed", "unsubscribed"]


@dataclass(frozen=True)
class Position:
    """The last message the application finished with: ``offset`` within ``epoch``."""

    epoch: str
    offset: int


@dataclass(frozen=True)
class Message:
    """One delivered message (spec §2.4)."""

    offset: int
    id: str
    ts: int
    data: Any

    @classmethod
    def from_wire(cls, raw: Any) -> Message:
        return cls(int(raw["offset"]), str(raw["id"]), int(raw["ts"]), raw["data"])


@dataclass(frozen=True)
class Truncation:
    """What retention removed: the subscribe asked for ``requested`` and starts at
    ``first_available`` (SUB-11)."""

    requested: int
    first_available: int


@dataclass(frozen=True)
class SubscribedEvent:
    """The server confirmed the subscription (an ok reply or ``replay:subscribed``)."""

    channel: str
    epoch: str
    from_: int
    head: int
    recovered: bool  # resumed exactly from the stored position, nothing skipped
    truncated: bool  # the policy continued past messages retention removed
    epoch_changed: bool  # the policy restarted in a new epoch
    truncation: Truncation | None = None


@dataclass(frozen=True)
class MessagesEvent:
    """Messages that passed the guard, in order; also the ``ctx`` of ``on_messages``."""

    channel: str
    epoch: str
    messages: list[Message]


@dataclass(frozen=True)
class UnsubscribedEvent:
    """The subscription ended, or the server ended it and the library resumes it.

    ``reason`` is the server's (``truncated``, ``epoch_changed``, ``revoked``, ``lagging``,
    ``unavailable``, ``internal``, an error code) or ``client`` / ``closed``."""

    channel: str
    reason: str
    message: str | None = None


@dataclass(frozen=True)
class ErrorEvent:
    """An error reply, or a problem the guard saw (``gap``)."""

    channel: str | None
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class HistoryPage:
    """One ``replay:history`` reply (HIS-4)."""

    channel: str
    epoch: str
    first: int | None
    head: int
    messages: list[Message]
