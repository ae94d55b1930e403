"""Where the protocol's spec files live, in a source checkout and in an installed wheel."""

from __future__ import annotations

import sysconfig
from pathlib import Path


def spec_dir() -> Path:
    """Return the directory holding ``protocol.md``, ``schemas/`` and ``examples/``."""
    in_checkout = Path(__file__).resolve().parent.parent / "spec"
    if (in_checkout / "protocol.md").is_file():
        return in_checkout
    # A wheel ships spec/ as the data directory ``replay_spec`` (see pyproject.toml).
    return Path(sysconfig.get_paths()["purelib"]) / "replay_spec"
