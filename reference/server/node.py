"""One server node: the operations both APIs share, and the node's view of its own sockets.

The HTTP routes (``http_api``) and the Socket.IO handlers (``socket_api``) call into a
``ReplayNode``; it talks to the store, then tells every node (through the bus) what changed so
each can act on its own sockets: wake subscriptions, re-check grants, disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reference import __version__
from reference.bus.base import Bus, BusEvent, HeadMoved, LocalBus, SessionChanged, SessionDeleted
from reference.bus.remote import RemoteBus
from reference.core import grants, positions
from reference.core.batch_publish import BatchPublishRequest, batch_stored_any
from reference.core.errors import NotFound
from reference.core.model import Action, AppendResult, Grant, JsonValue, Limits, Session
from reference.core.payloads import HistoryRequest, PublishRequest, SessionRequest
from reference.core.subscription import Trigger
from reference.core.tokens import hash_token, new_token
from reference.server.delivery import Subscription
from reference.server.latch import Latch
from reference.server.live import LiveEdge
from reference.server.notifier import Notifier
from reference.server.shared_reads import SharedReads
from reference.server.wire import BatchEncoder
from reference.store.base import Store

log = logging.getLogger(__name__)

IMPLEMENTATION_NAME = "socketio-replay-reference"
OPTIONAL_FEATURES = (
    "client-publish",
    "idempotency",
    "history",
    "cursors",
    "retention",
    "batch-publish",
)


@dataclass
class Connection:
    """What the node knows of one connected socket."""

    sid: str
    session_id: str
    incarnation: str  # of the session the socket connected to (Session.incarnation)
    grants: tuple[Grant, ...]
    expires_at: int
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # Serialises adding and removing subscriptions between the socket's own events and the
    # auto-subscription task, so one channel never gets two subscriptions (SUB-3, AUT-5).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set once the auto-subscriptions are started or reported: the socket's own events wait
    # for it, so that the first of them already finds every auto-subscription (AUT-8).
    ready: Latch = field(default_factory=Latch)

    def may(self, channel: str, action: Action) -> bool:
        return grants.allows(self.grants, channel, action)

    def may_subscribe(self, channel: str) -> bool:
        """Whether a subscription of this socket may still deliver ``channel`` (ACC-5)."""
        return grants.allows(self.grants, channel, Action.SUBSCRIBE)

    async def forget(self, subscription: Subscription) -> None:
        """Drop an ended subscription, unless the channel has a newer one."""
        if self.subscriptions.get(subscription.channel) is subscription:
            del self.subscriptions[subscription.channel]

    def belongs_to(self, session: Session | None) -> bool:
        """False once the socket's session was deleted, even if its id was registered again."""
        return session is not None and session.incarnation == self.incarnation


# Called by the node to drop a socket (revocation, expiry); provided by the Socket.IO layer.
Disconnector = Callable[[str], Awaitable[None]]


