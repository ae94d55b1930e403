"""Shared by the benchmarks: run a reference server in its own process, publish into it.

The server gets its own process (and so its own core on a 2-core machine), so the numbers
measure the server, not a client competing with it for one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp


def reference_argv(api_key: str, store: str = "memory") -> list[str]:
    """The command that serves replay/1 on a free port: the reference, or ``REPLAY_BENCH_CMD``.

    ``REPLAY_BENCH_CMD`` is a command with ``{port}`` (given 0), ``{api_key}`` and ``{store}``,
    whose first line of output ends with its URL (e.g. the Node adapter).
    """
    template = os.environ.get("REPLAY_BENCH_CMD")
    if template:
        return shlex.split(template.format(port=0, api_key=api_key, store=store))
    return [sys.executable, "-m", "reference", "--port", "0", "--api-key", api_key,
            "--store", store, "--log-level", "warning"]  # fmt: skip


@contextlib.asynccontextmanager
async def reference_server(store: str = "memory") -> AsyncIterator[tuple[str, str]]:
    """Start ``reference_argv`` (``python -m reference``); yield (url, api key)."""
    api_key = secrets.token_hex(16)
    argv = reference_argv(api_key, store)
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    assert process.stdout is not None
    first = (await process.stdout.readline()).decode()
    url = first.strip().rsplit(" ", 1)[1]
    try:
        yield url, api_key
    finally:
        process.terminate()
        await process.wait()


class Backend:
    """The backend HTTP API, for filling channels and registering sessions."""

    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str) -> None:
        self.http = http
        self.url = url + "/replay/v1"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def register(self, channels: str = "*") -> str:
        body = {
            "client_id": "bench",
            "grants": [{"channels": channels, "actions": ["subscribe", "publish"]}],
        }
        async with self.http.post(self.url + "/sessions", json=body, headers=self.headers) as r:
            return str((await r.json())["token"])

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        path = f"{self.url}/channels/{quote(channel, safe='')}/messages"
        async with self.http.post(path, json={"data": data}, headers=self.headers) as r:
            assert r.status == 201, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def fill(self, channel: str, items: Iterable[Any], concurrency: int = 32) -> None:
        """Publish every item (order not guaranteed across the concurrent requests)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                await self.publish(channel, queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
