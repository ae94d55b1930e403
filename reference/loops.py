"""Which event loop the server runs on: uvloop where it is installed, else asyncio's own.

uvloop (the ``uvloop`` extra) implements the loop and its TCP transports in C over libuv; on
the live fan-out benchmark it measured better than asyncio's selector loop (see bench/README.md),
so it is the default wherever it can be imported. ``--event-loop asyncio`` opts out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop named by ``choice`` and its factory; ``auto`` picks uvloop if installed.

    Raises ``ValueError`` for ``uvloop`` when it is not installed.
    """
    if choice not in CHOICES:
        raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("--event-loop uvloop needs the uvloop extra installed") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop
