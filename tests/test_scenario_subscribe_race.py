"""A subscribe sent while the server ends the channel's subscription (a revocation racing it):
the scenario machine accepts ok only when the ``replay:unsubscribed`` came before the reply
(found by the volume run on three nodes, where the verdict read such an ok as SUB-3)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from conformance.scenarios.stage import _ended_first
from conformance.spans import Span


def _span(opened: int, end: str | None = None, ended: int | None = None) -> Span:
    return Span("c1", "ch", "e", 1, 0, "reply", opened, ended_seq=ended, end=end)


def _handle(current: Span | None) -> Any:
    return cast(Any, SimpleNamespace(client=SimpleNamespace(subscription=lambda _: current)))


def test_ended_by_the_server_before_the_reply() -> None:
    before = _span(3, "unsubscribed:revoked", 10)
    assert _ended_first(before, _handle(_span(12)), "ch")


def test_an_ok_while_it_was_live_is_still_sub_3() -> None:
    before = _span(3, "replaced", 12)  # the ok reply itself ended it
    assert not _ended_first(before, _handle(_span(12)), "ch")
    ended_after = _span(3, "unsubscribed:revoked", 14)  # the end came after the ok reply
    assert not _ended_first(ended_after, _handle(_span(12)), "ch")


def test_a_refusal_leaves_the_subscription() -> None:
    before = _span(3)
    assert not _ended_first(before, _handle(before), "ch")
