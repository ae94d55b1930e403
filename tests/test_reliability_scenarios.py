"""The reliability campaign's CI slice of its scenarios part: the scenario machine for a short
budget (30 s) on the embedded reference and on three nodes over a real ``redis-server``, with the
tally proving that examples really ran and were judged."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_server import redis_server_binary
from reliability_runs import clean_counts

from conformance.scenarios.tally import TALLY_ENV, ExampleTally, total


def test_scenarios_for_30_seconds(tmp_path: Path) -> None:
    redis_server_binary()  # fails under CI, skips elsewhere, when there is none
    counts = clean_counts("scenarios", 30, tmp_path)
    for run in ("embedded", "cluster"):
        assert counts[f"{run}_examples"] >= 5, counts
        assert counts[f"{run}_faults"] > 0 and counts[f"{run}_deliveries"] > 0, counts
        assert counts[f"{run}_problems"] == 0, counts


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
