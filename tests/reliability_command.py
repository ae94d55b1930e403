"""Run one part of the reliability campaign through its real command, as the CI slices do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_part(part: str, budget_s: float, tmp_path: Path, timeout_s: float = 240) -> dict[str, Any]:
    """``python -m bench.reliability --part PART``: the part's JSON result; fails the test if
    the command did not exit 0 or did not print the part's summary last."""
    report = tmp_path / "reliability.json"
    argv = ["--budget", str(budget_s), "--part", part, "--json", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.reliability", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    (result,) = json.loads(report.read_text())
    assert done.stdout.strip().splitlines()[-1].startswith(f"{part}: ")
    return result
