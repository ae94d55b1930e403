"""Hypothesis profiles for the scenarios, chosen with ``--hypothesis-profile``.

``ci`` (the default when the conformance cases run) is derandomized, so a CI run is
repeatable, and small enough for the whole suite to stay within a few minutes; ``thorough``
explores many more interleavings, for a night run or after changing a server. ``ci-unshrunk``
is ``ci`` without shrinking: the same search, a failure reported as first found, for runs that
only ask whether a server fails (the scenario gate over the mutants). ``volume`` is for
reliability runs (``bench/reliability``): 10,000 random examples of the ``ci`` size, or
``REPLAY_SCENARIO_EXAMPLES`` of them, seeded afresh each run (``--hypothesis-seed`` repeats
one), with no example database, so every run explores new ground.

Shrinking stops after :data:`SHRINK_BUDGET_S` and reports the smallest failure found by then:
each shrink attempt replays a scenario, and against a target that stopped delivering every
replay waits out a drain timeout, so Hypothesis's own five minutes made a failure take more
than six to report.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import engine

DEFAULT_PROFILE = "ci"
SHRINK_BUDGET_S: Final = 60

# Hypothesis has no setting for it; its engine reads this module global at each shrink and
# documents it as the one to monkeypatch ("for the rare users who need to keep on shrinking").
engine.MAX_SHRINKING_SECONDS = SHRINK_BUDGET_S
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
settings.register_profile(
    "ci-unshrunk",
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)
settings.register_profile(
    "volume",
    max_examples=int(os.environ.get("REPLAY_SCENARIO_EXAMPLES", "10000")),
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=_SLOW_IS_NORMAL,
    print_blob=True,
)
