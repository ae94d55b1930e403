"""The store-outage part's CI slice: Redis really SIGKILLed under publishing nodes, answers
typed and in time, and every stream dense and caught up afterwards."""

from __future__ import annotations

from pathlib import Path

from redis_server import redis_server_binary
from reliability_runs import clean_counts

from bench.reliability import PARTS


def test_store_outage_for_12_seconds(tmp_path: Path) -> None:
    redis_server_binary()  # skipped without it, failed on CI
    counts = clean_counts("store-outage", 12, tmp_path)
    assert counts["outages"] >= 3 and counts["down_ms"] > 1000, counts
    assert counts["unavailable"] > 0 and counts["socket_unavailable"] > 0, counts
    assert counts["slowest_ms"] < 10_000, counts
    assert 0 < counts["acknowledged"] == counts["publishes"], counts
    assert counts["lost"] == counts["duplicated"] == counts["epoch_changes"] == 0, counts
    # Two subscribers, each with every message of both channels.
    assert counts["delivered"] == 2 * counts["stored"], counts
    assert counts["stream_gaps"] == counts["stream_duplicates"] == 0, counts


def test_the_registry_names_the_part() -> None:
    assert "store-outage" in PARTS
