"""The slow-consumer part's CI slice (20,000 messages while one subscriber is stalled at TCP)
and its judging: latency against FLW-4's bound, memory against the baseline node's."""

from __future__ import annotations

from pathlib import Path

from reliability_runs import run_part

from bench.reliability import PARTS
from bench.reliability.slow_consumer import judge_latency, judge_outcome, judge_rss, latencies

MIB = 1024 * 1024


def test_a_stalled_subscriber_for_20000_messages(tmp_path: Path) -> None:
    result = run_part("slow-consumer", 120, tmp_path, RELIABILITY_SLOW_MESSAGES="20000")
    counts = result["counts"]
    assert result["anomalies"] == []
    assert counts["messages"] == counts["baseline_messages"] == 20000, counts
    assert counts["readers_received"] == 3 * 20000, counts
    # The stall came mid-stream and held the rest back: it really stopped reading.
    assert 2000 <= counts["slow_had"] < 20000 - 1000, counts
    assert counts["slow_held_bytes"] > 0, counts
    assert counts["baseline_rss_peak"] > 0 and counts["stalled_rss_peak"] > 0, counts


def test_the_registry_names_the_part() -> None:
    assert "slow-consumer" in PARTS


def test_latency_is_arrival_minus_the_answer_of_each_offset() -> None:
    answered = [10.0, 10.0, 11.0]
    assert latencies(answered, [1, 2, 3], [10.5, 10.25, 11.0]) == [0.5, 0.25, 0.0]
    assert latencies(answered, [4], [12.0]) == []  # an offset nobody published is not timed


def test_a_message_later_than_the_bound_is_an_anomaly() -> None:
    assert judge_latency([0.1, 4.9, 5.0], 5.0, "reader 0") == []
    (problem,) = judge_latency([0.1, 5.5, 7.25], 5.0, "reader 0")
    assert "2 of 3 messages later than 5 s (worst 7.25 s)" in problem


def test_memory_above_the_baseline_plus_the_allowance_is_an_anomaly() -> None:
    assert judge_rss(100 * MIB, 80 * MIB, 32 * MIB) == []
    (problem,) = judge_rss(150 * MIB, 80 * MIB, 32 * MIB)
    assert "150 MiB, above the baseline's 80 MiB + 32 MiB" in problem


def test_a_connection_ended_before_the_ping_timeout_is_an_anomaly() -> None:
    assert judge_outcome("paused", 30.0) == []
    assert judge_outcome("ended lagging", 30.0) == []
    assert judge_outcome("disconnected", 50.0) == []  # the ping timeout explains it (RES-3)
    (problem,) = judge_outcome("disconnected", 30.0)
    assert "after a 30.0 s stall, before the ping timeout (45 s)" in problem
