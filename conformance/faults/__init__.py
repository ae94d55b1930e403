"""Network fault injection for the conformance suite (see :mod:`.proxy`)."""

from __future__ import annotations

from conformance.faults.proxy import Connection, Direction, FaultProxy

__all__ = ["Connection", "Direction", "FaultProxy"]
