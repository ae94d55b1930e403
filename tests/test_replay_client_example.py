"""The README's example runs: clients/python/examples/follow.py against the reference, twice,
the second run resuming from the positions file the first one left."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
from replay_client_support import PYTHON_DIR, REFERENCE_KEY, Backend
from replay_client_support import reference_on as reference

EXAMPLE = PYTHON_DIR / "examples" / "follow.py"


async def follow(url: str, count: int, positions: Path) -> list[str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(PYTHON_DIR), *sys.path])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), url, REFERENCE_KEY, "news", str(count), str(positions),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode().splitlines()


async def test_the_example_follows_and_resumes(tmp_path: Path) -> None:
    positions = tmp_path / "positions.json"
    async with reference(0) as url, aiohttp.ClientSession() as http:
        backend = Backend(url, REFERENCE_KEY, http)
        for n in range(3):
            await backend.publish("news", {"n": n})
        first = await follow(url, 3, positions)
        assert first[:2] == ["history page: [1, 2] head 3", "history page: [3] head 3"]
        assert first[2:] == [
            "subscribed from 1 False",
            "message 1 {'n': 0}",
            "message 2 {'n': 1}",
            "message 3 {'n': 2}",
        ]
        for n in range(3, 5):
            await backend.publish("news", {"n": n})
        second = await follow(url, 5, positions)
        assert second[3:] == ["subscribed from 4 True", "message 4 {'n': 3}", "message 5 {'n': 4}"]


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (PYTHON_DIR / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in readme
