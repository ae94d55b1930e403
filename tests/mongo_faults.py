"""A MongoDB database wrapper for tests that counts calls, holds some and fails others.

It stands between a ``MongoStore`` and its database (mongomock-motor or a real one), on the
client side, so a test can make one store slow at an exact step (a held call waits until the
test releases it), make the deployment answer with PyMongo's errors (a step-down, a timeout),
or count what the store asked for. Calls are named ``(collection, method)``; a ``find`` counts
when its cursor runs (``to_list``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Match = Callable[[str, str], bool]

WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "delete_one",
        "delete_many",
    }
)


def writes(collection: str | None = None, *, besides: str | None = None) -> Match:
    """Writes to ``collection`` (any, if None), other than to ``besides``."""

    def match(coll: str, method: str) -> bool:
        return (
            method in WRITES
            and (collection is None or coll == collection)
            and (besides is None or coll != besides)
        )

    return match


@dataclass
class Hold:
    """Calls held at a gate: ``reached`` is set when the first one arrives."""

    match: Match
    skip: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    active: bool = True

    def release(self) -> None:
        self.released.set()


@dataclass
class Failure:
    """Calls answered with ``error()`` while active, at most ``times`` of them if given."""

    match: Match
    error: Callable[[], BaseException]
    times: int | None = None
    skip: int = 0
    hits: int = 0
    active: bool = True
    hit: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first hit

    def stop(self) -> None:
        self.active = False


class FaultyDatabase:
    """A database whose collection calls pass through holds and failures, and are counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.calls: list[tuple[str, str]] = []
        self._holds: list[Hold] = []
        self._failures: list[Failure] = []

    def __getitem__(self, name: str) -> _FaultyCollection:
        return _FaultyCollection(self, name, self.inner[name])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def hold(self, match: Match, *, skip: int = 0) -> Hold:
        """Hold the first matching call after ``skip`` of them (and only that one)."""
        gate = Hold(match, skip)
        self._holds.append(gate)
        return gate

    def fail(
        self,
        match: Match,
        error: Callable[[], BaseException],
        *,
        times: int | None = None,
        skip: int = 0,
    ) -> Failure:
        """Fail matching calls, after letting ``skip`` of them through."""
        failure = Failure(match, error, times, skip)
        self._failures.append(failure)
        return failure

    def count(self, match: Match) -> int:
        return sum(1 for coll, method in self.calls if match(coll, method))

    async def enter(self, coll: str, method: str) -> None:
        """Record a call, then hold it or fail it as the rules say."""
        self.calls.append((coll, method))
        for failure in self._failures:
            if failure.active and failure.match(coll, method):
                if failure.skip > 0:
                    failure.skip -= 1
                    continue
                failure.hits += 1
                failure.hit.set()
                if failure.times is not None and failure.hits >= failure.times:
                    failure.active = False
                raise failure.error()
        for gate in self._holds:
            if gate.active and gate.match(coll, method):
                if gate.skip > 0:
                    gate.skip -= 1
                    continue
                gate.active = False
                gate.reached.set()
                await gate.released.wait()


class _FaultyCursor:
    def __init__(self, db: FaultyDatabase, coll: str, inner: Any) -> None:
        self._db, self._coll, self._inner = db, coll, inner

    def sort(self, *args: Any) -> _FaultyCursor:
        self._inner = self._inner.sort(*args)
        return self

    def limit(self, *args: Any) -> _FaultyCursor:
        self._inner = self._inner.limit(*args)
        return self

    async def to_list(self, *args: Any) -> list[Any]:
        await self._db.enter(self._coll, "find")
        return list(await self._inner.to_list(*args))


class _FaultyCollection:
    def __init__(self, db: FaultyDatabase, name: str, inner: Any) -> None:
        self._db, self._name, self._inner = db, name, inner

    def find(self, *args: Any, **kwargs: Any) -> _FaultyCursor:
        return _FaultyCursor(self._db, self._name, self._inner.find(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._db.enter(self._name, name)
            return await attr(*args, **kwargs)

        return call
