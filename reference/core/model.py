"""The protocol's data model (spec §2) as frozen dataclasses."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JsonValue: TypeAlias = Any
"""Any value ``json.loads`` can return; typed loosely because JSON is recursive."""

MAX_OFFSET = 2**53 - 1  # OFF: the largest integer every JSON implementation keeps exactly
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9_.:@/-]{1,200}")  # CHN-1


class Action(enum.StrEnum):
    """What a grant allows on a channel (spec §9.1)."""

    SUBSCRIBE = "subscribe"
    PUBLISH = "publish"
    HISTORY = "history"


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel's position at one instant: its epoch, lowest retained and highest offset."""

    epoch: str
    first: int | None
    head: int

    @property
    def lowest(self) -> int:
        """The lowest offset that can still be delivered (``head + 1`` when none is retained)."""
        return self.first if self.first is not None else self.head + 1


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message (MSG-1). ``wire`` is built once and shared by every delivery."""

    offset: int
    id: str
    ts: int
    data: JsonValue
    size: int  # data's size as LIM-3 measures it, used to cut batches
    wire: dict[str, JsonValue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wire = {"offset": self.offset, "id": self.id, "ts": self.ts, "data": self.data}
        object.__setattr__(self, "wire", wire)


@dataclass(frozen=True, slots=True)
class Payload:
    """Published ``data`` with its compact JSON encoding and its LIM-3 size, computed once."""

    value: JsonValue
    encoded: str
    size: int  # LIM-3: the UTF-8 length of its RFC 8785 form, not always len(encoded)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What a publish returns (PUB-1, IDM-7)."""

    channel: str
    offset: int
    epoch: str
    id: str
    duplicate: bool

    def to_wire(self) -> dict[str, JsonValue]:
        return {
            "channel": self.channel,
            "offset": self.offset,
            "epoch": self.epoch,
            "id": self.id,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A consistent read: the channel's state and the consecutive messages asked for (HIS-5).

    ``messages`` is empty when the requested offset is above the head or no longer retained;
    the caller tells the two apart with ``state``.
    """

    state: ChannelState
    messages: tuple[Message, ...]

    def to_wire(self, channel: str) -> dict[str, JsonValue]:
        """The body of a history reply (HIS-1): the state and the messages of this one read."""
        return {
            "channel": channel,
            "epoch": self.state.epoch,
            "first": self.state.first,
            "head": self.state.head,
            "messages": [message.wire for message in self.messages],
        }


@dataclass(frozen=True, slots=True)
class Retention:
    """A channel's retention settings (§4.7); ``None`` means no limit."""

    max_messages: int | None = None
    max_age_s: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """``{"channels": PATTERN, "actions": [...]}`` (§9.1)."""

    channels: str
    actions: frozenset[Action]

    def to_wire(self) -> dict[str, JsonValue]:
        return {"channels": self.channels, "actions": sorted(a.value for a in self.actions)}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Grant:
        """A grant from its wire form, already valid against the schema."""
        return cls(wire["channels"], frozenset(Action(a) for a in wire["actions"]))


@dataclass(frozen=True, slots=True)
class AutoSubscription:
    """One entry of a session's ``subscribe`` list (§8)."""

    channel: str
    start: int | str = "latest"  # an offset, "beginning" or "latest"
    allow_truncation: bool = False
    epoch: str | None = None  # the epoch of an integer start (AUT-7)

    def to_wire(self) -> dict[str, JsonValue]:
        return {
            "channel": self.channel,
            "from": self.start,
            "allow_truncation": self.allow_truncation,
            "epoch": self.epoch,
        }

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> AutoSubscription:
        """An entry from ``to_wire``'s form, as the stores keep it (entries stored before 1.1
        have no ``epoch``)."""
        return cls(wire["channel"], wire["from"], wire["allow_truncation"], wire.get("epoch"))


@dataclass(frozen=True, slots=True)
class Session:
    """A registered session as the store keeps it: the token only as its hash (SES-9)."""

    session_id: str
    client_id: str
    grants: tuple[Grant, ...]
    subscribe: tuple[AutoSubscription, ...]
    token_hash: str
    expires_at: int  # ms since the Unix epoch
    # Which creation this is: new when the session is created (SES-1, SES-16), kept when it is
    # re-registered (SES-2). A node that missed a delete-and-recreate of the same session_id
    # tells its old sockets from the new session's by it (SES-15).
    incarnation: str

    def is_live(self, now_ms: int) -> bool:
        """True until the session expires (SES-10)."""
        return now_ms < self.expires_at


@dataclass(frozen=True, slots=True)
class Cursor:
    """A session's highest acknowledged offset on one channel, in one epoch (§6.3)."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits a server enforces and advertises in ``info.limits`` (INF-3)."""

    max_payload_bytes: int = 65536
    max_batch: int = 500
    max_history_limit: int = 1000
    idempotency_window_s: int = 3600
    max_subscriptions: int = 100
    max_ttl_s: int = 30 * 24 * 3600
    default_ttl_s: int = 3600
    max_batch_publish: int = 1000  # entries per batch publish (BAT-6); INF-7: at least 1000
    # The batch route's body limit (BAT-10), raised to INF-7's minimum when set below it.
    max_batch_publish_bytes: int = 8 * 1024 * 1024

    def batch_publish_body_limit(self) -> int:
        """``max_batch_publish_bytes`` as enforced and advertised: at least 1 MiB and API-8's
        bound, so every valid single publish fits as a batch of one (INF-7)."""
        single = 6 * self.max_payload_bytes + 16384
        return max(self.max_batch_publish_bytes, single, 1024 * 1024)

    def to_wire(self) -> dict[str, int]:
        return {
            "max_payload_bytes": self.max_payload_bytes,
            "max_batch": self.max_batch,
            "max_history_limit": self.max_history_limit,
            "idempotency_window_s": self.idempotency_window_s,
            "max_subscriptions": self.max_subscriptions,
            "max_ttl_s": self.max_ttl_s,
            "max_batch_publish": self.max_batch_publish,
            "max_batch_publish_bytes": self.batch_publish_body_limit(),
        }
