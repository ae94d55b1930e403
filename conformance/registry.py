"""``@case``: turn an ``async def`` conformance check into a pytest test that cites clauses.

A case is written as a coroutine taking the ``target`` fixture::

    @case("SUB-7", "ORD-1")
    async def test_beginning_starts_at_first(target: Target) -> None:
        ...

pytest sees a plain function (with the same fixture signature) that hands the coroutine to
the target, which runs it on the suite's event loop inside a
:class:`~conformance.context.CaseContext`. This module declares and registers cases; running
them is :mod:`conformance.context`'s job.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from conformance import clauses
from conformance.errors import SuiteError
from conformance.protocol import FEATURES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = [
    "CASES",
    "CaseHost",
    "CaseSpec",
    "case",
    "scenario",
    "spec_of",
    "unclaimed",
]

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
    own :class:`~conformance.context.CaseContext` per example (see
    :func:`conformance.context.activated`)."""
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
