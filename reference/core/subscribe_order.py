"""A subscribe's checks in the order of SUB-1, and where the subscription starts (spec §6.1).

Theory of operation
-------------------
SUB-1 orders seven checks, and the first that fails names the error:

====  =====================  ==========================  ===================================
step  check                  error                       run by
====  =====================  ==========================  ===================================
1     payload shape          ``bad_request``             ``payloads.parse_subscribe``
2     grant                  ``forbidden`` (SUB-2)       ``admit``
3     existing subscription  ``already_subscribed``      ``admit`` (SUB-3)
4     subscription limit     ``rate_limited`` (SUB-15)   ``admit``
5     epoch                  ``epoch_mismatch`` (SUB-4)  ``resolve``
6     upper bound            ``offset_out_of_range``     ``resolve`` (SUB-5)
7     lower bound            ``history_truncated``       ``resolve`` (SUB-6, unless SUB-11)
====  =====================  ==========================  ===================================

Steps 5 to 7 need the channel's state, and sometimes the session's cursor: a store read,
which for a channel never used before also creates it (CHN-3). Steps 2 to 4 need only what the
node holds. So that a forbidden or redundant subscribe never reaches the store (and a store
outage cannot turn ``forbidden`` into ``unavailable``), the order is two pure steps with the
read in between, rather than one function handed a state read up front. The types keep the
order: ``admit`` takes only a parsed request (step 1 made it), and ``resolve`` takes only what
``admit`` returned, which also says what the shell must read for it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from reference.core import positions
from reference.core.errors import AlreadySubscribed, RateLimited
from reference.core.grants import require
from reference.core.model import Action, AutoSubscription, ChannelState, Cursor, Grant, JsonValue
from reference.core.payloads import SubscribeRequest


@dataclass(frozen=True, slots=True)
class Truncation:
    """What a start below the retained history was moved to (SUB-11)."""

    requested: int
    first_available: int

    def to_wire(self) -> dict[str, int]:
        return {"requested": self.requested, "first_available": self.first_available}


@dataclass(frozen=True, slots=True)
class Start:
    """A resolved subscription start: the first offset to deliver, in one channel state."""

    state: ChannelState
    offset: int
    truncated: Truncation | None = None

    def to_wire(self, channel: str) -> dict[str, JsonValue]:
        """The members shared by the subscribe reply and ``replay:subscribed`` (SUB-12)."""
        wire: dict[str, JsonValue] = {
            "channel": channel,
            "epoch": self.state.epoch,
            "from": self.offset,
            "head": self.state.head,
        }
        if self.truncated is not None:
            wire["truncated"] = self.truncated.to_wire()
        return wire


@dataclass(frozen=True, slots=True)
class Admitted:
    """A subscribe that passed steps 1 to 4 of SUB-1; only ``admit`` makes one.

    ``request`` is a client's ``replay:subscribe`` or one entry of a session's ``subscribe``
    list (an auto-subscription, whose shape was checked when the session was registered).
    """

    request: SubscribeRequest | AutoSubscription

    @property
    def channel(self) -> str:
        return self.request.channel

    @property
    def needs_cursor(self) -> bool:
        """Whether ``resolve`` needs the session's cursor on the channel: an omitted ``from``
        starts after it (SUB-9), and so does an auto-subscription that has one (AUT-1)."""
        return isinstance(self.request, AutoSubscription) or self.request.start is None


def admit(
    request: SubscribeRequest | AutoSubscription,
    *,
    grants: Iterable[Grant],
    subscribed: Collection[str],
    max_subscriptions: int,
) -> Admitted:
    """Steps 2 to 4 of SUB-1, which need no store read; raise the first failing one's error.

    ``subscribed`` holds the channels the socket subscribes now.
    """
    channel = request.channel
    require(grants, channel, Action.SUBSCRIBE)  # SUB-2
    if channel in subscribed:
        raise AlreadySubscribed(f"already subscribed to {channel!r}")  # SUB-3
    if len(subscribed) >= max_subscriptions:
        raise RateLimited("too many subscriptions on this socket")  # SUB-15
    return Admitted(request)


def resolve(admitted: Admitted, *, state: ChannelState, cursor: Cursor | None) -> Start:
    """Steps 5 to 7 of SUB-1 against the channel's state and, when ``admitted.needs_cursor``,
    the session's cursor; return where the subscription starts."""
    request = admitted.request
    if isinstance(request, AutoSubscription):
        # AUT-1, AUT-6: the cursor + 1 when the session has one in the current epoch, else
        # the entry's own ``from``.
        has_cursor = cursor is not None and cursor.epoch == state.epoch
        return resolve_from(
            None if has_cursor else request.start,
            epoch=request.epoch,  # AUT-7: an integer start is checked against its epoch
            allow_truncation=request.allow_truncation,
            state=state,
            cursor=cursor,
        )
    return resolve_from(
        request.start,
        epoch=request.epoch,
        allow_truncation=request.allow_truncation,
        state=state,
        cursor=cursor,
    )


def resolve_from(
    start: int | str | None,
    *,
    epoch: str | None,
    allow_truncation: bool,
    state: ChannelState,
    cursor: Cursor | None,
) -> Start:
    """The spec's ``resolve`` (§6.1): a ``from`` against the channel state and the cursor.

    ``start`` is an offset, ``"beginning"``, ``"latest"`` or ``None`` (omitted).
    """
    if start is None:
        if cursor is not None and cursor.epoch == state.epoch:  # SUB-9, ACK-7
            return _within_bounds(cursor.offset + 1, state, allow_truncation=allow_truncation)
        return Start(state, state.head + 1)  # SUB-9: as "latest"
    if start == "beginning":  # SUB-7
        return Start(state, state.lowest)
    if start == "latest":  # SUB-8
        return Start(state, state.head + 1)
    if not isinstance(start, int):
        raise TypeError(f"unexpected from {start!r}")  # payload validation keeps this out
    positions.check_epoch(epoch, state)  # SUB-4, AUT-7, SIG-4
    return _within_bounds(start, state, allow_truncation=allow_truncation)


def _within_bounds(offset: int, state: ChannelState, *, allow_truncation: bool) -> Start:
    positions.check_upper_bound(offset, state)  # SUB-5
    if offset < state.lowest and allow_truncation:  # SUB-11
        return Start(state, state.lowest, Truncation(offset, state.lowest))
    positions.check_lower_bound(offset, state)  # SUB-6
    return Start(state, offset)