class ReplayNode:
    """The shared operations of one node over one store."""

    def __init__(
        self,
        store: Store,
        *,
        limits: Limits | None = None,
        bus: Bus | None = None,
        max_batch_bytes: int = 1024 * 1024,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.bus = bus or LocalBus()
        self.notifier = Notifier()
        self.reads = SharedReads(store)  # the subscriptions' reads, merged when identical
        self.max_batch_bytes = max_batch_bytes
        self.encoder = BatchEncoder()
        self.live = LiveEdge(self.reads, self.notifier, self.encoder, self.limits, max_batch_bytes)
        self.connections: dict[str, Connection] = {}
        self._by_session: defaultdict[str, set[str]] = defaultdict(set)
        self._disconnect: Disconnector | None = None
        self.bus.attach(self._on_bus_event)
        if isinstance(self.bus, RemoteBus):  # a bus that can lose events says so
            self.bus.on_missed(self.resync)

    def set_disconnector(self, disconnect: Disconnector) -> None:
        self._disconnect = disconnect

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        await self.bus.start()

    async def stop(self) -> None:
        for connection in list(self.connections.values()):
            await self.end_subscriptions(connection, Trigger.DISCONNECTED)
        await self.bus.stop()
        await self.store.close()

    def info(self) -> dict[str, JsonValue]:
        """The body of ``GET /replay/v1/info`` (INF-1 to INF-4)."""
        features = ["sessions", *OPTIONAL_FEATURES]
        if self.store.shared:
            features.append("cluster")
        return {
            "protocol": "replay/1",
            "implementation": {"name": IMPLEMENTATION_NAME, "version": __version__},
            "namespace": "/",
            "durable": self.store.durable,
            "features": features,
            "limits": self.limits.to_wire(),
        }

    # --- operations -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> AppendResult:
        """Append a message and wake its subscribers on every node (PUB-1, PUB-10)."""
        result = await self.store.append(request.channel, request.payload, request.id)
        if not result.duplicate:
            await self.bus.publish(HeadMoved(request.channel))
        return result

    async def publish_batch(self, request: BatchPublishRequest) -> tuple[AppendResult, ...]:
        """Append a batch atomically and wake its subscribers once (BAT-2, BAT-3, BAT-12)."""
        results = await self.store.append_batch(request.channel, request.entries)
        if batch_stored_any(results):
            await self.bus.publish(HeadMoved(request.channel))
        return results

    async def history(self, request: HistoryRequest) -> dict[str, JsonValue]:
        """A history read, for ``replay:history`` and the HTTP route alike (HIS-1, HIS-4 to
        HIS-10); the caller has checked the grant, where there is one to check (HIS-3)."""
        state = await self.store.state(request.channel)
        first = positions.resolve_history(request.start, request.epoch, state)
        count = positions.history_limit(request.limit, self.limits.max_history_limit)
        read = await self.store.read(request.channel, first, count)
        if positions.history_moved(state, first, read.state):  # retention, or a lost epoch
            first = positions.resolve_history(request.start, request.epoch, read.state)
            read = await self.store.read(request.channel, first, count)
        return read.to_wire(request.channel)

    async def register(self, request: SessionRequest) -> tuple[bool, str, Session]:
        """Create or update a session (SES-1 to SES-5); returns (created, token, session)."""
        token = new_token()
        default_ttl_s = min(self.limits.default_ttl_s, self.limits.max_ttl_s)  # SES-5
        ttl_s = request.ttl_s if request.ttl_s is not None else default_ttl_s
        session = Session(
            session_id=request.session_id or new_token(),
            client_id=request.client_id,
            grants=request.grants,
            subscribe=request.subscribe,
            token_hash=hash_token(token),
            expires_at=self.store.clock() + ttl_s * 1000,
            incarnation=secrets.token_hex(8),  # the store keeps the old one if the session lives
        )
        created = await self.store.upsert_session(session)
        if not created:
            await self.bus.publish(SessionChanged(session.session_id))  # ACC-6
        return created, token, session

    async def revoke(self, session_id: str) -> None:
        """Delete a session and disconnect its sockets on every node (SES-13 to SES-15)."""
        if not await self.store.delete_session(session_id):
            raise NotFound(f"no session {session_id!r}")
        await self.bus.publish(SessionDeleted(session_id))

    # --- this node's sockets ----------------------------------------------------------------

    def add_connection(self, connection: Connection) -> None:
        self.connections[connection.sid] = connection
        self._by_session[connection.session_id].add(connection.sid)

    async def remove_connection(self, sid: str) -> None:
        """Forget a socket that disconnected, ending its subscriptions silently (CON-5)."""
        connection = self.connections.pop(sid, None)
        if connection is None:
            return
        sids = self._by_session.get(connection.session_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_session[connection.session_id]
        await self.end_subscriptions(connection, Trigger.DISCONNECTED)

    async def end_subscriptions(self, connection: Connection, trigger: Trigger) -> None:
        for subscription in list(connection.subscriptions.values()):
            await subscription.stop(trigger)

    def sockets_of(self, session_id: str) -> list[Connection]:
        return [self.connections[sid] for sid in self._by_session.get(session_id, ())]

    async def _on_bus_event(self, event: BusEvent) -> None:
        if isinstance(event, HeadMoved):
            self.notifier.head_moved(event.channel)
        elif isinstance(event, SessionChanged):
            await self._refresh_session(event.session_id)
        elif isinstance(event, SessionDeleted):
            await self._drop_session(event.session_id)

    async def resync(self) -> None:
        """Catch up on bus events this node may have missed (its bus connection dropped).

        Every local subscription is woken to re-read the store (CLU-2) and every local session
        re-read, which applies changed grants and drops deleted sessions (CLU-4).
        """
        for channel in {ch for c in self.connections.values() for ch in c.subscriptions}:
            self.notifier.head_moved(channel)
        for session_id in list(self._by_session):
            await self._refresh_session(session_id)

    async def _refresh_session(self, session_id: str) -> None:
        """Apply re-registered grants to this node's sockets of the session (ACC-6, ACC-7).

        A socket whose session is gone, or was deleted and created again while this node was
        not listening (resync), is dropped as the delete would have dropped it (SES-15).
        """
        connections = self.sockets_of(session_id)
        if not connections:
            return
        session = await self.store.session(session_id)
        current = [c for c in connections if c.belongs_to(session)]
        await self._drop([c for c in connections if not c.belongs_to(session)])
        if session is None:
            return
        for connection in current:
            connection.grants = session.grants
            connection.expires_at = session.expires_at
            for channel, subscription in list(connection.subscriptions.items()):
                if not connection.may(channel, Action.SUBSCRIBE):
                    await subscription.stop(Trigger.REVOKED)

    async def _drop_session(self, session_id: str) -> None:
        await self._drop(self.sockets_of(session_id))

    async def _drop(self, connections: list[Connection]) -> None:
        """Stop deliveries first, then disconnect (SES-15): nothing may follow the delete."""
        for connection in connections:
            await self.end_subscriptions(connection, Trigger.DISCONNECTED)
            if self._disconnect is not None:
                await self._disconnect(connection.sid)
