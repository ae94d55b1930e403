"""The reference serves the client most users have: socket.io-client from npm."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from harness import serve

NODE_DIR = Path(__file__).parent / "node"


def node_ready() -> str | None:
    """Why the Node.js peer cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "socket.io-client").is_dir():
        return "npm packages missing: run `npm ci` in tests/node (scripts/test does)"
    return None


@pytest.fixture
def node() -> str:
    reason = node_ready()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Node.js client test: {reason}")
        pytest.skip(reason)
    return shutil.which("node") or "node"


async def test_socket_io_client_receives_the_whole_stream(node: str) -> None:
    async with serve() as served:
        for n in range(1200):
            await served.publish("orders:7", {"n": n, "text": "ünïcode ✓"})
        token = (await served.register())["token"]
        process = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "replay_client.mjs"),
            served.url,
            token,
            "orders:7",
            "1200",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        lines = [json.loads(line) for line in stdout.decode().splitlines()]
        assert process.returncode == 0, (lines[-3:], stderr.decode()[-2000:])
        done = lines[-1]
        assert done["reply"]["ok"] and done["reply"]["from"] == 1
        assert done["offsets"] == list(range(1, 1201))
        assert all(line["batch"] <= 500 for line in lines[:-1])
