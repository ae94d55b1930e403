"""The scenario rules about lifetimes: sessions that expire, and a target that restarts.

Both wait on the clock or on a process, so they live in their own machine
(:class:`~conformance.scenarios.machine.LifecycleMachine`) that runs fewer examples; every
other rule runs with them there, so expiry and restarts meet subscriptions, acks, retention
and faults.

An expired session (SES-10, SES-17, EVT-14): its token is refused, an event from a socket
the server still keeps answers ``unauthorized``, and registering its id again makes a new
session (201, no cursors). A restart of a non-durable target (EPO-3, SUB-4): every live
connection drops, the sessions are gone (registered again under their ids, 201), and every
channel has a new epoch, so a resume with the old one fails ``epoch_mismatch`` and the
checkers judge each epoch on its own.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import multiple, precondition, rule

from conformance.errors import ConformanceFailure, ConnectionLost, ConnectRefused
from conformance.scenarios.model import (
    BRIEF_TTL_S,
    CHANNELS,
    DISCONNECT_TIMEOUT_S,
    GRANT_SETS,
    REVOCATION_BOUND_S,
    ClientHandle,
    SessionHandle,
)
from conformance.scenarios.stage import SESSIONS, Made, Stage

if TYPE_CHECKING:
    from conformance.backend import Registration

__all__ = ["LifecycleRules"]


def _restartable(machine: Stage) -> bool:
    """A target the suite launched and whose store forgets (EPO-3 then applies to all)."""
    return machine.target.restartable and not machine.target.durable


class LifecycleRules(Stage):
    """Rules that let sessions expire and the target restart."""

    @rule(target=SESSIONS, grant_set=st.sampled_from(GRANT_SETS))
    def register_brief(self, grant_set: str) -> Made:
        """A session with the smallest ``ttl_s``: it expires during the scenario."""
        grants = self.grants_for(grant_set)
        sent = time.monotonic()

        async def go() -> Registration:
            return await self.target.register(grants, ttl_s=BRIEF_TTL_S)

        registered = self.step(go)
        if registered is None:
            return multiple()
        made = SessionHandle(f"s{next(self.counter)}", registered, grant_set, grants)
        made.lapses_at = sent + BRIEF_TTL_S - 0.05  # the server's ttl starts after the send
        made.expired_by = time.monotonic() + BRIEF_TTL_S + 0.1  # and before the answer
        self.made.append(made)
        return made

    @rule(target=SESSIONS)
    def outlive(self) -> Made:
        """Wait until the oldest live brief session has expired (one registered now, with a
        client reading ``a``, if there is none), check what that means, and register its id
        again: a new session (SES-17) joins the bundle, and the old handle stays there inert
        (``revoked``), as its clients belong to the expired session."""
        handle = self._brief()
        if handle is None:
            made = self.register_brief("all")
            if not isinstance(made, SessionHandle):
                return multiple()
            handle = made
            self.step(functools.partial(self._reader_of, handle))
        assert handle.expired_by is not None
        expired_by = handle.expired_by

        async def go() -> Registration:
            await asyncio.sleep(max(0.0, expired_by - time.monotonic()))
            await self._expect_refused(handle)
            await self._expect_unauthorized(handle)
            registered = await self.target.register(
                handle.grants, session_id=handle.registered.session_id
            )
            if registered.status != 201:
                self.judged(
                    ConformanceFailure(
                        "SES-17", "HTTP 201 for an expired session's id", str(registered.status)
                    ),
                    self.channel("a"),
                    "backend",
                )
            return registered

        handle.revoked = True  # its clients belong to the expired session, whatever follows
        registered = self.step(go)
        if registered is None:
            return multiple()
        made = SessionHandle(f"s{next(self.counter)}", registered, handle.grant_set, handle.grants)
        self.made.append(made)
        return made

    async def _reader_of(self, handle: SessionHandle) -> None:
        """A client of ``handle`` (on the first node) reading ``a`` live."""
        proxy = await self.target.proxy(0)
        client = await self.target.client(session=handle.registered, proxy=proxy, connect=False)
        if await self.connect_as(client, handle):
            reader = ClientHandle(client.name, client, proxy, handle, 0)
            self.handles.append(reader)
            await self.subscribe_judged(reader, "a", "latest")

    def _brief(self) -> SessionHandle | None:
        return next((s for s in self.made if s.expired_by is not None and not s.revoked), None)

    async def _expect_refused(self, handle: SessionHandle) -> None:
        """An expired session's token is refused (CON-2, SES-10)."""
        probe = await self.target.client(session=handle.registered, connect=False)
        try:
            await probe.connect(handle.registered.token)
        except ConnectRefused:
            return
        finally:
            await probe.close()
        self.judged(
            ConformanceFailure("SES-10", "the token of an expired session refused", "connected"),
            self.channel("a"),
            probe.name,
        )

    async def _expect_unauthorized(self, handle: SessionHandle) -> None:
        """A socket of the expired session that is still connected gets ``unauthorized``
        for an event, with no effect (EVT-14); it may be gone already (SES-11)."""
        channel = self.channel("c")
        for client in self.handles:
            if client.session is not handle or not client.usable:
                continue
            if client.client.subscription(channel) is not None:
                continue  # already_subscribed may come first: nothing to learn
            try:
                reply = await client.client.subscribe(channel, "latest", timeout=REVOCATION_BOUND_S)
            except (ConnectionLost, ConformanceFailure):
                continue  # disconnected under the request, as SES-11 lets it
            if reply.get("ok") is True:
                self.judged(
                    ConformanceFailure(
                        "EVT-14", "unauthorized for an expired session's event", str(reply)[:200]
                    ),
                    channel,
                    client.label,
                )

    # Once per example: a restart costs a process start, and after one every later step
    # already runs in the new epoch.
    @precondition(lambda self: _restartable(self) and not self.restarted)
    @rule()
    def restart(self) -> None:
        """Kill and start the target: connections drop, sessions and history are gone, and
        every channel gets a new epoch (EPO-3); the sessions are registered again (SES-1) and
        the clients reconnect and resume with the old epoch (SUB-4)."""
        for label in CHANNELS:
            epoch = self.context.log.epoch_of(self.channel(label))
            if epoch is not None:
                self.stale[label].add(epoch)
        sessions = [s for s in self.made if not s.revoked]
        self.restarted = True
        self.tally.faults += 1

        async def go() -> None:
            for client in self.handles:
                client.proxy.heal()
                client.stalled = False
            connected = [c for c in self.handles if c.client.connected]
            await self.target.restart()
            for client in connected:
                await client.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)
            for session in sessions:
                session.registered = await self.target.register(
                    session.grants,
                    subscribe=session.registered.subscribe,
                    session_id=session.registered.session_id,
                )
                session.cursors.clear()
                if session.registered.status != 201:
                    failure = ConformanceFailure(
                        "SES-1",
                        "HTTP 201 for a session id a restart of a non-durable store forgot",
                        str(session.registered.status),
                    )
                    self.judged(failure, self.channel("a"), "backend")
            for client in connected:
                if client.session in sessions:
                    await self.reconnect_and_resume(client)

        self.step(go)
