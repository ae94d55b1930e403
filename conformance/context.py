"""The running case: its event log, its clean-ups, and the runner that ends it with a verdict.

:func:`run_case` runs a case body inside a fresh :class:`CaseContext` (the ``target``'s
helpers find it through :func:`current`), cleans up what the case created, and raises the
earliest problem found, with the later ones attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from conformance import history
from conformance.errors import (
    CaseTimeout,
    ConformanceFailure,
    ConnectionLost,
    ConnectRefused,
    SuiteError,
)
from conformance.eventlog import EventLog, active_log

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from conformance.registry import CaseSpec

__all__ = ["CaseContext", "activated", "current", "current_or_none", "run_case"]

_CLEANUP_TIMEOUT_S: Final = 10.0


@dataclass(eq=False)
class CaseContext:
    """The state of one running case: its log and what to clean up when it ends."""

    spec: CaseSpec
    log: EventLog = field(default_factory=EventLog)
    _early: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    _late: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    _names: dict[str, int] = field(default_factory=dict)
    cache: dict[object, Any] = field(default_factory=dict)

    def defer(self, cleanup: Callable[[], Awaitable[object]], *, early: bool = False) -> None:
        """Run ``cleanup`` when the case ends; ``early`` ones (clients) run before the rest."""
        (self._early if early else self._late).append(cleanup)

    def next_name(self, prefix: str) -> str:
        """``c1``, ``c2``, ... : a short unique actor name for the log."""
        self._names[prefix] = self._names.get(prefix, 0) + 1
        return f"{prefix}{self._names[prefix]}"

    async def close(self) -> None:
        """Run the clean-ups, early ones first; a clean-up failure is not the case's failure."""
        for group in (self._early, self._late):
            calls, group[:] = list(group), []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLEANUP_TIMEOUT_S):
                    await asyncio.gather(*(call() for call in calls), return_exceptions=True)


_current: contextvars.ContextVar[CaseContext | None] = contextvars.ContextVar(
    "replay_case", default=None
)


@contextlib.contextmanager
def activated(context: CaseContext) -> Iterator[None]:
    """Make ``context`` the running case inside a coroutine (for code that drives the suite's
    loop itself, such as the Hypothesis scenarios, instead of going through ``@case``)."""
    tokens = (_current.set(context), active_log.set(context.log))
    try:
        yield
    finally:
        _current.reset(tokens[0])
        active_log.reset(tokens[1])


def current() -> CaseContext:
    """The context of the running case; raises :class:`SuiteError` outside a case."""
    context = _current.get()
    if context is None:
        raise SuiteError("this helper only works inside a running @case")
    return context


def current_or_none() -> CaseContext | None:
    """The context of the running case, or None outside a case."""
    return _current.get()


async def run_case(
    spec: CaseSpec, body: Callable[[], Awaitable[None]], timeout: float | None = None
) -> None:
    """Run a case body in a fresh :class:`CaseContext`, clean up, then fail on violations.

    After ``timeout`` seconds the body is cancelled and :class:`CaseTimeout` raised, with the
    end of the event log (what the case was waiting for). The failure raised names the
    earliest problem; later ones are attached as ``others``.
    """
    context = CaseContext(spec)
    tokens = (_current.set(context), active_log.set(context.log))
    raised: BaseException | None = None
    try:
        async with asyncio.timeout(timeout) as scope:
            await body()
    except TimeoutError as exc:
        raised = exc
        if scope.expired():
            raised = CaseTimeout(
                f"the case did not finish within {timeout:g} s", context.log.tail(limit=15)
            )
    except (ConnectionLost, ConnectRefused) as exc:
        raised = _unexpected(exc, context)
    except Exception as exc:
        raised = exc
    finally:
        seen_before_end = len(context.log.violations)
        await context.close()
        _current.reset(tokens[0])
        active_log.reset(tokens[1])
    violations = context.log.violations
    if raised is not None:
        history.attach(raised, context.log.entries)
    if not violations:
        if raised is not None:
            raise raised
        return
    failures = violations[:seen_before_end]
    # A step may raise a violation it recorded (a setup answer that fails its schema): one
    # finding, not two.
    if isinstance(raised, ConformanceFailure) and not any(raised is v for v in violations):
        failures.append(raised)
    failures += violations[seen_before_end:]
    first, rest = failures[0], failures[1:]
    combined = ConformanceFailure(first.clause, first.expected, first.received, first.log)
    combined.others = [*first.others, *rest]
    history.attach(combined, context.log.entries)
    raise combined from raised


def _unexpected(error: ConnectionLost | ConnectRefused, context: CaseContext) -> ConformanceFailure:
    """The finding a disconnect or a refused connect the case did not expect makes."""
    if isinstance(error, ConnectionLost):
        # The target dropped a socket instead of answering an event on it: no reply is an
        # EVT-1 failure, not an error of the suite.
        clause, expected = "EVT-1", "a reply to every event, the socket staying connected"
    else:
        # expect_refused catches the refusals a case expects; one that escapes refused a
        # connect the case relied on, with the token of a session it registered (a step).
        clause, expected = "CON-1", "the connection of a live session accepted"
    return ConformanceFailure(clause, expected, str(error), context.log.tail(limit=15))
