"""The scenarios' model: what the steps are drawn from, their bounds, and the handles kept.

Plain data and pure functions, no machine instance: the constants the rules draw from (channel
labels, grant sets, starts, ...), the timeouts and sizes, the clauses a scenario can show
broken, and the handles (:class:`SessionHandle`, :class:`ClientHandle`) the machine keeps for
what it registered and connected. The rules are in :mod:`conformance.scenarios.machine`, the
machine's plumbing in :mod:`conformance.scenarios.stage`, its on-the-spot judgements in
:mod:`conformance.scenarios.verdicts`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.backend import Registration
    from conformance.client import ReplayClient
    from conformance.faults import FaultProxy
    from conformance.spans import Span

__all__ = [
    "AUTO_SUBSCRIBE",
    "BRIEF_TTL_S",
    "CHANNELS",
    "DISCONNECT_TIMEOUT_S",
    "DRAIN_TIMEOUT_S",
    "FLOOD_BATCHES",
    "FLOOD_CONCURRENCY",
    "FLOOD_PAD",
    "GRANT_SETS",
    "HISTORY_STARTS",
    "ID_MODES",
    "KEEP",
    "LIFECYCLE_CLAUSES",
    "LIFECYCLE_SHARE",
    "MALFORMED",
    "MAX_AGES",
    "MAX_MESSAGES",
    "RACE_PUBLISHERS",
    "RACING",
    "REVOCATION_BOUND_S",
    "SCENARIO_CLAUSES",
    "SLOW_CONCURRENCY",
    "SLOW_DRAIN_S",
    "SLOW_MESSAGES",
    "SLOW_PAD",
    "STARTS",
    "START_CLAUSES",
    "STEP_TIMEOUT_S",
    "ClientHandle",
    "SessionHandle",
    "drained",
    "settled",
]

# What the scenarios can show broken: the checkers' clauses and the on-the-spot checks.
SCENARIO_CLAUSES = (
    "HND-2",
    "ORD-1",
    "ORD-2",
    "ORD-3",
    "CNS-1",
    "MSG-2",
    "PUB-4",
    "ACC-4",
    "ACC-5",
    "SIG-1",
    "RES-1",
    "SES-15",
    "ACC-6",
    "FLW-1",
    "UNS-3",
    "SUB-3",
    "SUB-7",
    "SUB-8",
    "SUB-9",
    "SUB-14",
    "SUB-6",
    "SUB-11",
    "OFF-3",
    "OFF-4",
    "CON-1",
    "EVT-1",
    "EVT-3",
    "EVT-12",
    "LIM-4",
    "LIM-5",
    "ROB-2",
)
# And what the lifecycle machine adds: expiry, and restarts of a non-durable target.
# Only what the lifecycle machine judges on every target: its restart rule runs only on a
# restartable one, so the clauses only a restart shows (EPO-4, SUB-4 after a new epoch) are not
# cited, or a target the suite cannot restart would pass them unjudged. A restart that breaks
# one still fails it: a finding fails every clause it names, cited or not.
LIFECYCLE_CLAUSES = (
    *SCENARIO_CLAUSES,
    "SES-10",
    "SES-17",
    "EVT-14",
    "SES-1",
)
CHANNELS = ("a", "b", "c")
GRANT_SETS = ("all", "prefix", "exact-a", "subscribe-only", "a-and-c")
AUTO_SUBSCRIBE = ("none", "a-from-beginning", "b-latest")
STARTS = ("beginning", "latest", "omitted", "resume", "offset-1", "truncating")
ID_MODES = ("none", "new", "repeat")
# The clause a successful subscribe of each kind of start stands for.
START_CLAUSES = {
    "beginning": "SUB-7",
    "latest": "SUB-8",
    "omitted": "SUB-9",
    "resume": "RES-1",
    "offset-1": "SUB-14",
    "truncating": "SUB-11",  # from 1 with allow_truncation
    "resume-truncating": "SUB-11",  # a resume with allow_truncation (not drawn: trim_while_away)
}
# Malformed and boundary client events the input rule mixes into traffic.
MALFORMED = (
    "wrong-type",
    "unknown-member",
    "lone-surrogate",
    "unknown-name",
    "payload-at-limit",
    "payload-over-limit",
)
HISTORY_STARTS = ("beginning", "last", "first")  # from first, the last offset seen, offset 1
# Retention updates: a value, None (remove the limit) or KEEP (omit the member, RET-1).
KEEP = "keep"
MAX_MESSAGES: tuple[int | str | None, ...] = (1, 3, 10, None, KEEP)
MAX_AGES: tuple[int | str | None, ...] = (KEEP, None, 1, 3600)
RACING = 8  # publishes in flight around an unsubscribe
RACE_PUBLISHERS = 3  # publishers racing a subscribe, each waiting for its own replies
REVOCATION_BOUND_S = 1.0  # SES-15, ACC-6: "within 1 second"
FLOOD_PAD = "x" * 40_000
FLOOD_BATCHES, FLOOD_CONCURRENCY = 4, 12  # about 2 MB per flood
# The slow reader's flood: more than a loopback connection buffers (see rules_flow), in many
# messages, since servers cut batches by count as well as by bytes.
SLOW_MESSAGES, SLOW_CONCURRENCY, SLOW_PAD = 1200, 24, "s" * 3000
SLOW_DRAIN_S = 20.0
BRIEF_TTL_S = 1  # the smallest ttl_s the schema allows
LIFECYCLE_SHARE = 6  # the lifecycle machine runs this many times fewer examples
STEP_TIMEOUT_S = 30.0
# How long the teardown lets every open subscription reach its channel's head. Volume runs
# on a loaded machine give it more (REPLAY_SCENARIO_DRAIN_S), so that a slow box is not read
# as a lost message.
DRAIN_TIMEOUT_S = float(os.environ.get("REPLAY_SCENARIO_DRAIN_S", "3.0"))
DISCONNECT_TIMEOUT_S = 5.0


@dataclass(eq=False)
class SessionHandle:
    """A registered session as the machine models it."""

    label: str
    registered: Registration  # the latest registration's answer: id and current token
    grant_set: str
    grants: list[dict[str, Any]]
    auto_channels: frozenset[str] = frozenset()
    revoked: bool = False
    # What the session's cursor on each channel may be (None: no cursor). One value while
    # every ack got its reply; more while the reply to one was lost (ACK-4, SUB-9).
    cursors: dict[str, frozenset[int | None]] = field(default_factory=dict)

    # With a brief ttl_s: the monotonic time from which it may have expired, and the time by
    # which it surely has (the server's clock started its ttl_s between the two).
    lapses_at: float | None = None
    expired_by: float | None = None

    def __repr__(self) -> str:  # what Hypothesis prints in a falsifying example
        brief = " brief" if self.lapses_at is not None else ""
        revoked = " revoked" if self.revoked else ""
        return f"<session {self.label} grants={self.grant_set}{brief}{revoked}>"

    def may_have_lapsed(self) -> bool:
        """It may have expired by now: its sockets may be refused or disconnected."""
        return self.lapses_at is not None and time.monotonic() >= self.lapses_at

    def cursor_options(self, channel: str) -> frozenset[int | None]:
        return self.cursors.get(channel, frozenset({None}))


@dataclass(eq=False)
class ClientHandle:
    """A simulated client: one ReplayClient behind its own fault proxy."""

    label: str
    client: ReplayClient
    proxy: FaultProxy
    session: SessionHandle
    node: int
    stalled: bool = False

    def __repr__(self) -> str:
        return f"<client {self.label} of {self.session.label} on node {self.node}>"

    @property
    def usable(self) -> bool:
        """Connected and not stalled: an operation on it gets a reply."""
        return self.client.connected and not self.stalled


def drained(span: Span, head: int) -> bool:
    """The subscription has everything up to ``head`` (or started after it)."""
    offsets = span.offsets
    return (bool(offsets) and offsets[-1] >= head) or span.start == head + 1


def settled(span: Span, head: int) -> bool:
    """Nothing left to wait for: drained, ended (nothing more arrives in it), or already out
    of order, which the checkers name (gap, duplicate, reorder) whatever arrives later."""
    if drained(span, head) or not span.live:
        return True
    start = span.start
    return isinstance(start, int) and span.offsets != list(range(start, start + len(span.offsets)))
