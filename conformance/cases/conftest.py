"""Fixtures of the conformance cases (scoped to this folder so other test runs stay inert)."""

from __future__ import annotations

import pytest

from conformance import Target
from conformance.plugin import session_target


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The target under test; inside a case it also creates channels, sessions and clients."""
    return session_target(request.config)
