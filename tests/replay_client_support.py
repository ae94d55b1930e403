"""What the ``test_replay_client*`` files share: a backend speaking the HTTP API of any
target, a reference on a chosen port (to restart it in place), an application that records
what the library hands it, and the tally the fault tests print."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from reference.core.model import Limits
from reference.server.app import ServerOptions, build_app
from reference.store.memory import MemoryStore
from replay_client import Message, MessagesEvent, Subscription

REPORTS = Path(__file__).resolve().parents[1] / "reports"
PYTHON_DIR = Path(__file__).resolve().parents[1] / "clients" / "python"
REFERENCE_KEY = "replay-client-test-key"


@dataclass
class Backend:
    """The application's backend: registers sessions, publishes, sets retention."""

    url: str
    api_key: str
    http: aiohttp.ClientSession
    token_calls: int = 0

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)

    async def publish(self, channel: str, data: object) -> dict[str, Any]:
        path = f"/replay/v1/channels/{quote(channel, safe='')}/messages"
        status, reply = await self.call("POST", path, {"data": data})
        assert status == 201, reply
        return reply  # type: ignore[no-any-return]

    async def retain(self, channel: str, max_messages: int) -> None:
        path = f"/replay/v1/channels/{quote(channel, safe='')}/retention"
        status, reply = await self.call("PUT", path, {"max_messages": max_messages})
        assert status == 200, reply

    def get_token(self, session_id: str, **registration: Any) -> Callable[[], Any]:
        """A ``get_token`` that (re-)registers ``session_id`` on every call, as an
        application's backend route would (SES-2, SES-4: each call rotates the token)."""

        async def get_token() -> str:
            self.token_calls += 1
            body = {
                "session_id": session_id,
                "client_id": "replay-client-tests",
                "grants": [{"channels": "*", "actions": ["subscribe", "history"]}],
                **registration,
            }
            status, reply = await self.call("POST", "/replay/v1/sessions", body)
            assert status in (200, 201), reply
            return str(reply["token"])

        return get_token


@contextlib.asynccontextmanager
async def reference_on(
    port: int, *, ping_interval_s: float = 25.0, ping_timeout_s: float = 20.0
) -> AsyncIterator[str]:
    """An in-memory reference node on ``port`` (a new one has a new epoch, EPO-3)."""
    options = ServerOptions(
        api_key=REFERENCE_KEY,
        limits=Limits(),
        ping_interval_s=ping_interval_s,
        ping_timeout_s=ping_timeout_s,
    )
    # A short shutdown: leaving the block stops the node as a crash would, without waiting
    # for its clients to hang up.
    app = build_app(MemoryStore(), options)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@dataclass
class Application:
    """Records what a subscription hands over: every finished message and every event."""

    delivered: list[tuple[str, int, Any]] = field(default_factory=list)  # (epoch, offset, data)
    events: list[tuple[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_messages(self, messages: list[Message], ctx: MessagesEvent) -> None:
        await asyncio.sleep(0)  # an async handler, awaited before the position advances
        self.delivered += [(ctx.epoch, m.offset, m.data) for m in messages]
        self.changed.set()

    def watch(self, subscription: Subscription) -> Subscription:
        for name in ("subscribed", "unsubscribed", "error"):
            subscription.on(name, lambda event, name=name: self._record(name, event))
        return subscription

    def _record(self, name: str, event: Any) -> None:
        self.events.append((name, event))
        self.changed.set()

    def offsets(self, epoch: str | None = None) -> list[int]:
        return [offset for e, offset, _ in self.delivered if epoch in (None, e)]

    def named(self, name: str) -> list[Any]:
        return [event for n, event in self.events if n == name]

    async def until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``condition``: for the client's own state, which no event announces."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@dataclass
class Tally:
    """What the fault runs survived, printed at the end and written to reports/."""

    target: str
    runs: int = 0
    disconnects: int = 0
    messages: int = 0
    stalls: int = 0
    delays: int = 0
    duplicates_dropped: int = 0

    def line(self) -> str:
        return (
            f"replay_client fault test against {self.target}: {self.runs} runs, "
            f"{self.disconnects} forced disconnects, {self.stalls} stalls, {self.delays} "
            f"delay windows, {self.messages} messages, each delivered exactly once in order "
            f"({self.duplicates_dropped} redelivered duplicates dropped by the guard)"
        )

    def write(self) -> None:
        REPORTS.mkdir(exist_ok=True)
        path = REPORTS / f"replay-client-faults-{self.target}.json"
        path.write_text(json.dumps(self.__dict__ | {"summary": self.line()}, indent=2) + "\n")
        print("\n" + self.line(), flush=True)


def ci() -> bool:
    return bool(os.environ.get("CI"))
