"""The size of published ``data`` that ``max_payload_bytes`` bounds (LIM-3).

LIM-3 counts the UTF-8 bytes of the value's RFC 8785 (JCS) serialization: what
``Buffer.byteLength(JSON.stringify(data))`` gives in JavaScript for I-JSON data. ``rfc8785.dumps``
writes that text exactly, but 5 to 10 times slower than ``json.dumps`` on 64 KiB of small
values (``bench/payload_size.py``: 11-29 ms against 1.3-4.9 ms), and a publish needs the
compact ``json.dumps`` text anyway, to store. So the size starts from that text, which is
JCS's byte for byte except for floats:

- ``json.dumps(..., ensure_ascii=False)`` escapes exactly the characters JCS escapes (``"``,
  ``\\``, the controls below U+0020, as ``\\b \\f \\n \\r \\t`` or lowercase ``\\u00xx``) and
  leaves every other character literal (``/``, U+007F and U+2028 too);
- ``true``, ``false``, ``null`` and integers within ±(2^53-1) are written alike; member order
  changes no length;
- a float is ``repr(x)`` in one and ECMAScript's Number::toString in the other. Both use the
  shortest digits that round-trip, so between 1e-4 and 1e16, where ``repr`` writes no
  exponent and ECMAScript neither, only an integral value differs (``5.0`` against ``5``);
  elsewhere (exponent thresholds 1e16 and 1e-4 against 1e21 and 1e-6, ``1e-05`` against
  ``1e-5``, ``-0.0`` against ``0``) ``rfc8785`` writes the number.
"""

from __future__ import annotations

import re
from typing import Final

import rfc8785

# Every finite float json.dumps writes has a digit followed by ".digit" or "e+"/"e-": text
# without one holds no float, and needs no walk through the value (measured: the walk alone
# costs about as much as json.dumps on 32K small integers).
_MAYBE_FLOAT: Final = re.compile(r"[0-9](?:\.[0-9]|e[-+])")


def may_hold_float(compact: str) -> bool:
    """False when the JSON text ``compact`` (``json.dumps``'s or orjson's) certainly holds no
    float. Every float either writes has a ``.`` or a signed exponent, so text without one needs
    no regex search, which costs more than encoding a small payload."""
    if "." not in compact and "e+" not in compact and "e-" not in compact:
        return False
    return _MAYBE_FLOAT.search(compact) is not None


def canonical_size(value: object, compact: str) -> int:
    """LIM-3's size of ``value``, given its ``json.dumps(value, ensure_ascii=False,
    separators=(",", ":"))`` text ``compact``.

    Raises ``UnicodeEncodeError`` (a ValueError) when a string holds a lone surrogate, which
    has no UTF-8 form (MSG-6 refuses it first).
    """
    size = len(compact.encode("utf-8"))
    if isinstance(value, float):
        return size + _float_delta(value)
    if not isinstance(value, list | dict) or not may_hold_float(compact):
        return size
    stack: list[list[object] | dict[str, object]] = [value]
    while stack:
        node = stack.pop()
        for item in node.values() if isinstance(node, dict) else node:
            if isinstance(item, float):
                size += _float_delta(item)
            elif isinstance(item, list | dict):
                stack.append(item)
    return size


def _float_delta(x: float) -> int:
    """The length of ``x`` in JCS minus its length as ``json.dumps`` wrote it (``repr``)."""
    if 1e-4 <= abs(x) < 1e16:
        return -2 if x.is_integer() else 0  # "5.0" against "5"; otherwise the same digits
    return len(rfc8785.dumps(x)) - len(repr(x))
