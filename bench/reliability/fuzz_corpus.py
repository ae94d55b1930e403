"""Schema-valid payloads drawn from ``spec/schemas`` with hypothesis-jsonschema, seeded.

Hypothesis draws values only inside a test it drives, so :func:`draw` runs a ``@given``
function that collects what it is given, with generation as its only phase (nothing fails, so
nothing shrinks), until it has ``count`` values or its time is up. It is slow (tens of values
per second for the session schema), so the part calls it in a worker process while it fires
the values already drawn.
"""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from typing import Any

import hypothesis_jsonschema._from_schema as jsonschema_strategies
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import from_schema

from conformance.schemas import ID_PREFIX, registry

# What each corpus is drawn from: a schema name, and a JSON pointer into it.
SOURCES: dict[str, tuple[str, str]] = {
    "subscribe": ("subscribe-request", ""),
    "unsubscribe": ("unsubscribe-request", ""),
    "ack": ("ack-request", ""),
    "publish": ("publish-request", ""),
    "history": ("history-request", ""),
    "session": ("http-session-request", ""),
    "session-id": ("http-session-request", "/properties/session_id"),
    "http-publish": ("http-publish-request", ""),
    "batch": ("http-batch-publish-request", ""),
    "retention": ("http-retention-request", ""),
    "channel": ("unsubscribe-request", "/properties/channel"),  # for routes whose body has none
}
_ANNOTATIONS = frozenset({"$id", "$schema", "$defs", "title", "description"})


class _ManyWithMore:
    """``cu.many`` as hypothesis-jsonschema 0.23 drives it (``more()``), on the ``with``/``for``
    protocol that Hypothesis 6.16x gave it; without this, every object schema fails to draw."""

    _DONE = object()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._many = conjecture_utils.many(*args, **kwargs)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        if next(self._elements, self._DONE) is self._DONE:
            self._many.__exit__(None, None, None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


if not hasattr(conjecture_utils.many, "more"):
    jsonschema_strategies.cu = SimpleNamespace(many=_ManyWithMore)  # type: ignore[attr-defined,assignment]


def _resolve(ref: str, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    uri, _, pointer = ref.partition("#")
    document: dict[str, Any] = registry()[uri].contents if uri else base  # type: ignore[assignment]
    node: Any = document
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        node = node[part]
    return node, document


def _inlined(node: Any, base: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by its target (the schemas have no cycles):
    hypothesis-jsonschema resolves no ``urn:`` references of its own."""
    if isinstance(node, list):
        return [_inlined(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target, document = _resolve(node["$ref"], base)
        rest = {k: v for k, v in node.items() if k != "$ref" and k not in _ANNOTATIONS}
        resolved = _inlined(target, document)
        return {"allOf": [resolved, _inlined(rest, base)]} if rest else resolved
    return {k: _inlined(v, base) for k, v in node.items() if k not in _ANNOTATIONS}


def flat_schema(source: str) -> dict[str, Any]:
    """The schema a corpus is drawn from, with no references left."""
    name, pointer = SOURCES[source]
    document: dict[str, Any] = registry()[ID_PREFIX + name].contents  # type: ignore[assignment]
    node, _ = _resolve("#" + pointer, document)
    flat: dict[str, Any] = _inlined(node, document)
    return flat


class _Enough(Exception):
    """Raised from inside the collecting test to end it."""


def draw(source: str, count: int, random_seed: int, time_limit_s: float) -> list[Any]:
    """Up to ``count`` values valid against ``source``'s schema, as Hypothesis draws them with
    ``random_seed``; fewer when ``time_limit_s`` runs out first."""
    values: list[Any] = []
    stop_at = time.monotonic() + time_limit_s

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @seed(random_seed)
    @given(from_schema(flat_schema(source)))
    def collect(value: Any) -> None:
        values.append(value)
        if len(values) >= count or time.monotonic() > stop_at:
            raise _Enough

    with contextlib.suppress(_Enough):
        collect()
    return values[:count]
