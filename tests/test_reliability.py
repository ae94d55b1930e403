"""The reliability campaign's CI slice: the raw-protocol part on a short budget finds no
anomaly, and really attacked (frames and connections counted, messages delivered)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.reliability import PARTS
from bench.reliability.hostile_frames import FrameMaker, InvalidText
from bench.reliability.raw_protocol import check_order

ROOT = Path(__file__).resolve().parent.parent


def test_raw_protocol_for_15_seconds(tmp_path: Path) -> None:
    report = tmp_path / "reliability.json"
    argv = ["--budget", "15", "--part", "raw-protocol", "--json", str(report)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.reliability", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    (result,) = json.loads(report.read_text())
    counts = result["counts"]
    assert result["anomalies"] == []
    assert counts["frames"] > 1000 and counts["connections"] > 50, counts
    assert counts["polling_connections"] > 0, counts
    assert 0 < counts["published"] == counts["received"], counts
    assert counts["tracebacks"] == 0
    assert done.stdout.strip().splitlines()[-1].startswith("raw-protocol: ")


def test_the_registry_names_the_part() -> None:
    assert "raw-protocol" in PARTS


def test_the_frames_are_reproducible_and_varied() -> None:
    first, second = FrameMaker(7), FrameMaker(7)
    frames = [f for _ in range(300) for f in first.connection()]
    assert frames == [f for _ in range(300) for f in second.connection()]
    kinds = {type(f) for f in frames}
    assert kinds == {str, bytes, InvalidText}


def test_check_order_names_lost_duplicated_and_reordered() -> None:
    assert check_order([1, 2, 3], 3) == []
    assert "1 lost" in check_order([1, 3], 3)[0]
    assert "1 duplicated" in check_order([1, 2, 2, 3], 3)[0]
    assert "reordered: True" in check_order([2, 1, 3], 3)[0]
