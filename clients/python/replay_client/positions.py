"""Position stores: ``{epoch, offset}`` per channel, the last message the application
finished with. Anything with ``get`` and ``set`` (plain or async) is a store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

from replay_client.records import Position

__all__ = ["FilePositions", "MemoryPositions", "PositionStore", "SqlitePositions"]


class PositionStore(Protocol):
    """The pluggable store: both methods may be plain or async."""

    def get(self, channel: str) -> Position | Awaitable[Position | None] | None: ...

    def set(self, channel: str, position: Position) -> Awaitable[None] | None: ...


class MemoryPositions:
    """Positions for the life of the process (the default)."""

    def __init__(self) -> None:
        self._positions: dict[str, Position] = {}

    async def get(self, channel: str) -> Position | None:
        return self._positions.get(channel)

    async def set(self, channel: str, position: Position) -> None:
        self._positions[channel] = position


def _parse(raw: object) -> Position:
    if not isinstance(raw, dict):
        raise ValueError(f"not a position: {raw!r}")
    epoch, offset = raw.get("epoch"), raw.get("offset")
    if not isinstance(epoch, str) or not isinstance(offset, int) or isinstance(offset, bool):
        raise ValueError(f"not a position: {raw!r}")
    return Position(epoch, offset)


class FilePositions:
    """Positions in one JSON file, ``{channel: {"epoch", "offset"}}``, replaced atomically
    on every ``set`` (write a temporary file, fsync, rename), so a crash leaves the old
    file or the new one, never half of one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._positions: dict[str, Position] | None = None
        self._lock = asyncio.Lock()  # one writer at a time: the last set wins on disk too

    def _load(self) -> dict[str, Position]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{self._path}: not a JSON object")
        return {str(channel): _parse(entry) for channel, entry in raw.items()}

    def _write(self, positions: dict[str, Position]) -> None:
        text = json.dumps(
            {c: {"epoch": p.epoch, "offset": p.offset} for c, p in positions.items()},
            ensure_ascii=False,
            sort_keys=True,
        )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def _loaded(self) -> dict[str, Position]:
        if self._positions is None:
            self._positions = await asyncio.to_thread(self._load)
        return self._positions

    async def get(self, channel: str) -> Position | None:
        async with self._lock:
            return (await self._loaded()).get(channel)

    async def set(self, channel: str, position: Position) -> None:
        async with self._lock:
            positions = dict(await self._loaded())
            positions[channel] = position
            await asyncio.to_thread(self._write, positions)
            self._positions = positions


class SqlitePositions:
    """Positions in an SQLite table (stdlib ``sqlite3``, each call in a worker thread, on
    its own connection, so the event loop never waits on the disk)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS replay_positions "
        "(channel TEXT PRIMARY KEY, epoch TEXT NOT NULL, offset INTEGER NOT NULL)"
    )

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=30)
        db.execute(self._SCHEMA)
        return db

    def _get(self, channel: str) -> Position | None:
        with contextlib.closing(self._connect()) as db:
            row = db.execute(
                "SELECT epoch, offset FROM replay_positions WHERE channel = ?", (channel,)
            ).fetchone()
        return None if row is None else Position(str(row[0]), int(row[1]))

    def _set(self, channel: str, position: Position) -> None:
        with contextlib.closing(self._connect()) as db, db:  # `with db`: one transaction
            db.execute(
                "INSERT INTO replay_positions (channel, epoch, offset) VALUES (?, ?, ?) "
                "ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch, "
                "offset = excluded.offset",
                (channel, position.epoch, position.offset),
            )

    async def get(self, channel: str) -> Position | None:
        return await asyncio.to_thread(self._get, channel)

    async def set(self, channel: str, position: Position) -> None:
        await asyncio.to_thread(self._set, channel, position)
