"""Run one part of the reliability campaign through the real command, for the CI slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_part(name: str, budget_s: float, tmp_path: Path, timeout_s: float = 180) -> dict[str, Any]:
    """``python -m bench.reliability --part NAME``: asserts exit 0, no anomaly and the summary
    line last; returns the part's counts."""
    report = tmp_path / "reliability.json"
    argv = ["--budget", str(budget_s), "--part", name, "--json", str(report)]
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
    assert result["anomalies"] == []
    assert done.stdout.strip().splitlines()[-1].startswith(f"{name}: ")
    counts: dict[str, Any] = result["counts"]
    return counts
