"""``@case``: turn an ``async def`` conformance check into a pytest test that cites clauses.

A case is written as a coroutine taking the ``target`` fixture::

    @case("SUB-7", "ORD-1")
    async def test_beginning_starts_at_first(target: Target) -> None:
        ...

pytest sees a plain function (with the same fixture signature) that runs the coroutine on the
suite's event loop, inside a :class:`CaseContext`: the case's event log, the clean-ups of the
clients and sessions it created, and the violations observed along the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Protocol

import pytest

from conformance import clauses
from conformance.findings import (
    CaseTimeout,
    ConformanceFailure,
    ConnectionLost,
    EventLog,
    SuiteError,
    active_log,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterator

__all__ = [
    "CASES",
    "FEATURES",
    "CaseContext",
    "CaseHost",
    "CaseSpec",
    "activated",
    "case",
    "current",
    "current_or_none",
    "grant",
    "run_case",
    "scenario",
    "spec_of",
    "unclaimed",
]

# The optional features of spec §11 ("sessions" is the core every target has).
FEATURES: Final = frozenset(
    {"sessions", "client-publish", "idempotency", "history", "cursors", "retention", "cluster"}
)
ACTIONS: Final = ("subscribe", "publish", "history")
_CLEANUP_TIMEOUT_S: Final = 10.0
_SLUG_CHARS = re.compile(r"[^A-Za-z0-9_.:@-]+")


@dataclass(frozen=True)
class CaseSpec:
    """What a case claims to check, as declared by ``@case``."""

    name: str  # module.qualname of the test function
    clauses: tuple[str, ...]
    features: tuple[str, ...] = ()
    durable: bool | None = None
    timeout: float | None = None

    @property
    def slug(self) -> str:
        """A short channel-safe name for the case (``beginning_starts_at_first``)."""
        short = self.name.rsplit(".", 1)[-1].removeprefix("test_")
        return _SLUG_CHARS.sub("-", short)[:40] or "case"


# Every case defined so far, by name: the coverage test and the report read it.
CASES: dict[str, CaseSpec] = {}


class CaseHost(Protocol):
    """What ``@case`` needs from the ``target`` fixture (implemented by ``Target``)."""

    @property
    def features(self) -> frozenset[str]: ...

    @property
    def durable(self) -> bool: ...

    def run_case(self, spec: CaseSpec, body: Callable[[], Awaitable[None]]) -> None: ...


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
    except ConnectionLost as lost:
        # The case did not expect a disconnect, so the target dropped a socket instead of
        # answering an event on it: no reply is an EVT-1 failure, not an error of the suite.
        raised = ConformanceFailure(
            "EVT-1",
            "a reply to every event, the socket staying connected",
            str(lost),
            context.log.tail(limit=15),
        )
    except Exception as exc:
        raised = exc
    finally:
        seen_before_end = len(context.log.violations)
        await context.close()
        _current.reset(tokens[0])
        active_log.reset(tokens[1])
    violations = context.log.violations
    if not violations:
        if raised is not None:
            raise raised
        return
    failures = violations[:seen_before_end]
    if isinstance(raised, ConformanceFailure):
        failures.append(raised)
    failures += violations[seen_before_end:]
    first, rest = failures[0], failures[1:]
    combined = ConformanceFailure(first.clause, first.expected, first.received, first.log)
    combined.others = [*first.others, *rest]
    raise combined from raised


@cache
def _catalog() -> dict[str, clauses.Clause]:
    return clauses.by_id()


def _check_clauses(ids: tuple[str, ...]) -> list[str]:
    """Validate cited IDs; returns the features they require."""
    if not ids:
        raise SuiteError("@case needs at least one clause ID")
    needed = []
    for clause_id in ids:
        clause = _catalog().get(clause_id)
        if clause is None:
            raise SuiteError(f"@case cites unknown clause {clause_id!r} (see spec/protocol.md)")
        if not clause.testable:
            raise SuiteError(f"@case cites {clause_id}, which is internal or withdrawn")
        if clause.feature:
            needed.append(clause.feature)
    return needed


def unclaimed(spec: CaseSpec, host: CaseHost) -> str | None:
    """Why the target does not claim what the case needs (a skip reason), or None."""
    for feature in spec.features:
        if feature not in host.features:
            return f"not claimed: feature {feature}"
    if spec.durable is not None and spec.durable != host.durable:
        return f"not claimed: durable={str(spec.durable).lower()}"
    return None


def _features(clause_ids: tuple[str, ...], feature: str | None) -> list[str]:
    """The features a declaration needs: ``feature`` first, then its clauses' (validated)."""
    features = list(_check_clauses(clause_ids))
    if feature is not None:
        if feature not in FEATURES:
            raise SuiteError(f"@case names unknown feature {feature!r}; known: {sorted(FEATURES)}")
        features.insert(0, feature)
    return features


