"""Locate the protocol's spec files (schemas) in a source checkout or an installed wheel.

``conformance`` has a twin of this function on purpose: the two packages never import each
other (house style), and both only read ``spec/``.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path


def spec_dir() -> Path:
    """The directory holding ``protocol.md`` and ``schemas/``."""
    checkout = Path(__file__).resolve().parents[1] / "spec"
    if checkout.joinpath("schemas").is_dir():
        return checkout
    return Path(sysconfig.get_paths()["purelib"], "replay_spec")  # shipped by the wheel
