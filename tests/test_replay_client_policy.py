"""The unresumable table (replay_client.policy), row by row, as clients/README.md has it."""

from __future__ import annotations

import pytest

from replay_client import ReplayClientError
from replay_client.policy import Plan, classify, plan_for


def plan(policy: str, code: str) -> Plan | None:
    return plan_for(policy, ReplayClientError(code))  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["epoch_mismatch", "epoch_changed"])
def test_a_new_epoch_restarts_from_its_beginning(code: str) -> None:
    expected = Plan("beginning", forget=True, epoch_changed=True)
    assert plan("restart", code) == plan("continue", code) == expected
    assert plan("fail", code) is None


@pytest.mark.parametrize("code", ["history_truncated", "truncated"])
def test_truncation(code: str) -> None:
    assert plan("restart", code) == Plan("beginning", truncated=True)
    assert plan("continue", code) == Plan("position", allow_truncation=True, truncated=True)
    assert plan("fail", code) is None


def test_a_position_ahead_of_the_server() -> None:
    assert plan("restart", "offset_out_of_range") == Plan("beginning", forget=True)
    assert plan("continue", "offset_out_of_range") == Plan("latest", forget=True)
    assert plan("fail", "offset_out_of_range") is None


def test_a_function_may_stand_in_for_the_names() -> None:
    seen = []

    def decide(error: ReplayClientError) -> str:
        seen.append(error.code)
        return "continue" if error.code == "history_truncated" else "fail"

    assert plan_for(decide, ReplayClientError("history_truncated")) is not None  # type: ignore[arg-type]
    assert plan_for(decide, ReplayClientError("epoch_mismatch")) is None  # type: ignore[arg-type]
    assert seen == ["history_truncated", "epoch_mismatch"]
    with pytest.raises(ValueError):
        plan_for(lambda _: "skip", ReplayClientError("truncated"))  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("epoch_mismatch", "unresumable"),
        ("history_truncated", "unresumable"),
        ("offset_out_of_range", "unresumable"),
        ("truncated", "unresumable"),
        ("epoch_changed", "unresumable"),
        ("lagging", "retry"),
        ("unavailable", "retry"),
        ("internal", "retry"),
        ("rate_limited", "retry"),
        ("already_subscribed", "repair"),
        ("forbidden", "fatal"),
        ("revoked", "fatal"),
        ("bad_request", "fatal"),
        ("something_new", "fatal"),
    ],
)
def test_classify(code: str, outcome: str) -> None:
    """forbidden, revoked and bad_request end the subscription whatever the policy."""
    assert classify(code) == outcome