def _register(spec: CaseSpec, run: Callable[..., None]) -> Callable[..., None]:
    """Mark a test function with its clauses and features and record it in ``CASES``."""
    run.__replay_case__ = spec  # type: ignore[attr-defined]
    marked: Callable[..., None] = pytest.mark.clause(*spec.clauses)(run)
    for needed in spec.features:
        marked = pytest.mark.feature(needed)(marked)
    CASES[spec.name] = spec
    return marked


def case(
    *clause_ids: str,
    feature: str | None = None,
    durable: bool | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]:
    """Declare a conformance case citing ``clause_ids``.

    ``feature``: the case needs this feature (features of cited clauses are added
    automatically); ``durable``: the case needs ``info.durable`` to be this value; ``timeout``:
    seconds before the case is cancelled (default ``--replay-timeout``). Unknown clause IDs
    raise at import time.
    """
    features = _features(clause_ids, feature)

    def decorate(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
        if not inspect.iscoroutinefunction(fn):
            raise SuiteError(f"@case needs an async def, got {fn.__qualname__}")
        if "target" not in inspect.signature(fn).parameters:
            raise SuiteError(f"{fn.__qualname__} must take the `target` fixture")
        spec = CaseSpec(
            name=f"{fn.__module__}.{fn.__qualname__}",
            clauses=tuple(dict.fromkeys(clause_ids)),
            features=tuple(dict.fromkeys(features)),
            durable=durable,
            timeout=timeout,
        )

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            host: CaseHost = kwargs["target"]
            reason = unclaimed(spec, host)
            if reason is not None:
                pytest.skip(reason)
            host.run_case(spec, lambda: fn(*args, **kwargs))

        return _register(spec, run)

    return decorate


def scenario(
    *clause_ids: str, feature: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a synchronous conformance test that drives the suite's loop itself (the
    Hypothesis state machines): it cites clauses and is graded like a ``@case``, but runs its
    own :class:`CaseContext` per example (see :func:`activated`)."""
    features = _features(clause_ids, feature)

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        spec = CaseSpec(
            name=f"{fn.__module__}.{fn.__qualname__}",
            clauses=tuple(dict.fromkeys(clause_ids)),
            features=tuple(dict.fromkeys(features)),
        )

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            reason = unclaimed(spec, kwargs["target"])
            if reason is not None:
                pytest.skip(reason)
            fn(*args, **kwargs)

        return _register(spec, run)

    return decorate


def spec_of(obj: object) -> CaseSpec | None:
    """The :class:`CaseSpec` of a test function made by ``@case``, or None.

    Follows wrappers put on top of the case (Hypothesis's ``@given``, ``functools.wraps``).
    """
    for _ in range(8):  # a few layers of wrappers at most
        spec = getattr(obj, "__replay_case__", None)
        if isinstance(spec, CaseSpec):
            return spec
        inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)
        obj = inner if inner is not None else getattr(obj, "__wrapped__", None)
        if obj is None:
            return None
    return None


def grant(channels: str, *actions: str) -> dict[str, Any]:
    """A grant object: ``grant("room:1", "subscribe")``; no actions means all three."""
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise SuiteError(f"unknown grant actions {unknown}; known: {list(ACTIONS)}")
    return {"channels": channels, "actions": list(actions or ACTIONS)}
