"""The suite's own event loop, in a background thread, driven from synchronous pytest code.

Cases are coroutines, but pytest (and whatever asyncio plugin an adapter author has configured,
or not) sees only plain functions: each case runs on this one loop through :meth:`Driver.run`.
One loop for the whole session also lets session-wide objects (HTTP sessions, clients) live
across cases without being tied to a per-test loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Final, TypeVar

from conformance.errors import CaseTimeout, SuiteError

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

__all__ = ["CaseTimeout", "Driver"]

T = TypeVar("T")

# How long a timed-out coroutine gets to run its clean-up (finally blocks) after cancellation.
_CANCEL_GRACE_S: Final = 10.0


class Driver:
    """An asyncio loop running in a daemon thread; ``run`` executes coroutines on it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="replay-conformance-loop", daemon=True
        )
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop every coroutine of the suite runs on."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._loop.is_closed()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and return its result or raise its exception.

        After ``timeout`` seconds the coroutine is cancelled (its ``finally`` blocks run) and
        :class:`CaseTimeout` is raised. Must not be called from the loop's own thread.
        """
        if threading.current_thread() is self._thread:
            raise SuiteError("Driver.run called from the driver's own loop; await instead")
        if self._loop.is_closed():
            coro.close()
            raise SuiteError("the conformance driver is closed")
        done = threading.Event()
        holder: list[asyncio.Task[T]] = []

        def start() -> None:
            task = self._loop.create_task(coro)
            task.add_done_callback(lambda _: done.set())
            holder.append(task)

        self._loop.call_soon_threadsafe(start)
        try:
            finished = done.wait(timeout)
        except BaseException:  # KeyboardInterrupt: stop the coroutine before unwinding
            self._cancel(holder, done)
            raise
        if not finished:
            self._cancel(holder, done)
            raise CaseTimeout(f"did not finish within {timeout:g} s (cancelled)")
        task = holder[0]
        if task.cancelled():
            raise CaseTimeout("was cancelled")
        return task.result()  # raises the coroutine's exception, with its traceback

    def _cancel(self, holder: list[asyncio.Task[T]], done: threading.Event) -> None:
        def cancel() -> None:
            if holder:
                holder[0].cancel()

        self._loop.call_soon_threadsafe(cancel)
        done.wait(_CANCEL_GRACE_S)

    def close(self) -> None:
        """Cancel what is left on the loop, stop it and join its thread. Idempotent."""
        if self._loop.is_closed():
            return

        async def drain() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        if self._thread.is_alive():
            # If something ignores cancellation, stop the loop regardless.
            with contextlib.suppress(CaseTimeout):
                self.run(drain(), timeout=_CANCEL_GRACE_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CANCEL_GRACE_S)
        if not self._loop.is_running():
            self._loop.close()
