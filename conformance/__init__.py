"""Conformance suite for the replay/1 protocol: a pytest plugin that judges any target server.

Run it with ``pytest conformance --target URL`` (or with no target option, against the
reference server on its embedded store). Write a case with the names exported here::

    from conformance import Target, case, expect_ok, grant

Layers
------
Each module belongs to one layer and imports only from its own layer or the ones below it,
never in a cycle (``tests/test_layers.py`` reads every import and keeps this true):

0. leaf types: ``errors`` (the one error root), ``text``, ``eventlog``, ``protocol`` (routes,
   error codes, features, actions, grants), ``spec_files``
1. the spec's knowledge: ``clauses``, ``schemas``, ``expectations`` (the helpers cases judge
   with), ``selection`` (the clauses ``--clause``/``--feature`` choose)
2. the target's speakers: ``backend`` (HTTP API), ``spans`` and ``streams`` (subscriptions as a
   socket saw them, checked as they arrive), ``recorder``, ``sio`` and ``client`` (Socket.IO),
   ``faults`` (the TCP proxy)
3. judging and reporting: ``trace`` (a log read back), ``anomaly``, ``composition`` and
   ``checkers`` (the whole-trace checkers), ``grading``, ``report``, ``baseline`` (known
   failures, ``--baseline``), ``history`` (a case's whole log, as JSON lines), ``html_report``
   (the report as one HTML file)
4. running: ``driver``, ``registry``, ``context``, ``watchdog``, ``nodes``, ``target``, ``launch``
5. entry points: ``options``, ``preflight``, ``plugin``, ``inventory``, ``cli`` (the
   ``replay-conformance`` command), ``scenarios``, ``cases``

This package's own ``__init__`` sits above them all: it only re-exports the case-writing API,
and loads each name's module when the name is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.backend import Registration
    from conformance.client import ReplayClient
    from conformance.context import current
    from conformance.errors import (
        ConformanceError,
        ConformanceFailure,
        ConnectFailed,
        ConnectionLost,
        ConnectRefused,
        Indeterminate,
        NoReply,
        SuiteError,
    )
    from conformance.expectations import (
        expect,
        expect_duplicate_of,
        expect_error,
        expect_offsets,
        expect_ok,
        expect_refused,
        expect_status,
        fail,
    )
    from conformance.protocol import grant
    from conformance.registry import case, scenario
    from conformance.target import Target

# Loaded on first use (PEP 562), so that importing one module of the suite, or running
# ``python -m conformance.clauses``, does not import all of it through this package.
_HOMES = {
    "Registration": "conformance.backend",
    "case": "conformance.registry",
    "scenario": "conformance.registry",
    "ReplayClient": "conformance.client",
    "current": "conformance.context",
    "ConformanceError": "conformance.errors",
    "ConformanceFailure": "conformance.errors",
    "ConnectFailed": "conformance.errors",
    "ConnectRefused": "conformance.errors",
    "ConnectionLost": "conformance.errors",
    "Indeterminate": "conformance.errors",
    "NoReply": "conformance.errors",
    "SuiteError": "conformance.errors",
    "expect": "conformance.expectations",
    "expect_duplicate_of": "conformance.expectations",
    "expect_error": "conformance.expectations",
    "expect_offsets": "conformance.expectations",
    "expect_ok": "conformance.expectations",
    "expect_refused": "conformance.expectations",
    "expect_status": "conformance.expectations",
    "fail": "conformance.expectations",
    "grant": "conformance.protocol",
    "Target": "conformance.target",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = [
    "ConformanceError",
    "ConformanceFailure",
    "ConnectFailed",
    "ConnectRefused",
    "ConnectionLost",
    "Indeterminate",
    "NoReply",
    "Registration",
    "ReplayClient",
    "SuiteError",
    "Target",
    "case",
    "current",
    "expect",
    "expect_duplicate_of",
    "expect_error",
    "expect_offsets",
    "expect_ok",
    "expect_refused",
    "expect_status",
    "fail",
    "grant",
    "scenario",
]
