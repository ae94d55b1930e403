"""The distribution's wheel ships the client library as ``replay_client``, typed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from replay_client_support import PYTHON_DIR
from suite_runs import ROOT


def test_the_wheel_ships_replay_client_at_its_root(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = PYTHON_DIR / "replay_client"
    modules = {f"replay_client/{p.name}" for p in [*package.glob("*.py"), package / "py.typed"]}
    assert "replay_client/py.typed" in modules and modules <= names
    assert not any(name.startswith("clients/") for name in names)
