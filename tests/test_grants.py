"""Grant matching (spec §9.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.core.errors import Forbidden
from reference.core.grants import allows, pattern_matches, require
from reference.core.model import Action, Grant

names = st.from_regex(r"[A-Za-z0-9_.:@/-]{1,30}", fullmatch=True)


@pytest.mark.parametrize(
    ("pattern", "channel", "matches"),
    [
        ("orders:17", "orders:17", True),  # ACC-1
        ("orders:17", "orders:170", False),
        ("orders:17", "orders:1", False),
        ("room:*", "room:", True),  # ACC-2: the bare prefix is covered
        ("room:*", "room:lobby", True),
        ("room:*", "room", False),
        ("room:*", "roommates", False),
        ("room*", "roommates", True),  # why spec §13 says to end prefixes at a separator
        ("*", "anything/at:all", True),  # ACC-3
        ("a.b", "aXb", False),  # a dot is a character, never a regex wildcard
    ],
)
def test_pattern_matches(pattern: str, channel: str, matches: bool) -> None:
    assert pattern_matches(pattern, channel) is matches


@given(prefix=names, rest=names)
def test_prefix_pattern_is_exactly_startswith(prefix: str, rest: str) -> None:
    assert pattern_matches(prefix + "*", prefix + rest)
    assert pattern_matches(prefix + "*", rest) is rest.startswith(prefix)


def test_an_action_needs_one_grant_with_both_pattern_and_action() -> None:  # ACC-4
    grants = (
        Grant("chat:*", frozenset({Action.SUBSCRIBE})),
        Grant("chat:ops", frozenset({Action.PUBLISH})),
    )
    assert allows(grants, "chat:ops", Action.SUBSCRIBE)
    assert allows(grants, "chat:ops", Action.PUBLISH)
    assert not allows(grants, "chat:lobby", Action.PUBLISH)
    assert not allows(grants, "chat:ops", Action.HISTORY)
    assert not allows((), "chat:ops", Action.SUBSCRIBE)


def test_require_raises_forbidden_without_revealing_existence() -> None:  # ACC-8
    with pytest.raises(Forbidden) as raised:
        require((), "secret:1", Action.HISTORY)
    assert raised.value.code == "forbidden"
    assert raised.value.message == "no history grant for channel 'secret:1'"
