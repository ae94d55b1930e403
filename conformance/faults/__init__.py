"""Network fault injection for the conformance suite (see :mod:`.proxy`)."""

from __future__ import annotations

from conformance.faults.links import Direction, ProxiedConnection
from conformance.faults.proxy import FaultProxy

__all__ = ["Direction", "FaultProxy", "ProxiedConnection"]
