"""LIM-3's payload size: the UTF-8 length of the RFC 8785 form, as JavaScript counts it.

The reference's fast measure (``reference.core.jcs``) and the suite's (``conformance.protocol``,
``rfc8785`` itself) are both held to Node.js's ``Buffer.byteLength(JSON.stringify(value))``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conformance.protocol import payload_size
from reference.core import jcs

# One Node.js process answers every example: a line of JSON in, its byte count out.
_NODE_SIZE = (
    'require("readline").createInterface({input: process.stdin}).on("line", (line) =>'
    ' process.stdout.write(Buffer.byteLength(JSON.stringify(JSON.parse(line))) + "\\n"));'
)
_SAFE = 2**53 - 1
# Around ECMAScript's exponent thresholds (1e21, 1e-6) and repr's (1e16, 1e-4).
_EDGES = (0.0, -0.0, 1e21, 9.999999999999999e20, 1e-6, 9.99e-7, 1e-7, 1e16, 1e-4, 5e-324)
# Characters that encoders escape differently: JCS escapes only '"', '\\' and U+0000-U+001F.
_AWKWARD = '"\\/\b\f\n\r\t\x00\x1f\x7f\x80\u2028\u2029\ufeff\uffff\U0001f389é中'

finite = st.floats(allow_nan=False, allow_infinity=False)
# Decimal literals spread evenly over the exponents where the two layouts switch.
decimal = st.builds(
    lambda digits, exponent: float(f"{digits}e{exponent}"),
    st.integers(-(10**17), 10**17),
    st.integers(-30, 30),
)
numbers = st.one_of(finite, decimal, st.sampled_from(_EDGES))
# Surrogates left out: no UTF-8 for a lone one, and MSG-6 refuses it before any measure.
strings = st.text(st.sampled_from(_AWKWARD) | st.characters(exclude_categories=["Cs"]), max_size=40)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-_SAFE, _SAFE) | numbers | strings,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(strings, inner, max_size=5),
    max_leaves=20,
)


def size(value: object) -> int:
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return jcs.canonical_size(value, compact)


@pytest.mark.parametrize(
    ("value", "measured"),
    [
        (1.0, 1),  # "1"
        (1e16, 17),  # "10000000000000000"
        (1e21, 5),  # "1e+21"
        (1e-7, 4),  # "1e-7"
        (0.000001, 8),  # "0.000001"
        (-0.0, 1),  # "0"
        ("é", 4),  # '"é"', two bytes of UTF-8 between the quotes
        ("\x00", 8),  # '"\u0000"'
        ("/\x7f\u2028", 7),  # all three literal: 1 + 1 + 3 bytes and the quotes
        ('"\n', 6),  # '"\"\n"'
        ({"b": [1.5, True], "a": None}, 25),  # '{"a":null,"b":[1.5,true]}'
    ],
)
def test_worked_examples(value: object, measured: int) -> None:  # LIM-3
    assert size(value) == measured == payload_size(value)


def test_integers_beyond_the_safe_range_count_their_digits() -> None:
    # Not I-JSON (MSG-8 refuses them first); a store's tests still encode them.
    assert size([2**64]) == len(str(2**64)) + 2


def test_a_lone_surrogate_has_no_size() -> None:
    with pytest.raises(UnicodeEncodeError):
        size("\ud800")


@settings(max_examples=500, deadline=None)
@given(values)
def test_equals_rfc8785_dumps(value: object) -> None:  # LIM-3
    assert size(value) == len(rfc8785.dumps(value))


# --- against JavaScript: Buffer.byteLength(JSON.stringify(value)) ------------------------------


@pytest.fixture(scope="module")
def node_size() -> Iterator[Callable[[object], int]]:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("CI must compare payload sizes with Node.js: node is not installed")
        pytest.skip("node is not installed")
    process = subprocess.Popen(
        [node, "-e", _NODE_SIZE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def measure(value: object) -> int:
        # ensure_ascii keeps each value on one line; a float's repr reads back as the same
        # double in JSON.parse.
        stdin.write(json.dumps(value) + "\n")
        stdin.flush()
        return int(stdout.readline())

    yield measure
    stdin.close()
    returncode = process.wait(timeout=10)
    stdout.close()
    assert returncode == 0


@settings(max_examples=1000, deadline=None)
@given(numbers)
@example(1.0)
@example(123456789012345680000.0)
def test_floats_measure_as_javascript_writes_them(
    node_size: Callable[[object], int], x: float
) -> None:
    assert math.isfinite(x)
    assert size(x) == node_size(x) == payload_size(x)


@settings(max_examples=700, deadline=None)
@given(strings)
def test_strings_measure_as_javascript_writes_them(
    node_size: Callable[[object], int], text: str
) -> None:
    assert size(text) == node_size(text) == payload_size(text)


@settings(max_examples=300, deadline=None)
@given(values)
def test_values_measure_as_javascript_writes_them(
    node_size: Callable[[object], int], value: object
) -> None:
    assert size(value) == node_size(value) == payload_size(value)
