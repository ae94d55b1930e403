"""The crash-loop part's CI slice: nodes really SIGKILLed mid-publish, retries by id, and
nothing lost, duplicated or renumbered."""

from __future__ import annotations

from pathlib import Path

from redis_server import redis_server_binary
from reliability_runs import clean_counts

from bench.reliability import PARTS


def test_crash_loop_for_12_seconds(tmp_path: Path) -> None:
    redis_server_binary()  # skipped without it, failed on CI
    counts = clean_counts("crash-loop", 12, tmp_path)
    assert counts["kills"] >= 4 and counts["nodes_started"] > counts["kills"], counts
    assert counts["unanswered"] > 0, counts  # kills cut publishes in flight
    assert 0 < counts["acknowledged"] == counts["publishes"] == counts["stored"], counts
    assert counts["lost"] == counts["duplicated"] == counts["gaps"] == 0, counts
    assert counts["epoch_changes"] == 0, counts


def test_the_registry_names_the_part() -> None:
    assert "crash-loop" in PARTS
