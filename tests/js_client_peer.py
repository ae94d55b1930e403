"""Run the JavaScript client library (clients/js) against the reference, for the tests.

``ReferenceNode`` is a reference node that can be stopped and started again on the same port
(a restart of an in-memory reference is an epoch change, EPO-3); ``JsDriver`` runs
clients/js/test/drive.mjs, an application that reads one channel through the library, and
collects the JSON lines it writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from harness import API_KEY

from reference.server.app import ServerOptions, build_app
from reference.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "clients" / "js"
DRIVER = CLIENT_DIR / "test" / "drive.mjs"


def require_node() -> str:
    """The node binary, or skip (fail under CI) saying what is missing."""
    return require_tools(browser=False)[0]


def require_tools(*, browser: bool) -> tuple[str, str]:
    """(node, chromium or ""), or skip (fail under CI) saying what is missing."""
    node, chromium = shutil.which("node"), shutil.which("chromium")
    missing = [] if node else ["node"]
    if not (CLIENT_DIR / "node_modules" / "socket.io-client").is_dir():
        missing.append("npm packages of clients/js (npm ci in clients/js; scripts/test does)")
    if browser and chromium is None:
        missing.append("chromium")
    if browser and not (ROOT / "tests" / "node" / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (npm ci in tests/node)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the JavaScript client tests; missing: {missing}")
        pytest.skip(f"missing: {', '.join(missing)}")
    assert node is not None
    return node, chromium or ""


@contextlib.asynccontextmanager
async def running_reference() -> AsyncIterator[ReferenceNode]:
    """A started ReferenceNode for the block."""
    server = ReferenceNode()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class ReferenceNode:
    """An in-memory reference node on a fixed port, stoppable and restartable."""

    def __init__(self, ping_interval_s: float = 0.5, ping_timeout_s: float = 1.0) -> None:
        self.port = 0
        self._options = ServerOptions(
            api_key=API_KEY, ping_interval_s=ping_interval_s, ping_timeout_s=ping_timeout_s
        )
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Serve a fresh memory store (a new epoch for every channel) on ``self.port``."""
        runner = web.AppRunner(
            build_app(MemoryStore(), self._options), handle_signals=False, access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = runner.addresses[0][1]
        self._runner = runner
        if self._http is None:
            self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 10)
            self._runner = None

    async def close(self) -> None:
        await self.stop()
        if self._http is not None:
            await self._http.close()

    async def call(self, method: str, path: str, body: object = None) -> Any:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with self._http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            reply = await response.json()
            assert response.status in (200, 201), reply
            return reply

    async def publish(self, channel: str, data: object) -> Any:
        return await self.call(
            "POST", f"/replay/v1/channels/{quote(channel, safe='')}/messages", {"data": data}
        )

    async def retain(self, channel: str, max_messages: int) -> Any:
        return await self.call(
            "PUT",
            f"/replay/v1/channels/{quote(channel, safe='')}/retention",
            {"max_messages": max_messages},
        )


class JsDriver:
    """A Node.js script (drive.mjs by default) as a subprocess; ``records`` are its JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, node: str, **config: Any) -> JsDriver:
        """drive.mjs with ``config``."""
        return await cls.spawn(node, str(DRIVER), json.dumps(config))

    @classmethod
    async def spawn(cls, *argv: str) -> JsDriver:
        """Any script that writes JSON lines and reads commands on stdin."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.records.append(json.loads(line))
            self._changed.set()
        self._changed.set()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["event"] == name]

    def offsets(self) -> list[tuple[str, int]]:
        """(epoch, offset) of every message the application received, in order."""
        return [(r["epoch"], o) for r in self.events("messages") for o in r["offsets"]]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    if self.process.returncode is not None or self._reader.done():
                        raise AssertionError(f"driver ended: {await self.stderr()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; last records: {self.records[-8:]}") from None

    async def command(self, cmd: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd}) + "\n").encode())
        await self.process.stdin.drain()

    async def finish(self) -> dict[str, Any]:
        """Close the client; the driver's final record (stats, position)."""
        await self.command("close")
        await self.wait_until(lambda: bool(self.events("done")))
        await asyncio.wait_for(self.process.wait(), 10)
        return self.events("done")[0]

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.process.stderr.read(), 2)).decode()[-3000:]
        return ""

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
