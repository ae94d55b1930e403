"""Conformance suite for the replay/1 protocol: a pytest plugin that judges any target server.

Run it with ``pytest conformance --target URL`` (or with no target option, against the
reference server on its embedded store). See ``conformance/plugin.py`` for the options.
"""

from __future__ import annotations
