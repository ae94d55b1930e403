"""The scenarios' teardown waits end once their outcome is decided, and shrinking has a budget."""

from __future__ import annotations

import pytest
from hypothesis.internal.conjecture import engine

from conformance.scenarios.model import settled
from conformance.scenarios.profiles import SHRINK_BUDGET_S
from conformance.spans import Delivery, Span


def _span(start: int, offsets: list[int], end: str | None = None) -> Span:
    span = Span("c1", "room:a", "E", start, start - 1, "reply", 1, end=end)
    span.deliveries.extend(
        Delivery(2, 0.0, "c1", "room:a", "E", {"offset": o, "id": f"s{o}", "ts": 0, "data": o})
        for o in offsets
    )
    return span


@pytest.mark.parametrize(
    ("offsets", "end", "decided"),
    [
        ([1, 2, 3], None, False),  # in order, short of the head: more may come
        ([], None, False),
        ([1, 2, 3, 4, 5], None, True),  # drained
        ([1, 3], None, True),  # a gap: the checkers name it whatever comes later
        ([1, 1], None, True),  # a duplicate
        ([2], None, True),  # not starting at from
        ([1, 2], "unsubscribed:lagging", True),  # ended: nothing more arrives in it
    ],
)
def test_a_wait_ends_once_its_outcome_is_decided(
    offsets: list[int], end: str | None, decided: bool
) -> None:
    assert settled(_span(1, offsets, end), 5) is decided


def test_a_subscription_from_past_the_head_has_nothing_to_wait_for() -> None:
    assert settled(_span(6, []), 5)


def test_shrinking_stops_within_the_budget() -> None:
    # conformance.plugin imports the profiles, so every conformance run has the budget.
    assert engine.MAX_SHRINKING_SECONDS == SHRINK_BUDGET_S < 300
