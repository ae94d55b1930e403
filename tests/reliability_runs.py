"""Running one part of the reliability campaign through its real command, for CI slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_part(part: str, budget_s: float, tmp_path: Path, **env: str) -> dict[str, Any]:
    """``python -m bench.reliability --part PART``, which must exit 0 and print the part's
    summary last; the part's JSON result. ``env`` sets the part's scale (its variables)."""
    report = tmp_path / f"{part}.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.reliability", "--budget", str(budget_s),
         "--part", part, "--json", str(report)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=budget_s + 120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1].startswith(f"{part}: ")
    (result,) = json.loads(report.read_text())
    return dict(result)


def clean_counts(part: str, budget_s: float, tmp_path: Path, **env: str) -> dict[str, Any]:
    """:func:`run_part` for a part that must find no anomaly; its counts."""
    result = run_part(part, budget_s, tmp_path, **env)
    assert result["anomalies"] == [], result["anomalies"]
    counts: dict[str, Any] = result["counts"]
    return counts
