"""Seeded mutations of schema-drawn payloads: what a careless or hostile sender gets wrong.

Each function takes a ``random.Random`` and returns a new value (inputs are never changed)
with a short name of what it did, for the anomaly report. Whether the result is still valid
is not assumed: the judge decides that with the schemas (a dropped optional member is valid).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

SAFE_INTEGER = 2**53 - 1
STRANGE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, 5.0, -0.0, "", "x", "5", [], {}, [None], {"": None},
    SAFE_INTEGER, SAFE_INTEGER + 1, -(SAFE_INTEGER + 1), 2**64, 10**30, 1e308, 1e-320,
    float("nan"), float("inf"),
)  # fmt: skip
BAD_CHANNELS = ("", " ", "a b", "room\n", "room\u2028", "é", "#", "a" * 201, "room?x", "\ud800")
HUGE_LENGTHS = (201, 1_000, 65_537, 100_000, 300_000)
DEPTHS = (10, 63, 64, 65, 100, 400)  # python-socketio's encoder recurses: stay below ~900


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in ``value`` (the root included)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _containers(value: Any, kind: type) -> list[tuple[Any, ...]]:
    return [p for p in _paths(value) if isinstance(_get(value, p), kind)]


def drop_member(rng: random.Random, value: Any) -> tuple[Any, str]:
    places = [p for p in _containers(value, dict) if _get(value, p)]
    if not places:
        return value, "nothing to drop"
    path = rng.choice(places)
    key = rng.choice(sorted(_get(value, path)))
    del _get(value, path)[key]
    return value, f"drop {(*path, key)}"


def rename_member(rng: random.Random, value: Any) -> tuple[Any, str]:
    places = [p for p in _containers(value, dict) if _get(value, p)]
    if not places:
        return value, "nothing to rename"
    path = rng.choice(places)
    target = _get(value, path)
    key = rng.choice(sorted(target))
    new_key = rng.choice([key.upper(), key + "_", " " + key, key[:-1], "\ud800" + key])
    target[new_key] = target.pop(key)
    return value, f"rename {(*path, key)} to {new_key!r}"


def retype(rng: random.Random, value: Any) -> tuple[Any, str]:
    path = rng.choice(_paths(value))
    new = copy.deepcopy(rng.choice(STRANGE_VALUES))
    return _put(value, path, new), f"set {path} to {new!r}"


def unknown_member(rng: random.Random, value: Any) -> tuple[Any, str]:
    places = _containers(value, dict) or [()]
    path = rng.choice(places)
    name = rng.choice(["extra", "x", "__proto__", "constructor", "ok", "Channel"])
    if not isinstance(_get(value, path), dict):
        return {"value": value, name: 1}, f"wrap in an object with {name!r}"
    _get(value, path)[name] = copy.deepcopy(rng.choice(STRANGE_VALUES))  # never shared
    return value, f"add {(*path, name)}"


def bad_channel(rng: random.Random, value: Any) -> tuple[Any, str]:
    channel = rng.choice(BAD_CHANNELS)
    if isinstance(value, dict):
        value["channel"] = channel
    return value, f"channel {channel[:20]!r}"


def huge_string(rng: random.Random, value: Any) -> tuple[Any, str]:
    path = rng.choice(_paths(value))
    length = rng.choice(HUGE_LENGTHS)
    return _put(value, path, "a" * length), f"set {path} to a string of {length}"


def lone_surrogate(rng: random.Random, value: Any) -> tuple[Any, str]:
    strings = [p for p in _paths(value) if isinstance(_get(value, p), str)]
    surrogate = rng.choice(["\ud800", "\udfff", "\udbff"])
    if not strings:
        return _put(value, rng.choice(_paths(value)), surrogate), "a lone surrogate"
    path = rng.choice(strings)
    text = _get(value, path)
    at = rng.randint(0, len(text))
    return _put(value, path, text[:at] + surrogate + text[at:]), f"lone surrogate in {path}"


def deep_nesting(rng: random.Random, value: Any) -> tuple[Any, str]:
    path = rng.choice(_paths(value))
    depth = rng.choice(DEPTHS)
    nested: Any = _get(value, path)
    for level in range(depth):
        nested = [nested] if level % 2 else {"a": nested}
    return _put(value, path, nested), f"nest {path} {depth} deep"


def out_of_range(rng: random.Random, value: Any) -> tuple[Any, str]:
    numbers = [p for p in _paths(value) if type(_get(value, p)) in (int, float)]
    path = rng.choice(numbers or _paths(value))
    new = rng.choice([0, -1, SAFE_INTEGER + 1, 2**63, -(2**63), 10**20, 0.5, 1e400])
    return _put(value, path, new), f"set {path} to {new!r}"


def not_an_object(rng: random.Random, value: Any) -> tuple[Any, str]:
    new = rng.choice([[value], json.dumps(value, default=str), 1, None, True, "replay"])
    return new, f"replace the payload by a {type(new).__name__}"


MUTATIONS: tuple[Callable[[random.Random, Any], tuple[Any, str]], ...] = (
    drop_member, rename_member, retype, unknown_member, bad_channel, huge_string,
    lone_surrogate, deep_nesting, out_of_range, not_an_object,
)  # fmt: skip


def mutate(rng: random.Random, value: Any, rounds: int) -> tuple[Any, list[str]]:
    """``value`` after ``rounds`` random mutations, and what each one did."""
    value = copy.deepcopy(value)
    done: list[str] = []
    for _ in range(rounds):
        value, what = rng.choice(MUTATIONS)(rng, value)
        done.append(what)
    return value, done
