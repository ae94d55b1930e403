"""The scenario machine's rules: random interleavings of sessions, clients, faults, publishes.

:class:`ReplayMachine` takes the target; its stage (:mod:`conformance.scenarios.stage`) runs
each rule's work on the suite's loop and judges the whole trace at teardown. Bundles hold what
the rules made: a session leaves ``sessions`` when it is revoked (``consumes``), so no rule
draws a dead session. Its clients stay in ``clients``: a client outlives its session, as in a
real application, and the rules that need a live one check ``session.revoked``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import (
    MultipleResults,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

from conformance.protocol import grants_allow
from conformance.scenarios.model import (
    AUTO_SUBSCRIBE,
    CHANNELS,
    DISCONNECT_TIMEOUT_S,
    GRANT_SETS,
    LIFECYCLE_CLAUSES,
    RACING,
    REVOCATION_BOUND_S,
    SCENARIO_CLAUSES,
    STARTS,
    ClientHandle,
    SessionHandle,
)
from conformance.scenarios.rules_faults import FaultRules
from conformance.scenarios.rules_flow import FlowRules
from conformance.scenarios.rules_history import HistoryRules
from conformance.scenarios.rules_input import InputRules
from conformance.scenarios.rules_lifecycle import LifecycleRules
from conformance.scenarios.rules_publish import PublishRules
from conformance.scenarios.rules_retention import RetentionRules
from conformance.scenarios.stage import CLIENTS, LABELS, NODES, SESSIONS, Connected, Made

if TYPE_CHECKING:
    from conformance.backend import Registration

__all__ = ["LIFECYCLE_CLAUSES", "SCENARIO_CLAUSES", "LifecycleMachine", "ReplayMachine"]


class ReplayMachine(FaultRules, PublishRules, RetentionRules, HistoryRules, InputRules):
    """The rules; see the stage for how they run and how the run is judged."""

    sessions = SESSIONS
    clients = CLIENTS

    # --- a starting cast, so that client rules apply from the first step -------------------

    def _cast(self, grant_set: str) -> SessionHandle | None:
        """The starting cast's session, registered by whichever initializer runs first."""
        if self.cast is None:
            made = self.register(grant_set, "none")
            self.cast = made if isinstance(made, SessionHandle) else None
        return self.cast

    @initialize(target=SESSIONS, grant_set=st.sampled_from(GRANT_SETS))
    def cast_session(self, grant_set: str) -> Made:
        """The cast's session, also in the bundle so that rules revoke and narrow it."""
        handle = self._cast(grant_set)
        return handle if handle is not None else multiple()

    @initialize(target=CLIENTS)
    def two_subscribers(self) -> MultipleResults[ClientHandle]:
        """Two clients (on the first and last node) reading ``a`` from the beginning and
        ``b`` live, so that every publish to those is delivered somewhere."""
        handle = self._cast("all")
        if handle is None:
            return multiple()
        cast = [self.connect(handle, 0), self.connect(handle, self.last_node)]
        clients = [client for client in cast if isinstance(client, ClientHandle)]
        for client in clients:
            self.subscribe(client, "a", "beginning")
            self.subscribe(client, "b", "latest")
        if clients and "cursors" in self.features:
            self._resume_through_the_cursor(clients[0])
        return multiple(*clients)

    def _resume_through_the_cursor(self, handle: ClientHandle) -> None:
        """The cast reads two messages of ``a``, acknowledges them and subscribes again with
        ``from`` omitted (ACK-4, SUB-9): once per example, because the draws reach the ack rule
        rarely (twice in one run of 100 examples), and a cursor read back wrong shows only
        through a resume like this."""
        channel = self.channel("a")

        async def go() -> None:
            backend = self.target.backend_at(0)
            offsets = [(await backend.publish(channel, self.next_data()))["offset"] for _ in "ab"]
            await handle.client.wait_for_offset(channel, max(offsets))
            await handle.client.unsubscribe(channel)
            await self.subscribe_judged(handle, "a", "omitted")  # acks what it read first

        if handle.usable and handle.client.subscription(channel) is not None:
            self.step(go)

    # --- sessions ---------------------------------------------------------------------------

    @rule(
        target=SESSIONS,
        grant_set=st.sampled_from(GRANT_SETS),
        auto=st.sampled_from(AUTO_SUBSCRIBE),
    )
    def register(self, grant_set: str, auto: str) -> Made:
        grants, entries = self.grants_for(grant_set), self.auto_entries(auto)

        async def go() -> Registration:
            return await self.target.register(grants, subscribe=entries)

        registered = self.step(go)
        if registered is None:
            return multiple()
        auto_channels = frozenset(e["channel"] for e in entries or ())
        made = SessionHandle(f"s{next(self.counter)}", registered, grant_set, grants, auto_channels)
        self.made.append(made)
        return made

    @rule(handle=SESSIONS, grant_set=st.sampled_from(GRANT_SETS))
    def reregister(self, handle: SessionHandle, grant_set: str) -> None:
        if handle.revoked:
            return  # an expired session another handle took the id of
        grants = self.grants_for(grant_set)

        async def go() -> Registration:
            return await self.target.register(grants, session_id=handle.registered.session_id)

        before = {
            (c, label)
            for c in self.handles
            for label in CHANNELS
            if c.session is handle and c.usable and c.client.subscription(self.channel(label))
        }
        registered = self.step(go)
        if registered is None:
            return
        handle.registered = registered  # SES-4: the old token no longer connects
        handle.expired_by = None  # a new expiry, the default ttl_s (SES-2)
        if registered.status == 201:
            handle.cursors.clear()  # it had expired: a new session (SES-17)
        else:
            handle.lapses_at = None  # still the same session, now long-lived
        handle.grant_set, handle.grants = grant_set, grants
        for client, label in before:
            if not grants_allow(grants, self.channel(label), "subscribe"):
                self.step(functools.partial(self._expect_revoked, client, label))

    async def _expect_revoked(self, client: ClientHandle, label: str) -> None:
        """A subscription the new grants no longer cover ends within 1 s (ACC-6)."""
        await client.client.wait_for_event(
            "replay:unsubscribed",
            lambda event: event.get("channel") == self.channel(label),
            timeout=REVOCATION_BOUND_S,
            clause="ACC-6",
        )

    @rule(handle=consumes(SESSIONS))
    def revoke(self, handle: SessionHandle) -> None:
        """Delete the session: its sockets must be gone within 1 s (SES-15)."""
        if handle.revoked:
            return  # an expired session another handle took the id of
        connected = [c for c in self.handles if c.session is handle and c.client.connected]

        async def go() -> None:
            await self.target.backend.delete_session(handle.registered.session_id)
            for client in connected:
                client.proxy.heal()  # a stalled socket cannot hear its disconnect
                client.stalled = False
                await client.client.wait_disconnected(timeout=REVOCATION_BOUND_S, clause="SES-15")

        handle.revoked = True  # whatever the answer: nothing may be delivered after it
        self.step(go)

    # --- clients and faults -----------------------------------------------------------------

    @rule(target=CLIENTS, handle=SESSIONS, node=NODES)
    def connect(self, handle: SessionHandle, node: int) -> Connected:
        async def go() -> ClientHandle | None:
            proxy = await self.target.proxy(node)
            client = await self.target.client(
                session=handle.registered, proxy=proxy, node=node, connect=False
            )
            if not await self.connect_as(client, handle):
                return None
            return ClientHandle(client.name, client, proxy, handle, node)

        made = self.step(go)
        if made is None:
            return multiple()
        self.handles.append(made)
        return made

    @rule(handle=CLIENTS)
    def reconnect(self, handle: ClientHandle) -> None:
        """Reconnect with the session's current token and resume every channel at last + 1."""
        if handle.client.connected or handle.session.revoked:
            return
        handle.proxy.heal()
        handle.stalled = False
        self.step(functools.partial(self.reconnect_and_resume, handle))

    # --- channels ---------------------------------------------------------------------------

    @rule(handle=CLIENTS, label=LABELS, start=st.sampled_from(STARTS))
    def subscribe(self, handle: ClientHandle, label: str, start: str) -> None:
        if handle.usable and not handle.session.revoked:
            self.step(lambda: self.subscribe_judged(handle, label, start))

    @rule(handle=CLIENTS, label=LABELS)
    def unsubscribe(self, handle: ClientHandle, label: str) -> None:
        if handle.usable and handle.client.subscription(self.channel(label)) is not None:
            self.step(lambda: handle.client.unsubscribe(self.channel(label)))

    @rule(
        handle=CLIENTS,
        label=LABELS,
        missed=st.integers(0, 12),
        node=NODES,
        via_cursor=st.booleans(),
    )
    def drop_and_resume(
        self, handle: ClientHandle, label: str, missed: int, node: int, via_cursor: bool = False
    ) -> None:
        """Cut the connection (no goodbye), publish while it is down, reconnect and resume
        every channel from the last offset seen + 1 with its epoch (RES-1). ``via_cursor``
        (feature ``cursors``): first acknowledge the last offset of ``label``, and resume that
        channel through the session's cursor, with ``from`` omitted (SUB-9, CUR-1)."""
        handle = self.reader(handle, label) or handle  # one that read it, if any did
        if not handle.usable or handle.session.revoked:
            return
        channel = self.channel(label)
        span = handle.client.subscription(channel)
        acked = via_cursor and "cursors" in self.features and span is not None and span.offsets

        async def go() -> None:
            if acked and span is not None:
                epoch = span.epoch if isinstance(span.epoch, str) else None
                await self.ack_judged(handle, channel, span.offsets[-1], epoch)
            await handle.proxy.cut()
            await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)
            backend = self.target.backend_at(node)
            for _ in range(missed):
                await backend.publish(channel, self.next_data())
            if not await self.connect_as(handle.client, handle.session):
                return
            for resumed in CHANNELS:
                if handle.client.stream(self.channel(resumed)).subscriptions:
                    how = "omitted" if acked and resumed == label else "resume"
                    await self.subscribe_judged(handle, resumed, how)

        self.step(go)

    @rule(handle=CLIENTS, label=LABELS, start=st.sampled_from(STARTS))
    def resubscribe(self, handle: ClientHandle, label: str, start: str) -> None:
        """Unsubscribe and subscribe again at once (UNS-3, UNS-4, RES-2)."""
        channel = self.channel(label)
        if not handle.usable or handle.client.subscription(channel) is None:
            return

        async def go() -> None:
            # Publishes race the unsubscribe: nothing may arrive after its reply (UNS-3).
            backend = self.target.backend_at(handle.node)
            racing = asyncio.gather(
                *(backend.publish(channel, self.next_data()) for _ in range(RACING))
            )
            await handle.client.unsubscribe(channel)
            await racing
            await self.subscribe_judged(handle, label, start)

        self.step(go)

    @precondition(lambda self: "cursors" in self.features)
    @rule(handle=CLIENTS, label=LABELS, back=st.integers(0, 3), resume=st.booleans())
    def ack(self, handle: ClientHandle, label: str, back: int, resume: bool) -> None:
        """``handle`` (or else the first client that has read ``label``, as in a real
        application something acknowledges) acknowledges a delivered offset (the last, or one
        ``back`` before it); with
        ``resume``, unsubscribe and subscribe again through the cursor (ACK-4, SUB-9,
        CUR-1, CUR-2): what follows the acknowledged offset comes again, nothing before."""
        channel = self.channel(label)
        reader = self.reader(handle, label)
        span = reader.client.subscription(channel) if reader is not None else None
        if reader is None or span is None or not span.offsets:
            return
        handle = reader
        epoch = span.epoch if isinstance(span.epoch, str) else None
        offset = span.offsets[max(0, len(span.offsets) - 1 - back)]

        async def go() -> None:
            await self.ack_judged(handle, channel, offset, epoch)
            if resume:
                await handle.client.unsubscribe(channel)
                await self.subscribe_judged(handle, label, "omitted")

        self.step(go)


class LifecycleMachine(LifecycleRules, FlowRules, ReplayMachine):
    """Every rule, and those that wait on the clock, a process or a long flood: sessions
    that expire, restarts, a slow reader. Each example costs seconds, so the scenario test
    runs this machine with :data:`~conformance.scenarios.model.LIFECYCLE_SHARE` times fewer
    examples than :class:`ReplayMachine`."""
