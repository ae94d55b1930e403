"""Decoding request JSON and naming what is not I-JSON (MSG-6 to MSG-9)."""

from __future__ import annotations

import pytest

from reference.core import ijson


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (r'"\ud800"', "surrogate"),  # MSG-6: a lone high surrogate
        (r'"a\udc00"', "surrogate"),  # a lone low one
        (r'"\ude00\ud83d"', "surrogate"),  # a pair in the wrong order
        (r'{"\ud800":1}', "surrogate"),  # in a member name
        (r'[[{"k":["\udbff"]}]]', "surrogate"),
        ('{"a":1,"a":2}', "more than once"),  # MSG-7
        (r'{"a":1,"\u0061":1}', "more than once"),  # equal after unescaping
        ('[{"x":{"a":{},"a":{}}}]', "more than once"),
        ("9007199254740992", "2^53-1"),  # MSG-8
        ("-9007199254740992", "2^53-1"),
        ("123456789012345678901234567890", "2^53-1"),
        ("1" * 5000, "2^53-1"),  # beyond int()'s 4300-digit limit: no ValueError
        ("1e400", "overflows"),
        ("[-1.5e309]", "overflows"),
        ("NaN", "NaN"),
    ],
)
def test_what_is_not_i_json_is_named(text: str, why: str) -> None:
    problem = ijson.problem(ijson.loads(text))
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"\ud83d\ude00"', "😀"),  # a pair of escapes is one character
        ("9007199254740991", 2**53 - 1),
        ("-9007199254740991", -(2**53 - 1)),
        ("9007199254740992.0", 2.0**53),  # a fraction: a double, not an integer literal (MSG-9)
        ("1e300", 1e300),
        ("1.0000000000000001", 1.0),
        ("1e-400", 0.0),
        ('{"a":1,"b":{"a":2}}', {"a": 1, "b": {"a": 2}}),  # one name in two objects
        ("[1,1]", [1, 1]),
    ],
)
def test_other_json_decodes_as_json_does(text: str, value: object) -> None:
    decoded = ijson.loads(text)
    assert ijson.problem(decoded) is None
    assert decoded == value and type(decoded) is type(value)


def test_a_repeated_name_keeps_the_last_value_and_only_marks_it() -> None:
    decoded = ijson.loads('{"a":1,"a":2}')
    assert isinstance(decoded, ijson.RepeatedMembers) and decoded == {"a": 2}


def test_in_memory_values_are_checked_too() -> None:
    assert ijson.problem({"n": 2**53}) is not None
    assert ijson.problem({"n": float("inf")}) is not None
    assert ijson.problem([True, 2**53 - 1, "ok"]) is None


def test_a_caller_may_refuse_constants() -> None:
    def refuse(name: str) -> None:
        raise ValueError(name)

    with pytest.raises(ValueError):
        ijson.loads("[Infinity]", parse_constant=refuse)


@pytest.mark.parametrize(
    ("text", "noted", "found"),
    [
        ('{"a": [1, 1.5, "é", "\\u00e9"]}', False, False),
        ('["\\ud83c\\udf89"]', True, False),  # a pair is one character, but it is an escape
        ('{"a": 1, "a": 2}', True, True),  # MSG-7
        ('["\\ud800"]', True, True),  # MSG-6
        ("[12345678901234567890]", True, True),  # MSG-8
        ("[9007199254740991, -9007199254740991, 999999999999999]", False, False),
        ("[9007199254740992]", True, True),  # MSG-8: 16 digits, one above the bound
        ("[1e400]", True, True),  # MSG-8
        ("[NaN]", True, True),
    ],
)
def test_loads_noting_says_when_a_walk_may_find_a_problem(
    text: str, noted: bool, found: bool
) -> None:
    value, said = ijson.loads_noting(text)
    assert said is noted
    assert (ijson.problem(value) is not None) is found  # never found where nothing was noted
