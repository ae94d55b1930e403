"""The scenario machine's stage: how a rule runs on the target, and the judging at teardown.

Theory of operation
-------------------
Rules are synchronous, as Hypothesis wants; each runs one coroutine on the suite's own event
loop (the driver thread) inside this example's :class:`~conformance.context.CaseContext`, so
every operation lands in one event log, exactly as in a deterministic case. Each simulated
client talks to its node through its own :class:`~conformance.faults.FaultProxy`, so faults act
at the TCP level: a cut is a reset, a stall holds bytes without closing anything.

The machine keeps only the model it needs to pick sensible steps (sessions, their grants and
tokens, which clients are connected or stalled) and judges on the spot what a reply alone
shows (:mod:`conformance.scenarios.verdicts`). Everything else is judged after the fact: at
teardown it heals every fault, lets every open subscription drain to its channel's head, and
runs the whole-trace checkers, which name the anomaly and its clause. A failure raises
``ConformanceFailure``, Hypothesis shrinks the steps, and prints them as a short program
followed by the anomaly.

Channels come in a small family so that grants can cover some and not others: ``a`` and ``b``
share the prefix ``<base>/``; ``c`` lives at ``<base>x/`` and is only covered by ``<base>*``
and ``*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, MultipleResults, RuleBasedStateMachine

from conformance.checkers import check
from conformance.context import CaseContext, activated
from conformance.errors import ConformanceFailure, ConnectionLost, ConnectRefused, NoReply
from conformance.protocol import grant
from conformance.registry import CaseSpec
from conformance.scenarios import verdicts
from conformance.scenarios.model import (
    CHANNELS,
    DRAIN_TIMEOUT_S,
    SCENARIO_CLAUSES,
    STEP_TIMEOUT_S,
    ClientHandle,
    SessionHandle,
    settled,
)
from conformance.scenarios.tally import ExampleTally
from conformance.trace import Trace

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from conformance.client import ReplayClient
    from conformance.spans import Span
    from conformance.target import Target

# The starts that send an integer from (with the epoch it belongs to).
AT_AN_OFFSET = ("resume", "offset-1", "truncating", "resume-truncating")

__all__ = ["CLIENTS", "LABELS", "NODES", "SESSIONS", "Connected", "Made", "Stage"]

T = TypeVar("T")

# What the rules of every module draw from. A session leaves ``sessions`` when it is deleted
# (``consumes``); its clients stay in ``clients`` (a client outlives its session).
SESSIONS: Bundle[SessionHandle] = Bundle("sessions")
CLIENTS: Bundle[ClientHandle] = Bundle("clients")
# A node of the target: the machine knows how many it has (it draws no choice of its own).
NODES = st.runner().flatmap(lambda machine: st.integers(0, machine.last_node))
LABELS = st.sampled_from(CHANNELS)

Made = MultipleResults[SessionHandle] | SessionHandle
Connected = MultipleResults[ClientHandle] | ClientHandle


class Stage(RuleBasedStateMachine):
    """A scenario machine without rules: the target, the model, and the verdict at teardown."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.features = target.features
        self.last_node = len(target.urls) - 1
        spec = CaseSpec(name=f"{__name__}.scenario", clauses=SCENARIO_CLAUSES)
        self.context = CaseContext(spec)
        self.counter = itertools.count(1)
        self.ids: dict[str, list[str]] = {label: [] for label in CHANNELS}
        self.handles: list[ClientHandle] = []
        self.failures: list[ConformanceFailure] = []
        self.cast: SessionHandle | None = None
        self.slow_flooded = False
        self.restarted = False
        # Channels (labels) a retention update may have trimmed, and the settings in force.
        self.trimmed: set[str] = set()
        self.retention: dict[str, dict[str, object]] = {}
        # Epochs each channel (label) had before a restart gave it a new one (EPO-3).
        self.stale: dict[str, set[object]] = {label: set() for label in CHANNELS}
        self.made: list[SessionHandle] = []  # every session registered, in order
        self.tally = ExampleTally(type(self).__name__)
        self.base = self.run(self._base)

    # --- running a rule's work ----------------------------------------------------------------

    async def _base(self) -> str:
        return self.target.channel("s")

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = STEP_TIMEOUT_S) -> T:
        """Run ``make()`` on the suite's loop, inside this example's case context."""

        async def within() -> T:
            with activated(self.context):
                return await make()

        return self.target.driver.run(within(), timeout)

    def step(self, make: Callable[[], Awaitable[T]]) -> T | None:
        """Run one rule's work; a failure is kept for the verdict at teardown.

        Raising at once would make a run draw fewer steps than the run Hypothesis replays
        while shrinking, whenever the target's timing differs between the two; keeping every
        run the same length keeps the search consistent (no FlakyStrategyDefinition).
        """
        try:
            return self.run(make)
        except ConformanceFailure as failure:  # NoReply included (EVT-1)
            self.failures.append(failure)
        except ConnectionLost:
            pass  # the connection dropped under the operation (a cut, a revocation)
        except ConnectRefused as refused:  # the machine only connects live sessions
            self.failures.append(
                ConformanceFailure("CON-1", "a live session's token accepted", str(refused))
            )
        return None

    def judged(self, failure: ConformanceFailure | None, channel: str, actor: str) -> None:
        """Raise an on-the-spot finding, with the end of the log about it."""
        if failure is not None:
            failure.log.extend(self.target.log.tail(channel, actor))
            self.tally.problems += 1
            raise failure

    # --- the model's names ----------------------------------------------------------------------

    def channel(self, label: str) -> str:
        return f"{self.base}x/{label}" if label == "c" else f"{self.base}/{label}"

    def grants_for(self, grant_set: str) -> list[dict[str, Any]]:
        base = self.base
        return {
            "all": [grant("*")],
            "prefix": [grant(f"{base}/*")],
            "exact-a": [grant(self.channel("a"))],
            "subscribe-only": [grant(f"{base}*", "subscribe")],
            "a-and-c": [grant(self.channel("a")), grant(self.channel("c"))],
        }[grant_set]

    def auto_entries(self, auto: str) -> list[dict[str, Any]] | None:
        if auto == "a-from-beginning":
            return [{"channel": self.channel("a"), "from": "beginning"}]
        if auto == "b-latest":
            return [{"channel": self.channel("b")}]
        return None

    def next_data(self) -> dict[str, int]:
        return {"scenario": next(self.counter)}  # unique: the checkers match data

    def message_id(self, label: str, mode: str) -> str | None:
        if mode == "repeat" and self.ids[label]:
            return self.ids[label][-1]
        if mode == "none":
            return None
        new = f"k{next(self.counter)}"
        self.ids[label].append(new)
        return new

    # --- operations the rules share ---------------------------------------------------------

    async def subscribe_judged(self, handle: ClientHandle, label: str, start: str) -> None:
        """Subscribe ``handle`` to ``label`` from a kind of ``start`` and judge the reply."""
        channel = self.channel(label)
        stream = handle.client.stream(channel)
        last = stream.received[-1] if stream.received else None
        epoch = stream.subscriptions[-1].epoch if stream.subscriptions else None
        from_: int | str | None = {"beginning": "beginning", "latest": "latest"}.get(start)
        sent_epoch = None
        if start in AT_AN_OFFSET and isinstance(epoch, str):
            resuming = start.startswith("resume")
            offset = last.get("offset") if last and resuming else 0
            from_, sent_epoch = (offset + 1 if isinstance(offset, int) else 1), epoch
        elif start in AT_AN_OFFSET:
            from_ = "beginning"
        if start == "omitted":
            await self._ack_what_was_read(handle, label, epoch)
        before = handle.client.subscription(channel)
        truncating = True if start.endswith("truncating") else None
        reply = await handle.client.subscribe(
            channel, from_, epoch=sent_epoch, allow_truncation=truncating
        )
        already = before is not None and not _ended_first(before, handle, channel)
        session = handle.session
        failure = verdicts.grant_verdict(session, channel, "subscribe", reply)
        failure = failure or verdicts.subscribe_outcome(
            session,
            channel,
            start,
            from_,
            already,
            reply,
            trimmed=label in self.trimmed,
            stale=self.stale[label],
            sent_epoch=sent_epoch,
        )
        omitted = reply.get("ok") is True and start == "omitted"
        if failure is None and omitted and "cursors" in self.features:
            failure = verdicts.cursor_start(session, channel, reply)
        self.judged(failure, channel, handle.label)

    async def _ack_what_was_read(self, handle: ClientHandle, label: str, epoch: object) -> None:
        """Before a subscribe through the cursor, a client that read ``label`` before
        acknowledges the last message it got (it needs no subscription, ACK-5), so the
        subscribe has a cursor to start after (SUB-9, CUR-1)."""
        stream = handle.client.stream(self.channel(label))
        last = stream.received[-1].get("offset") if stream.received else None
        fresh = isinstance(epoch, str) and epoch not in self.stale[label]
        if "cursors" in self.features and isinstance(last, int) and fresh:
            assert isinstance(epoch, str)
            await self.ack_judged(handle, self.channel(label), last, epoch)

    def reader(self, handle: ClientHandle, label: str) -> ClientHandle | None:
        """``handle`` if it is usable and has received messages of ``label`` in a live
        subscription, else the first client that has, else None."""
        channel = self.channel(label)
        for client in (handle, *self.handles):
            span = client.client.subscription(channel)
            if client.usable and not client.session.revoked and span is not None and span.offsets:
                return client
        return None

    async def connect_as(self, client: ReplayClient, session: SessionHandle) -> bool:
        """Connect with the session's current token; False when it was refused because the
        session may have expired (a refusal of a live one fails CON-1 in :meth:`step`)."""
        try:
            await client.connect(session.registered.token)
        except ConnectRefused:
            if session.may_have_lapsed():
                return False
            raise
        return True

    async def reconnect_and_resume(self, handle: ClientHandle) -> None:
        """Connect with the session's current token, then resume what it had subscribed:
        through the session's cursor where it has one (feature ``cursors``, SUB-9), else
        after the last offset it received (RES-1)."""
        if not await self.connect_as(handle.client, handle.session):
            return
        for label in CHANNELS:
            channel = self.channel(label)
            ended = handle.client.subscription(channel) is None
            if ended and handle.client.stream(channel).subscriptions:
                cursor = handle.session.cursor_options(channel)
                known = "cursors" in self.features and None not in cursor
                await self.subscribe_judged(handle, label, "omitted" if known else "resume")

    async def ack_judged(
        self, handle: ClientHandle, channel: str, offset: int, epoch: str | None
    ) -> None:
        """Acknowledge ``offset`` and judge the cursor the reply reports (ACK-4)."""
        session = handle.session
        before = session.cursor_options(channel)
        after = frozenset(max(c or 0, offset) for c in before)  # ACK-4: never moves back
        session.cursors[channel] = before | after  # applied or not, until the reply
        reply = await handle.client.ack(channel, offset, epoch=epoch)
        if reply.get("ok") is not True:
            session.cursors[channel] = before
            return
        self.judged(verdicts.ack_cursor(after, offset, reply), channel, handle.label)
        session.cursors[channel] = frozenset({reply["cursor"]})

    # --- judging ------------------------------------------------------------------------------

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        """Hypothesis calls this after every rule (the machines declare no invariant): the
        tally's step counter, kept out of the steps Hypothesis prints for a failure."""
        self.tally.steps += 1
        super().check_invariants(*args, **kwargs)

    def teardown(self) -> None:
        judged = True
        try:
            self.run(self._drain_and_check, timeout=STEP_TIMEOUT_S + DRAIN_TIMEOUT_S)
        except KeyboardInterrupt:  # the run was stopped: this example was not judged
            judged = False
            raise
        except Exception:
            self.tally.problems = max(self.tally.problems, 1)
            raise
        finally:
            if judged:
                self.tally.record()
            self.run(self.context.close)

    async def _drain_and_check(self) -> None:
        """Heal every fault, let open subscriptions reach their channel's head, then judge
        the whole trace; raise the earliest problem, with every other one listed."""
        for handle in self.handles:
            handle.proxy.heal()
        heads = {label: await self._head(label) for label in CHANNELS}
        waits = []
        for handle in self.handles:
            for label, (epoch, head) in heads.items():
                span = handle.client.subscription(self.channel(label))
                if span is not None and span.epoch == epoch and head is not None:
                    waits.append(self._settle(handle, span, head))
        # All at once: a target that stopped delivering costs one drain timeout, not one per
        # subscription (shrinking replays this teardown hundreds of times).
        await asyncio.gather(*waits)
        problems = [*self.context.log.violations, *self.failures]
        entries = self.context.log.entries
        trace = Trace.from_log(entries)
        self.tally.publishes, self.tally.deliveries = len(trace.publishes), len(trace.deliveries)
        anomalies = check(trace, idempotency="idempotency" in self.features)
        if anomalies:
            seqs = {seq for anomaly in anomalies for seq in anomaly.seqs}
            problems.append(
                ConformanceFailure(
                    anomalies[0].clause,
                    f"no {anomalies[0].kind} anomaly in the trace",
                    "; ".join(str(a) for a in anomalies[:5]),
                    [e for e in entries if e.seq in seqs][-40:],
                )
            )
        self.tally.problems = len(problems)
        if problems:
            first = problems[0]
            first.others = [*first.others, *problems[1:]]
            raise first

    @staticmethod
    async def _settle(handle: ClientHandle, span: Span, head: int) -> None:
        """Wait until the subscription has reached ``head``, or its outcome is decided."""
        # What never arrives is the checkers' to name (lost), with its clause.
        with contextlib.suppress(ConformanceFailure, ConnectionLost, NoReply):
            await handle.client.wait_until(
                functools.partial(settled, span, head),
                f"{handle.label} drained to {head}",
                timeout=DRAIN_TIMEOUT_S,
            )

    async def _head(self, label: str) -> tuple[object, int | None]:
        """The channel's epoch and head, as a fresh all-seeing subscriber is told."""
        target = self.target
        probe = await target.client(grants=[grant("*", "subscribe")], name=f"probe-{label}")
        reply = await probe.subscribe(self.channel(label), "latest")
        await probe.close()
        head = reply.get("head")
        return reply.get("epoch"), head if isinstance(head, int) else None


def _ended_first(before: Span, handle: ClientHandle, channel: str) -> bool:
    """Whether the server ended the subscription ``before`` (a revocation, a narrowed grant:
    ``replay:unsubscribed``) ahead of the reply to a subscribe sent while it was live: the
    subscribe then found none, and ok is its right answer (SUB-3). An ok given while it was
    live ends it as "replaced" instead, which SUB-3 still fails."""
    after = handle.client.subscription(channel)
    return (
        after is not None
        and after is not before
        and (before.end or "").startswith("unsubscribed:")
        and before.ended_seq is not None
        and before.ended_seq < after.opened_seq
    )
