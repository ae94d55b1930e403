"""The target: the server (or cluster) under test, as cases drive it.

A :class:`Target` has one or more nodes (see :mod:`conformance.nodes`; :mod:`conformance.launch`
starts them). It is also what a case receives as its ``target`` fixture: inside a running case,
``target.channel()``, ``target.client()``, ``target.register()`` and ``target.backend`` work
on that case's event log, and everything they create is cleaned up when the case ends.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp

from conformance.backend import Backend, Registration
from conformance.client import REPLY_TIMEOUT_S, ReplayClient
from conformance.context import current, current_or_none, run_case
from conformance.errors import ConnectRefused, SuiteError
from conformance.eventlog import EventLog
from conformance.expectations import expect_ok, fail
from conformance.faults import FaultProxy
from conformance.protocol import grant
from conformance.registry import CaseHost, CaseSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from conformance.driver import Driver
    from conformance.nodes import Node

__all__ = ["Target"]


class Target(CaseHost):
    """The server under test, and what a case uses to drive it."""

    def __init__(
        self,
        nodes: Sequence[Node],
        api_key: str,
        driver: Driver,
        default_timeout: float,
        *,
        command: str | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.api_key = api_key
        self.driver = driver
        self.default_timeout = default_timeout
        self.command_template = command  # kept so cluster/durability work can add nodes
        self.info: dict[str, Any] = {}
        self._http: aiohttp.ClientSession | None = None
        self._spare_log = EventLog()  # for backend calls made outside a case

    # --- what the target is and claims -----------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """One base URL per node."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The first node's base URL."""
        return self.nodes[0].url

    @property
    def restartable(self) -> bool:
        """True when the suite launched every node and can kill and start it again."""
        return all(node.restartable for node in self.nodes)

    @property
    def features(self) -> frozenset[str]:
        """``info.features``."""
        return frozenset(self.info.get("features", ()))

    @property
    def durable(self) -> bool:
        """``info.durable``."""
        return bool(self.info.get("durable"))

    @property
    def limits(self) -> dict[str, int]:
        """``info.limits``."""
        limits: dict[str, int] = self.info.get("limits", {})
        return limits

    def describe(self) -> str:
        """One line for report headers: the URLs, and the command or image when launched."""
        how = [getattr(n, "command", None) or getattr(n, "image", None) for n in self.nodes]
        launched = [h for h in how if h]
        return ", ".join(self.urls) + (f" (launched: {launched[0]})" if launched else "")

    # --- session lifetime (called by the plugin) -----------------------------------------------

    def open(self) -> None:
        """Create the HTTP session every backend and client of the run shares."""

        async def create() -> aiohttp.ClientSession:
            # No cookie jar: a cookie one client receives (a sticky-session cookie, say) must
            # not leak into another; no connection limit: each WebSocket holds a connection.
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
            )

        self._http = self.driver.run(create(), timeout=10)

    def close(self) -> None:
        """Close the HTTP session and stop the nodes the suite launched."""
        if self._http is not None and not self.driver.closed:
            self.driver.run(self._http.close(), timeout=10)
        self._http = None
        self.stop_nodes()

    def stop_nodes(self) -> None:
        """Stop every node the suite launched (never raises)."""
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # stopping is best effort; the run's outcome is already known
                continue

    def run_case(self, spec: CaseSpec, body: Callable[[], Awaitable[None]]) -> None:
        """Run one case body on the driver (``@case`` calls this)."""
        timeout = spec.timeout or self.default_timeout
        # The case times itself out (with its log); the driver's limit is only a backstop.
        self.driver.run(run_case(spec, body, timeout), timeout=timeout + 30)

    # --- helpers for cases ---------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared aiohttp session."""
        if self._http is None:
            raise SuiteError("the target is not open")
        return self._http

    @property
    def log(self) -> EventLog:
        """The running case's event log."""
        return current().log

    @property
    def backend(self) -> Backend:
        """The backend API of the first node, logging to the running case."""
        return self.backend_at(0)

    def backend_at(self, node: int) -> Backend:
        """The backend API of node ``node``."""
        context = current_or_none()
        log = context.log if context is not None else self._spare_log
        actor = "backend" if node == 0 else f"backend@{node}"
        return Backend(self.http, self.urls[node], self.api_key, log, actor)

    def channel(self, label: str = "") -> str:
        """A fresh channel name for this case: ``room:<case>[-<label>]-<random>``."""
        context = current_or_none()
        slug = context.spec.slug if context is not None else "adhoc"
        return f"room:{slug}{'-' + label if label else ''}-{secrets.token_hex(4)}"

    async def register(
        self,
        grants: Sequence[Mapping[str, Any]] = (),
        *,
        subscribe: Sequence[Mapping[str, Any]] | None = None,
        session_id: str | None = None,
        ttl_s: int | None = None,
        client_id: str | None = None,
        node: int = 0,
    ) -> Registration:
        """Register a session (deleted when the case ends); fails the case unless 200/201."""
        backend = self.backend_at(node)
        session = await backend.register(client_id, grants, subscribe, session_id, ttl_s)
        current().defer(lambda: backend.delete_session(session.session_id))
        return session

    async def client(
        self,
        grants: Sequence[Mapping[str, Any]] | None = None,
        *,
        session: Registration | None = None,
        subscribe: Sequence[Mapping[str, Any]] | None = None,
        ttl_s: int | None = None,
        connect: bool = True,
        node: int = 0,
        proxy: FaultProxy | None = None,
        name: str | None = None,
        timeout: float = REPLY_TIMEOUT_S,
    ) -> ReplayClient:
        """A client of node ``node`` (through ``proxy`` if given), disconnected at case end.

        With ``grants`` a session is registered first; with a session (given or registered)
        and ``connect``, the client connects and a refusal fails the case (CON-1).
        """
        context = current()
        if session is None and grants is not None:
            session = await self.register(grants, subscribe=subscribe, ttl_s=ttl_s, node=node)
        client = ReplayClient(
            proxy.url if proxy is not None else self.urls[node],
            name=name or context.next_name("c"),
            log=context.log,
            session=session,
            max_batch=self.limits.get("max_batch"),
            timeout=timeout,
        )
        context.defer(client.close, early=True)
        if connect and session is not None:
            try:
                await client.connect()
            except ConnectRefused as refused:
                fail(
                    "CON-1",
                    "the connection of a live session accepted",
                    str(refused),
                    actor=client.name,
                )
        return client

    async def epoch(self, channel: str, node: int = 0) -> str:
        """The channel's epoch: the latest the case has seen, else what a subscriber from
        ``"latest"`` is told (a never-used channel gets its epoch then, CHN-3). A case needs it
        to send an offset, which always travels with its epoch (EPO-6)."""
        known = self.log.epoch_of(channel)
        if known is not None:
            return known
        probe = await self.client(grants=[grant(channel, "subscribe")], node=node)
        reply = expect_ok(await probe.subscribe(channel, from_="latest"), clause="SUB-8")
        await probe.close()
        epoch = reply.get("epoch")
        if not isinstance(epoch, str):
            fail("SUB-12", "an epoch in the subscribe reply", reply, channel=channel)
        return epoch

    async def settle(self, channel: str, *clients: ReplayClient, timeout: float = 15.0) -> int:
        """Publish a sentinel to ``channel`` and wait until every client received it; returns
        its offset. Whatever a subscription would deliver before it (a duplicate, a stray
        offset) has arrived by then, so cases compare offsets exactly without sleeping."""
        offset = int((await self.backend.publish(channel, "sentinel"))["offset"])
        for client in clients:
            await client.wait_for_offset(channel, offset, timeout=timeout)
        return offset

    async def proxy(self, node: int = 0) -> FaultProxy:
        """A started :class:`FaultProxy` in front of node ``node``, closed at case end."""
        host, _, port = self.urls[node].removeprefix("http://").partition(":")
        proxy = FaultProxy(host, int(port or 80))
        await proxy.start()
        current().defer(proxy.close)
        return proxy

    def _picked(self, node: int | None) -> list[Node]:
        if not self.restartable:
            raise SuiteError("this target was not launched by the suite and cannot be restarted")
        return self.nodes if node is None else [self.nodes[node]]

    async def kill(self, node: int | None = None) -> None:
        """SIGKILL node ``node`` (all when None); it is started again when the case ends."""
        for picked in self._picked(node):
            await asyncio.to_thread(picked.kill)
            # A case that fails between kill and start must not leave later cases without
            # a target; start() returns at once if the node already runs.
            current().defer(functools.partial(asyncio.to_thread, picked.start))

    async def start(self, node: int | None = None) -> None:
        """Start node ``node`` (all when None) on its port again; waits until it answers."""
        for picked in self._picked(node):
            await asyncio.to_thread(picked.start)

    async def restart(self, node: int | None = None) -> None:
        """Kill then start node ``node`` (all when None)."""
        await self.kill(node)
        await self.start(node)
