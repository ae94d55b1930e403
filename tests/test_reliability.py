"""The reliability campaign's CI slice: the raw-protocol part on a short budget finds no
anomaly, and really attacked (frames and connections counted, messages delivered)."""

from __future__ import annotations

from pathlib import Path

from reliability_runs import run_part

from bench.reliability import PARTS
from bench.reliability.hostile_frames import FrameMaker, InvalidText
from bench.reliability.raw_protocol import check_order


def test_raw_protocol_for_15_seconds(tmp_path: Path) -> None:
    result = run_part("raw-protocol", 15, tmp_path)
    counts = result["counts"]
    assert result["anomalies"] == []
    assert counts["frames"] > 1000 and counts["connections"] > 50, counts
    assert counts["polling_connections"] > 0, counts
    assert 0 < counts["published"] == counts["received"], counts
    assert counts["tracebacks"] == 0


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
