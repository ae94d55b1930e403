"""Named events with plain or async handlers, awaited in the order they were added."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Emitter", "Handler", "settle"]

T = TypeVar("T")
Handler = Callable[[Any], object]


async def settle(value: T | Awaitable[T]) -> T:
    """``value``, awaited when it is awaitable: what a plain-or-async callback returned."""
    if inspect.isawaitable(value):
        return await value
    return value


class Emitter:
    """``on(name, handler)`` / ``off(name, handler)``; ``emit`` awaits each handler."""

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names
        self._handlers: dict[str, list[Handler]] = {name: [] for name in names}

    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` (awaited if it returns an awaitable) on every ``name``."""
        self._check(name)
        self._handlers[name].append(handler)

    def off(self, name: str, handler: Handler) -> None:
        """Stop calling ``handler``; one that was never added is ignored."""
        self._check(name)
        if handler in self._handlers[name]:
            self._handlers[name].remove(handler)

    async def emit(self, name: str, event: object) -> None:
        """Run the handlers in order; an exception propagates to the caller."""
        for handler in list(self._handlers[name]):
            await settle(handler(event))

    def _check(self, name: str) -> None:
        if name not in self._names:
            raise ValueError(f"unknown event {name!r}; one of {sorted(self._names)}")
