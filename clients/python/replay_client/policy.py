"""What a subscription does when the server says its position cannot be resumed.

Pure: a table from the server's code and the application's policy to a plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from replay_client.errors import ReplayClientError

__all__ = ["Outcome", "Plan", "Policy", "PolicyName", "classify", "plan_for"]

PolicyName = Literal["fail", "restart", "continue"]
Policy = PolicyName | Callable[[ReplayClientError], PolicyName]
Outcome = Literal["unresumable", "retry", "repair", "fatal"]

# The codes (error replies and replay:unsubscribed reasons) a position cannot survive, and
# what went wrong with it.
_LOST: Final[dict[str, Literal["epoch", "truncated", "ahead"]]] = {
    "epoch_mismatch": "epoch",  # SUB-4
    "epoch_changed": "epoch",  # SIG-3
    "history_truncated": "truncated",  # SUB-6
    "truncated": "truncated",  # SIG-2
    "offset_out_of_range": "ahead",  # SUB-5: the store is ahead of the server
}
# Endings the server promises skipped nothing (§7.3): resume from the position later.
_RETRY: Final = frozenset(
    {"lagging", "unavailable", "internal", "rate_limited", "timeout", "unauthorized"}
)


def classify(code: str) -> Outcome:
    """How a subscription treats an error reply or ending with this code.

    ``unauthorized`` (EVT-14) means the session ended under a live socket: the connection is
    about to go, and a new token on the next connect may be accepted. ``already_subscribed``
    means an auto-subscription (§8) holds the channel: unsubscribe and subscribe again.
    ``forbidden``, ``revoked``, ``bad_request`` and any unknown code end the subscription.
    """
    if code in _LOST:
        return "unresumable"
    if code in _RETRY:
        return "retry"
    if code == "already_subscribed":
        return "repair"
    return "fatal"


@dataclass(frozen=True)
class Plan:
    """How to subscribe again: from ``"beginning"``, ``"latest"`` or the position
    (``"position"``, with ``allow_truncation``); ``forget`` drops the guard's memory."""

    start: Literal["beginning", "latest", "position"]
    allow_truncation: bool = False
    forget: bool = False
    epoch_changed: bool = False
    truncated: bool = False


def plan_for(policy: Policy, error: ReplayClientError) -> Plan | None:
    """The plan for an unresumable ``error`` under ``policy``; None ends the subscription."""
    lost = _LOST[error.code]
    name = policy(error) if callable(policy) else policy
    if name not in ("fail", "restart", "continue"):
        raise ValueError(f"a policy returns 'fail', 'restart' or 'continue', not {name!r}")
    if name == "fail":
        return None
    if lost == "epoch":  # a new epoch has nothing to continue from
        return Plan("beginning", forget=True, epoch_changed=True)
    if lost == "truncated":
        if name == "continue":
            return Plan("position", allow_truncation=True, truncated=True)
        return Plan("beginning", truncated=True)
    return Plan("beginning" if name == "restart" else "latest", forget=True)
