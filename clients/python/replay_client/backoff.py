"""Reconnect and retry delays: exponential, capped, with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffOptions"]


@dataclass(frozen=True)
class BackoffOptions:
    """``min_delay`` doubling to ``max_delay`` (seconds), each delay multiplied by a random
    factor in ``[1 - jitter, 1 + jitter]``."""

    min_delay: float = 0.25
    max_delay: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("backoff needs 0 < min_delay <= max_delay")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within [0, 1]")


class Backoff:
    """The delays of one series of attempts; ``reset()`` once an attempt held."""

    def __init__(
        self, options: BackoffOptions, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        self._options = options
        self._uniform = uniform
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempts

    def next_delay(self) -> float:
        """The delay before the next attempt."""
        o = self._options
        # min(…) before multiplying keeps 2**attempts from overflowing a float.
        base = min(o.max_delay, o.min_delay * 2.0 ** min(self._attempts, 64))
        self._attempts += 1
        return base * self._uniform(1 - o.jitter, 1 + o.jitter)

    def reset(self) -> None:
        self._attempts = 0
