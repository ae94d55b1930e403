"""Reconnect delays (replay_client.backoff): doubling, capped, jittered, reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay_client.backoff import Backoff, BackoffOptions


def test_delays_double_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(BackoffOptions(0.25, 2.0, 0.0))
    assert [backoff.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.attempts == 0 and backoff.next_delay() == 0.25


def test_defaults_are_the_models() -> None:
    assert BackoffOptions() == BackoffOptions(0.25, 10.0, 0.5)


@given(st.integers(0, 2000), st.floats(0, 1))
def test_jitter_stays_within_its_factor(attempt: int, draw: float) -> None:
    options = BackoffOptions(0.25, 10.0, 0.5)
    backoff = Backoff(options, uniform=lambda low, high: low + (high - low) * draw)
    for _ in range(attempt % 70):
        backoff.next_delay()
    base = min(10.0, 0.25 * 2.0 ** min(attempt % 70, 64))
    assert 0.5 * base <= backoff.next_delay() <= 1.5 * base


def test_the_random_factor_varies() -> None:
    backoff = Backoff(BackoffOptions(1.0, 1.0, 0.5))
    delays = {backoff.next_delay() for _ in range(20)}
    assert len(delays) > 1 and all(0.5 <= d <= 1.5 for d in delays)


@pytest.mark.parametrize(("low", "high", "jitter"), [(0, 1, 0.5), (2, 1, 0.5), (1, 2, 1.5)])
def test_bad_options_are_refused(low: float, high: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        BackoffOptions(low, high, jitter)
