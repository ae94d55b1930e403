"""Hypothesis profiles for the scenarios, chosen with ``--hypothesis-profile``.

``ci`` (the default when the conformance cases run) is derandomized, so a CI run is
repeatable, and small enough for the whole suite to stay within a few minutes; ``thorough``
explores many more interleavings, for a night run or after changing a server.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

DEFAULT_PROFILE = "ci"
_SLOW_IS_NORMAL = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=_SLOW_IS_NORMAL,
    print_blob=False,
)
settings.register_profile(
    "thorough",
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=_SLOW_IS_NORMAL,
    print_blob=True,
)
