"""The reconnect-storm part's CI slice (200 clients through a SIGKILL of a node on a real
redis-server) and its judging: per-client verdicts, duplicate ids, backoff, catch-up."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from redis_server import redis_server_binary
from reliability_runs import run_part

from bench.reliability import PARTS
from bench.reliability.follower import BACKOFF_CAP_S, Follower, FollowError, backoff_s
from bench.reliability.reconnect_storm import Tally, judge_clients
from bench.reliability.result import quantile
from bench.reliability.storm_worker import verdict


def test_200_clients_resume_after_a_sigkill(tmp_path: Path) -> None:
    redis_server_binary()  # skips, or fails under CI, without redis-server
    result = run_part("reconnect-storm", 60, tmp_path, RELIABILITY_STORM_CLIENTS="200")
    counts = result["counts"]
    assert result["anomalies"] == []
    assert counts["clients"] == counts["caught_up"] == counts["ready"] == 200, counts
    assert counts["reconnects"] >= 200, counts  # every client lost its node and came back
    # 4 clients per channel, each with every message of its channel, preload and storm alike
    assert counts["published"] > 1000 + 50 and counts["delivered"] == 4 * counts["published"]
    assert counts["epoch_changes"] == 0 and counts["info_ok"] > 10, counts


def test_the_registry_names_the_part() -> None:
    assert "reconnect-storm" in PARTS


def _follower() -> Follower:
    return Follower("http://127.0.0.1:1", "token", ["storm.0"])


def test_a_client_verdict_names_loss_and_a_missing_catch_up() -> None:
    follower = _follower()
    follower.offsets["storm.0"] = [1, 2, 4]
    follower.connected_at, follower.caught_up_at = 12.0, 0.0
    judged = verdict(follower, {"storm.0": 4}, killed_at=10.0)
    assert judged["reconnected_s"] == 2.0 and judged["caught_up_s"] is None
    assert "1 lost" in judged["problems"][0]
    clients = [judged, {"reconnected_s": -1.0, "caught_up_s": None, "problems": []}]
    problems = judge_clients(clients)
    assert any("client 0: storm.0" in p for p in problems)
    assert "client 0: did not catch up after the restart" in problems
    assert "client 1: did not reconnect after the restart" in problems


def test_a_clean_client_has_no_verdict_problem() -> None:
    follower = _follower()
    follower.offsets["storm.0"] = [1, 2, 3]
    follower.connected_at, follower.caught_up_at = 11.0, 12.5
    judged = verdict(follower, {"storm.0": 3}, killed_at=10.0)
    assert judged == {"reconnected_s": 1.0, "caught_up_s": 2.5, "received": 3, "problems": []}
    assert judge_clients([judged]) == []


def test_an_id_answered_at_two_offsets_is_a_duplicate() -> None:
    tally = Tally()
    tally.acknowledged("storm.0", "storm.0-1", 1)
    tally.acknowledged("storm.0", "storm.0-1", 1)  # a retry answered as a duplicate: fine
    assert tally.anomalies == [] and tally.heads["storm.0"] == 1
    tally.acknowledged("storm.0", "storm.0-1", 2)
    assert tally.anomalies == ["storm.0: id storm.0-1 stored at 1 and 2"]


def test_the_follower_is_caught_up_once_it_reaches_the_resume_head() -> None:
    follower = _follower()
    follower._targets = {"storm.0": 3}
    event = {"channel": "storm.0", "epoch": "e", "messages": [{"offset": 1}, {"offset": 2}]}
    follower._on_messages(event)
    assert follower.caught_up_at == 0.0 and follower.last["storm.0"] == 2
    follower._on_messages({**event, "messages": [{"offset": 3}]})
    assert follower.caught_up_at > 0 and follower.offsets["storm.0"] == [1, 2, 3]


@pytest.mark.parametrize("attempt", [0, 1, 5, 50])
def test_backoff_grows_with_jitter_up_to_its_cap(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff_s(attempt, rng) for _ in range(50)]
    assert all(0 < d <= BACKOFF_CAP_S for d in delays)
    assert len(set(delays)) > 1  # jittered, so a storm's retries spread out


def test_quantile_is_nearest_rank() -> None:
    values = [float(n) for n in range(100, 0, -1)]
    assert quantile(values, 0.5) == 50 and quantile(values, 0.99) == 99
    assert quantile(values, 1.0) == 100 and quantile([], 0.5) is None


class _Answers:
    """A stand-in for a connected client: answers each ``call`` with the next reply."""

    def __init__(self, *replies: dict[str, object]) -> None:
        self.replies = list(replies)
        self.requests: list[object] = []

    async def call(self, event: str, payload: object, timeout: float) -> dict[str, object]:
        self.requests.append(payload)
        return self.replies.pop(0)


def _error(code: str) -> dict[str, object]:
    return {"ok": False, "error": {"code": code, "message": code}}


def test_the_follower_retries_rate_limited_and_unavailable_then_resumes() -> None:
    follower = _follower()
    follower.last["storm.0"], follower.epoch["storm.0"] = 7, "e1"
    ok = {"ok": True, "channel": "storm.0", "epoch": "e1", "from": 8, "head": 9}
    follower._sio = _Answers(_error("rate_limited"), _error("unavailable"), ok)  # type: ignore[assignment]
    asyncio.run(follower._subscribe("storm.0"))
    assert follower.counts == {"rate_limited": 1, "unavailable": 1}
    expected = {"channel": "storm.0", "from": 8, "epoch": "e1"}  # RES-1: last + 1, its epoch
    assert follower._sio.requests == [expected] * 3  # type: ignore[union-attr]
    assert follower._targets == {"storm.0": 9} and follower.problems == []


def test_the_follower_gives_up_on_other_errors_and_counts_an_epoch_change() -> None:
    follower = _follower()
    follower.epoch["storm.0"] = "e1"
    follower._sio = _Answers(_error("epoch_mismatch"))  # type: ignore[assignment]
    with pytest.raises(FollowError, match="epoch_mismatch"):
        asyncio.run(follower._subscribe("storm.0"))
    assert follower.counts["epoch_changes"] == 1
