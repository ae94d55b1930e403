"""The conformance cases: one module per area of the spec, each case citing its clauses.

Write a case with ``@case`` (see :mod:`conformance.registry` and ``conformance/README.md``).
"""

from __future__ import annotations
