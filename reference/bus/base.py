"""Events that cross node boundaries, and the in-process bus of a single node.

A node acts on these events for its own sockets: wake subscriptions when a channel's head moved,
re-read a session whose grants changed, disconnect a deleted session's sockets. A single node
uses ``LocalBus``; nodes sharing a store use a bus over that store, so that every node hears
every event (CLU-2, CLU-4).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HeadMoved:
    channel: str


@dataclass(frozen=True, slots=True)
class SessionChanged:
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    session_id: str


BusEvent = HeadMoved | SessionChanged | SessionDeleted
BusHandler = Callable[[BusEvent], Awaitable[None]]


class Bus(abc.ABC):
    """Fan-out of ``BusEvent``s to every node, the publishing node included."""

    def __init__(self) -> None:
        self._handler: BusHandler | None = None

    def attach(self, handler: BusHandler) -> None:
        """Set the node's handler; called once before ``start``."""
        self._handler = handler

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin receiving events from other nodes."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop receiving and release connections."""

    @abc.abstractmethod
    async def publish(self, event: BusEvent) -> None:
        """Deliver ``event`` to every node's handler, this node's included."""

    async def _dispatch(self, event: BusEvent) -> None:
        if self._handler is not None:
            await self._handler(event)


class LocalBus(Bus):
    """The bus of a node that shares its store with no other: a direct call."""

    async def publish(self, event: BusEvent) -> None:
        await self._dispatch(event)
