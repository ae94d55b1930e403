"""The reliability campaign's CI slice of its scenarios part: the scenario machine for a short
budget on the embedded reference and on three nodes over a real ``redis-server``, with the
tally proving that examples really ran and were judged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import redis_server_binary

from conformance.scenarios.tally import TALLY_ENV, ExampleTally, total

ROOT = Path(__file__).resolve().parent.parent


def test_scenarios_for_45_seconds(tmp_path: Path) -> None:
    redis_server_binary()  # fails under CI, skips elsewhere, when there is none
    report = tmp_path / "reliability.json"
    argv = ["--budget", "45", "--part", "scenarios", "--json", str(report)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.reliability", *argv],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    (result,) = json.loads(report.read_text())
    counts = result["counts"]
    assert result["anomalies"] == []
    for run in ("embedded", "cluster"):
        assert counts[f"{run}_examples"] >= 5, counts
        assert counts[f"{run}_faults"] > 0 and counts[f"{run}_deliveries"] > 0, counts
        assert counts[f"{run}_problems"] == 0, counts
    assert done.stdout.strip().splitlines()[-1].startswith("scenarios: ")


def test_the_tally_adds_up_what_each_example_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tally.jsonl"
    monkeypatch.setenv(TALLY_ENV, str(path))
    ExampleTally("ReplayMachine", steps=3, faults=1, publishes=4, deliveries=5).record()
    ExampleTally("ReplayMachine", steps=2, problems=1).record()
    monkeypatch.delenv(TALLY_ENV)
    ExampleTally("ReplayMachine", steps=99).record()  # not asked for: written nowhere
    assert total(path) == {
        "examples": 2, "steps": 5, "faults": 1, "publishes": 4, "deliveries": 5, "problems": 1,
    }  # fmt: skip
