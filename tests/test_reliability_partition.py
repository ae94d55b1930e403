"""The partition part's CI slice: one node's Redis link really faulted, revocations applied
within 1 s of the heal, and that node's subscriber caught up with the others."""

from __future__ import annotations

from pathlib import Path

from redis_server import redis_server_binary
from reliability_runs import clean_counts

from bench.reliability import PARTS


def test_partition_for_15_seconds(tmp_path: Path) -> None:
    redis_server_binary()  # skipped without it, failed on CI
    counts = clean_counts("partition", 15, tmp_path)
    assert counts["faults"] >= 4, counts
    assert counts["revoked_delete"] + counts["revoked_narrow"] == counts["faults"], counts
    assert counts["slowest_effect_ms"] <= 1000 and counts["stale"] == 0, counts
    assert 0 < counts["acknowledged"] == counts["publishes"], counts
    assert counts["lost"] == counts["duplicated"] == 0, counts
    # Three subscribers, each with every message of both channels, published on any node.
    assert counts["delivered"] == 3 * counts["stored"], counts
    assert counts["stream_gaps"] == counts["stream_duplicates"] == 0, counts


def test_the_registry_names_the_part() -> None:
    assert "partition" in PARTS
