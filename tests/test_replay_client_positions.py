"""Position stores (replay_client.positions): memory, a JSON file written atomically, SQLite."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from replay_client import FilePositions, MemoryPositions, Position, SqlitePositions

KINDS: dict[str, Callable[[Path], Any]] = {
    "memory": lambda _: MemoryPositions(),
    "file": lambda tmp: FilePositions(tmp / "positions.json"),
    "sqlite": lambda tmp: SqlitePositions(tmp / "positions.sqlite"),
}


@pytest.mark.parametrize("kind", KINDS)
async def test_get_what_was_set_per_channel(kind: str, tmp_path: Path) -> None:
    store = KINDS[kind](tmp_path)
    assert await store.get("a") is None
    await store.set("a", Position("e1", 3))
    await store.set("b", Position("e1", 9))
    await store.set("a", Position("e2", 1))
    assert await store.get("a") == Position("e2", 1)
    assert await store.get("b") == Position("e1", 9)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
async def test_positions_outlive_the_store_object(kind: str, tmp_path: Path) -> None:
    await KINDS[kind](tmp_path).set("orders:7", Position("e1", 2**53 - 1))
    assert await KINDS[kind](tmp_path).get("orders:7") == Position("e1", 2**53 - 1)


async def test_the_file_is_replaced_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    store = FilePositions(path)
    inode = None
    for n in range(1, 6):
        await store.set(f"c{n}", Position("e", n))
        assert json.loads(path.read_text())[f"c{n}"] == {"epoch": "e", "offset": n}
        assert os.stat(path).st_ino != inode  # a new file every time, renamed into place
        inode = os.stat(path).st_ino
    assert sorted(os.listdir(tmp_path)) == ["positions.json"]


async def test_concurrent_sets_all_reach_the_file(tmp_path: Path) -> None:
    store = FilePositions(tmp_path / "p.json")
    await asyncio.gather(*(store.set(f"c{n}", Position("e", n)) for n in range(20)))
    assert len(json.loads((tmp_path / "p.json").read_text())) == 20


async def test_a_broken_file_is_an_error_not_a_silent_restart(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"a": {"epoch": "e", "offset": "7"}}')
    with pytest.raises(ValueError):
        await FilePositions(path).get("a")
