"""Decoding request JSON so that what is not I-JSON (RFC 7493) can be named (MSG-6 to MSG-8).

Python's ``json`` accepts all three things MSG-6 to MSG-8 refuse, and orjson only two of them
(measured: orjson rejects a lone surrogate escape and a number that overflows a double, keeps
the last of two equal member names, and rounds an integer beyond 64 bits to a double without a
word). So requests are decoded with ``json`` and hooks that *mark* instead of raising: an object
with a repeated member name becomes a ``RepeatedMembers`` dict, an integer literal beyond
±(2^53-1) an ``UnsafeInteger``. Decoding never fails on them, so a Socket.IO packet keeps its
ack id and gets a reply (python-socketio answers no packet its JSON module raises on, see
``SocketJson``), and ``problem`` asks "is this I-JSON?" of the publish's ``data`` only: a
marker elsewhere in a request fails that request's schema instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

MAX_SAFE_INTEGER: Final = 2**53 - 1
# A safe integer has at most 16 digits; longer literals are never handed to int(), whose
# 4300-digit limit would raise ValueError for valid JSON.
_SAFE_DIGITS: Final = 16
# After decoding, a surrogate code point in a str can only come from an unpaired escape: a
# pair decodes to one code point, and raw UTF-8 cannot encode a surrogate at all.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# In JSON text a surrogate can only be written as an escape (see above): text without one
# holds no lone surrogate.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


class RepeatedMembers(dict[str, Any]):
    """An object that named a member more than once; holds the last value, as ``json`` does."""


class UnsafeInteger:
    """An integer literal outside ±(2^53-1), kept as written (MSG-8)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return f"UnsafeInteger({self.literal[:20]!r})"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    return result if len(result) == len(pairs) else RepeatedMembers(pairs)


def _integer(literal: str) -> int | UnsafeInteger:
    if len(literal.lstrip("-")) > _SAFE_DIGITS:
        return UnsafeInteger(literal)
    value = int(literal)
    return value if abs(value) <= MAX_SAFE_INTEGER else UnsafeInteger(literal)


def loads(text: str | bytes, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """Decode JSON, marking repeated member names and unsafe integers (see the module doc).

    Raises ``ValueError`` for text that is not JSON and ``RecursionError`` for JSON nested
    deeper than Python's recursion limit. ``NaN`` and ``Infinity`` decode as ``json`` decodes
    them (to floats that ``problem`` names) unless ``parse_constant`` says otherwise.
    """
    return json.loads(
        text, object_pairs_hook=_object, parse_int=_integer, parse_constant=parse_constant
    )


def loads_noting(text: str, parse_constant: Callable[[str], Any] | None = None) -> tuple[Any, bool]:
    """``loads``, and whether the value may hold what is not I-JSON: False means ``problem``
    finds nothing anywhere in it, so a request of many parts (a batch publish's entries) need
    not walk each part unless the decoder noted something (a marker, an infinite number, a
    surrogate escape in the text)."""
    noted = False

    # The hooks of ``loads``, inlined: one Python call per object and per integer is what
    # decoding a batch of thousands of small entries costs most.
    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal noted
        result = dict(pairs)
        if len(result) == len(pairs):
            return result
        noted = True
        return RepeatedMembers(pairs)

    def integer(literal: str) -> int | UnsafeInteger:
        nonlocal noted
        if len(literal) < _SAFE_DIGITS:  # at most 15 digits: below 10^15, always safe
            return int(literal)
        value = _integer(literal)
        noted = noted or isinstance(value, UnsafeInteger)
        return value

    def number(literal: str) -> float:
        nonlocal noted
        value = float(literal)
        noted = noted or math.isinf(value)
        return value

    def constant(name: str) -> Any:
        nonlocal noted
        noted = True  # NaN, Infinity: never I-JSON
        return float(name) if parse_constant is None else parse_constant(name)

    value = json.loads(
        text, object_pairs_hook=members, parse_int=integer, parse_float=number,
        parse_constant=constant,
    )  # fmt: skip
    return value, noted or _SURROGATE_ESCAPE.search(text) is not None


def problem(value: object) -> str | None:
    """Why ``value`` (as ``loads`` returned it) is not I-JSON (MSG-6 to MSG-8), or ``None``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return "a string holds an unpaired surrogate"  # MSG-6
        elif isinstance(item, dict):
            if isinstance(item, RepeatedMembers):
                return "an object names a member more than once"  # MSG-7
            for name, member in item.items():
                stack += [name, member]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, UnsafeInteger) or (
            isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INTEGER
        ):
            return "an integer is outside ±(2^53-1)"  # MSG-8
        elif isinstance(item, float) and math.isinf(item):
            return "a number overflows an IEEE 754 double"  # MSG-8
        elif isinstance(item, float) and math.isnan(item):
            return "NaN is not a JSON number"
    return None
