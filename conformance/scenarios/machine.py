"""A Hypothesis state machine that drives a target through random interleavings.

Theory of operation
-------------------
Rules are synchronous, as Hypothesis wants; each runs one coroutine on the suite's own event
loop (the driver thread) inside this example's :class:`CaseContext`, so every operation lands
in one event log, exactly as in a deterministic case. Each simulated client talks to its node
through its own :class:`FaultProxy`, so faults act at the TCP level: a cut is a reset, a stall
holds bytes without closing anything.

The machine keeps only the model it needs to pick sensible steps (sessions, their grants and
tokens, which clients are connected or stalled) and checks the few things it can judge on the
spot (a subscribe the grants allow must not be forbidden, ACC-4, and the reverse, ACC-5).
Everything else is judged after the fact: at teardown it heals every fault, lets every open
subscription drain to its channel's head, and runs the whole-history checkers, which name the
anomaly (lost, duplicate, reorder, gap, divergence, phantom, duplicated-publish, leak,
unsignalled-loss) and its clause. A failure raises ``ConformanceFailure``, Hypothesis shrinks
the steps, and prints them as a short program followed by the anomaly.

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
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
)

from conformance.case import CaseContext, CaseSpec, activated, grant
from conformance.checkers import check
from conformance.faults import Direction
from conformance.findings import ConformanceFailure, ConnectionLost, ConnectRefused, NoReply
from conformance.history import History, grants_allow
from conformance.scenarios.model import (
    AUTO_SUBSCRIBE,
    CHANNELS,
    DISCONNECT_TIMEOUT_S,
    DRAIN_TIMEOUT_S,
    FLOOD_BATCHES,
    FLOOD_CONCURRENCY,
    FLOOD_PAD,
    GRANT_SETS,
    ID_MODES,
    RACING,
    REVOCATION_BOUND_S,
    SCENARIO_CLAUSES,
    START_CLAUSES,
    STARTS,
    STEP_TIMEOUT_S,
    ClientHandle,
    SessionHandle,
    drained,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from conformance.backend import Session
    from conformance.target import Target

__all__ = ["SCENARIO_CLAUSES", "build_machine"]

T = TypeVar("T")


def build_machine(target: Target) -> type[RuleBasedStateMachine]:
    """A state machine class bound to ``target`` (its node count shapes the strategies)."""
    nodes = st.integers(0, len(target.urls) - 1)
    features = target.features

    # The derandomized ``ci`` profile's seed comes from the factory the test passes to
    # Hypothesis (a lambda in conformance/cases/test_scenarios.py), not from this class, so
    # editing the rules changes what is explored only as far as the rules themselves change.
    class ReplayMachine(RuleBasedStateMachine):
        sessions = Bundle("sessions")
        clients = Bundle("clients")

        def __init__(self) -> None:
            super().__init__()
            spec = CaseSpec(name=f"{__name__}.scenario", clauses=SCENARIO_CLAUSES)
            self.context = CaseContext(spec)
            self.counter = itertools.count(1)
            self.ids: dict[str, list[str]] = {label: [] for label in CHANNELS}
            self.handles: list[ClientHandle] = []
            self.failures: list[ConformanceFailure] = []
            self.cast: SessionHandle | None = None
            self.base = self._run(self._base)

        # --- plumbing -------------------------------------------------------------------------

        async def _base(self) -> str:
            return target.channel("s")

        def _run(self, make: Callable[[], Awaitable[T]], timeout: float = STEP_TIMEOUT_S) -> T:
            async def within() -> T:
                with activated(self.context):
                    return await make()

            return target.driver.run(within(), timeout)

        def _step(self, make: Callable[[], Awaitable[T]]) -> T | None:
            """Run one rule's work; a failure is kept for the verdict at teardown.

            Raising at once would make a run draw fewer steps than the run Hypothesis replays
            while shrinking, whenever the target's timing differs between the two; keeping
            every run the same length keeps the search consistent (no FlakyStrategyDefinition).
            """
            try:
                return self._run(make)
            except ConformanceFailure as failure:  # NoReply included (EVT-1)
                self.failures.append(failure)
            except ConnectionLost:
                pass  # the connection dropped under the operation (a cut, a revocation)
            except ConnectRefused as refused:  # the machine only connects live sessions
                self.failures.append(
                    ConformanceFailure("CON-1", "a live session's token accepted", str(refused))
                )
            return None

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

        # --- a starting cast, so that client rules apply from the first step -----------------

        def _cast(self, grant_set: str) -> SessionHandle | None:
            """The starting cast's session, registered by whichever initializer runs first."""
            if self.cast is None:
                made = self.register(grant_set, "none")
                self.cast = made if isinstance(made, SessionHandle) else None
            return self.cast

        @initialize(target=sessions, grant_set=st.sampled_from(GRANT_SETS))
        def cast_session(self, grant_set: str) -> Any:
            """The cast's session, also in the bundle so that rules revoke and narrow it."""
            handle = self._cast(grant_set)
            return handle if handle is not None else multiple()

        @initialize(target=clients)
        def two_subscribers(self) -> Any:
            """Two clients (on the first and last node) reading ``a`` from the beginning and
            ``b`` live, so that every publish to those is delivered somewhere."""
            handle = self._cast("all")
            if handle is None:
                return multiple()
            cast = [self.connect(handle, 0), self.connect(handle, len(target.urls) - 1)]
            cast = [client for client in cast if isinstance(client, ClientHandle)]
            for client in cast:
                self.subscribe(client, "a", "beginning")
                self.subscribe(client, "b", "latest")
            return multiple(*cast)

        # --- sessions -------------------------------------------------------------------------

        @rule(
            target=sessions,
            grant_set=st.sampled_from(GRANT_SETS),
            auto=st.sampled_from(AUTO_SUBSCRIBE),
        )
        def register(self, grant_set: str, auto: str) -> Any:
            grants = self.grants_for(grant_set)

            async def go() -> Session:
                return await target.register(grants, subscribe=self.auto_entries(auto))

            registered = self._step(go)
            if registered is None:
                return multiple()
            auto_channels = frozenset(e["channel"] for e in self.auto_entries(auto) or ())
            return SessionHandle(
                f"s{next(self.counter)}", registered, grant_set, grants, auto_channels
            )

        @rule(handle=sessions, grant_set=st.sampled_from(GRANT_SETS))
        def reregister(self, handle: SessionHandle, grant_set: str) -> None:
            if handle.revoked:
                return
            grants = self.grants_for(grant_set)

            async def go() -> Session:
                return await target.register(grants, session_id=handle.registered.session_id)

            before = {
                (c, label)
                for c in self.handles
                for label in CHANNELS
                if c.session is handle and c.usable and c.client.subscription(self.channel(label))
            }
            registered = self._step(go)
            if registered is None:
                return
            handle.registered = registered  # SES-4: the old token no longer connects
            handle.grant_set, handle.grants = grant_set, grants
            for client, label in before:
                if not grants_allow(grants, self.channel(label), "subscribe"):
                    self._step(functools.partial(self._expect_revoked, client, label))

        async def _expect_revoked(self, client: ClientHandle, label: str) -> None:
            """A subscription the new grants no longer cover ends within 1 s (ACC-6)."""
            await client.client.wait_for_event(
                "replay:unsubscribed",
                lambda event: event.get("channel") == self.channel(label),
                timeout=REVOCATION_BOUND_S,
                clause="ACC-6",
            )

        @rule(handle=sessions)
        def revoke(self, handle: SessionHandle) -> None:
            """Delete the session: its sockets must be gone within 1 s (SES-15)."""
            if handle.revoked:
                return
            connected = [c for c in self.handles if c.session is handle and c.client.connected]

            async def go() -> None:
                await target.backend.delete_session(handle.registered.session_id)
                for client in connected:
                    client.proxy.heal()  # a stalled socket cannot hear its disconnect
                    client.stalled = False
                    await client.client.wait_disconnected(
                        timeout=REVOCATION_BOUND_S, clause="SES-15"
                    )

            handle.revoked = True  # whatever the answer: nothing may be delivered after it
            self._step(go)

        # --- clients and faults ---------------------------------------------------------------

        @rule(target=clients, handle=sessions, node=nodes)
        def connect(self, handle: SessionHandle, node: int) -> Any:
            if handle.revoked:
                return multiple()

            async def go() -> ClientHandle | None:
                proxy = await target.proxy(node)
                client = await target.client(
                    session=handle.registered, proxy=proxy, node=node, connect=False
                )
                await client.connect(handle.registered.token)
                return ClientHandle(client.name, client, proxy, handle, node)

            made = self._step(go)
            if made is None:
                return multiple()
            self.handles.append(made)
            return made

        @rule(handle=clients)
        def disconnect(self, handle: ClientHandle) -> None:
            if handle.client.connected and not handle.stalled:
                self._step(handle.client.disconnect)

        @rule(handle=clients)
        def cut(self, handle: ClientHandle) -> None:
            async def go() -> None:
                await handle.proxy.cut()
                if handle.client.connected:
                    await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)

            self._step(go)
            handle.stalled = False

        @rule(handle=clients, direction=st.sampled_from([Direction.DOWN, Direction.BOTH]))
        def stall(self, handle: ClientHandle, direction: Direction) -> None:
            handle.proxy.stall(direction)
            handle.stalled = True

        @rule(handle=clients)
        def delay(self, handle: ClientHandle) -> None:
            handle.proxy.delay(0.02, 0.03, seed=7)

        @rule(handle=clients)
        def heal(self, handle: ClientHandle) -> None:
            handle.proxy.heal()
            handle.stalled = False

        @rule(handle=clients)
        def reconnect(self, handle: ClientHandle) -> None:
            """Reconnect with the session's current token and resume every channel at last + 1."""
            if handle.client.connected or handle.session.revoked:
                return
            handle.proxy.heal()
            handle.stalled = False

            async def go() -> None:
                await handle.client.connect(handle.session.registered.token)
                for label in CHANNELS:
                    channel = self.channel(label)
                    stream = handle.client.stream(channel)
                    if stream.subscriptions and handle.client.subscription(channel) is None:
                        await self._subscribe(handle, label, "resume")

            self._step(go)

        # --- channels -------------------------------------------------------------------------

        async def _subscribe(self, handle: ClientHandle, label: str, start: str) -> None:
            channel = self.channel(label)
            stream = handle.client.stream(channel)
            last = stream.received[-1] if stream.received else None
            epoch = stream.subscriptions[-1].epoch if stream.subscriptions else None
            from_: int | str | None = {"beginning": "beginning", "latest": "latest"}.get(start)
            sent_epoch = None
            if start in ("resume", "offset-1") and isinstance(epoch, str):
                offset = last.get("offset") if last and start == "resume" else 0
                from_, sent_epoch = (offset + 1 if isinstance(offset, int) else 1), epoch
            elif start in ("resume", "offset-1"):
                from_ = "beginning"
            already = handle.client.subscription(channel) is not None
            reply = await handle.client.subscribe(channel, from_, epoch=sent_epoch)
            self._judge_grant(handle, channel, "subscribe", reply)
            if grants_allow(handle.session.grants, channel, "subscribe"):
                # Nothing in a scenario trims history or changes an epoch, so a subscribe the
                # grants allow either succeeds or finds the channel already subscribed; right
                # after a connect, an auto-subscription may win that race (AUT-5).
                expected = {"already_subscribed"} if already else {"ok"}
                if channel in handle.session.auto_channels:
                    expected |= {"ok", "already_subscribed"}
                got = "ok" if reply.get("ok") is True else (reply.get("error") or {}).get("code")
                if got not in expected:
                    raise ConformanceFailure(
                        "SUB-3" if already else START_CLAUSES[start],
                        f"{' or '.join(sorted(expected))} for a subscribe from {from_!r}",
                        str(reply)[:200],
                        target.log.tail(channel, handle.label),
                    )
                if got == "ok" and start == "omitted" and "cursors" in features:
                    self._judge_cursor_start(handle, channel, reply)

        def _judge_cursor_start(
            self, handle: ClientHandle, channel: str, reply: dict[str, Any]
        ) -> None:
            """An omitted ``from`` starts after the session's cursor, or at the head (SUB-9)."""
            head = reply.get("head")
            starts = {
                c + 1 if c is not None else head + 1 if isinstance(head, int) else None
                for c in handle.session.cursor_options(channel)
            }
            if reply.get("from") not in starts:
                raise ConformanceFailure(
                    "SUB-9",
                    f"a start at {' or '.join(map(str, sorted(s for s in starts if s)))} "
                    "(the session's cursor + 1, or head + 1 without a cursor)",
                    str(reply)[:200],
                    target.log.tail(channel, handle.label),
                )

        def _judge_grant(
            self, handle: ClientHandle, channel: str, action: str, reply: dict[str, Any]
        ) -> None:
            allowed = grants_allow(handle.session.grants, channel, action)
            code = (reply.get("error") or {}).get("code") if reply.get("ok") is False else None
            if code == "forbidden" and allowed:
                raise ConformanceFailure(
                    "ACC-4",
                    f"{action} on {channel} allowed by {handle.session.grant_set}",
                    "forbidden",
                    target.log.tail(channel, handle.label),
                )
            if reply.get("ok") is True and not allowed:
                raise ConformanceFailure(
                    "ACC-5",
                    f"forbidden: {handle.session.grant_set} does not cover {channel}",
                    f"an ok reply to {action}",
                    target.log.tail(channel, handle.label),
                )

        @rule(handle=clients, label=st.sampled_from(CHANNELS), start=st.sampled_from(STARTS))
        def subscribe(self, handle: ClientHandle, label: str, start: str) -> None:
            if handle.usable and not handle.session.revoked:
                self._step(lambda: self._subscribe(handle, label, start))

        @rule(handle=clients, label=st.sampled_from(CHANNELS))
        def unsubscribe(self, handle: ClientHandle, label: str) -> None:
            if handle.usable and handle.client.subscription(self.channel(label)) is not None:
                self._step(lambda: handle.client.unsubscribe(self.channel(label)))

        @rule(label=st.sampled_from(CHANNELS), id_mode=st.sampled_from(ID_MODES), node=nodes)
        def publish(self, label: str, id_mode: str, node: int) -> None:
            data, message_id = self.next_data(), self.message_id(label, id_mode)
            self._step(
                lambda: target.backend_at(node).publish(self.channel(label), data, message_id)
            )

        @rule(label=st.sampled_from(CHANNELS), node=nodes, concurrent=st.booleans())
        def retry_publish(self, label: str, node: int, concurrent: bool) -> None:
            """A publisher that lost a reply publishes again with the same id, after the first
            or racing it, maybe through another node (IDM-1, IDM-2)."""
            channel, message_id = self.channel(label), self.message_id(label, "new")
            first, again = self.next_data(), self.next_data()

            async def go() -> None:
                backends = (target.backend_at(node), target.backend_at(len(target.urls) - 1))
                publishes = [
                    b.publish(channel, d, message_id)
                    for b, d in zip(backends, (first, again), strict=True)
                ]
                if concurrent:
                    await asyncio.gather(*publishes)
                else:
                    for publish in publishes:
                        await publish

            self._step(go)

        @precondition(lambda self: "client-publish" in features)
        @rule(handle=clients, label=st.sampled_from(CHANNELS), id_mode=st.sampled_from(ID_MODES))
        def client_publish(self, handle: ClientHandle, label: str, id_mode: str) -> None:
            if not handle.usable or handle.session.revoked:
                return
            channel, data, message_id = (
                self.channel(label),
                self.next_data(),
                self.message_id(label, id_mode),
            )

            async def go() -> None:
                reply = await handle.client.publish(channel, data, id=message_id)
                self._judge_grant(handle, channel, "publish", reply)

            self._step(go)

        @rule(handle=clients, label=st.sampled_from(CHANNELS), burst=st.integers(4, 40), node=nodes)
        def publish_racing_subscribe(
            self, handle: ClientHandle, label: str, burst: int, node: int
        ) -> None:
            """Publishes stream in one after another while the client subscribes from the
            beginning, so some land before, some during and some after the subscribe (HND-2)."""
            if not handle.usable or handle.session.revoked:
                return
            channel = self.channel(label)
            if handle.client.subscription(channel) is not None:
                return

            async def go() -> None:
                backend = target.backend_at(node)  # inside: it logs to the running case
                started = asyncio.Event()

                async def publisher() -> None:
                    for n in range(burst):
                        if n == burst // 3:
                            started.set()
                        await backend.publish(channel, self.next_data())

                publishing = asyncio.ensure_future(publisher())
                await started.wait()
                await self._subscribe(handle, label, "beginning")
                await publishing

            self._step(go)

        @rule(label=st.sampled_from(CHANNELS), node=nodes)
        def flood(self, label: str, node: int) -> None:
            """Large messages, enough to fill a stalled reader's buffers (FLW-1)."""
            channel = self.channel(label)

            async def go() -> None:
                backend = target.backend_at(node)
                for _ in range(FLOOD_BATCHES):
                    await asyncio.gather(
                        *(
                            backend.publish(channel, {**self.next_data(), "pad": FLOOD_PAD})
                            for _ in range(FLOOD_CONCURRENCY)
                        )
                    )

            self._step(go)

        @rule(
            handle=clients, label=st.sampled_from(CHANNELS), missed=st.integers(0, 12), node=nodes
        )
        def drop_and_resume(self, handle: ClientHandle, label: str, missed: int, node: int) -> None:
            """Cut the connection (no goodbye), publish while it is down, reconnect and resume
            every channel from the last offset seen + 1 with its epoch (RES-1)."""
            if not handle.usable or handle.session.revoked:
                return
            channel = self.channel(label)

            async def go() -> None:
                await handle.proxy.cut()
                await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)
                backend = target.backend_at(node)
                for _ in range(missed):
                    await backend.publish(channel, self.next_data())
                await handle.client.connect(handle.session.registered.token)
                for resumed in CHANNELS:
                    if handle.client.stream(self.channel(resumed)).subscriptions:
                        await self._subscribe(handle, resumed, "resume")

            self._step(go)

        @rule(handle=clients, label=st.sampled_from(CHANNELS), start=st.sampled_from(STARTS))
        def resubscribe(self, handle: ClientHandle, label: str, start: str) -> None:
            """Unsubscribe and subscribe again at once (UNS-3, UNS-4, RES-2)."""
            channel = self.channel(label)
            if not handle.usable or handle.client.subscription(channel) is None:
                return

            async def go() -> None:
                # Publishes race the unsubscribe: nothing may arrive after its reply (UNS-3).
                backend = target.backend_at(handle.node)
                racing = asyncio.gather(
                    *(backend.publish(channel, self.next_data()) for _ in range(RACING))
                )
                await handle.client.unsubscribe(channel)
                await racing
                await self._subscribe(handle, label, start)

            self._step(go)

        @precondition(lambda self: "cursors" in features)
        @rule(
            handle=clients,
            label=st.sampled_from(CHANNELS),
            back=st.integers(0, 3),
            resume=st.booleans(),
        )
        def ack(self, handle: ClientHandle, label: str, back: int, resume: bool) -> None:
            """Acknowledge a delivered offset (the last, or one ``back`` before it); with
            ``resume``, unsubscribe and subscribe again through the cursor (ACK-4, SUB-9,
            CUR-1, CUR-2): what follows the acknowledged offset comes again, nothing before."""
            channel = self.channel(label)
            subscription = handle.client.subscription(channel)
            if not handle.usable or subscription is None or not subscription.offsets:
                return
            epoch = subscription.epoch if isinstance(subscription.epoch, str) else None
            offset = subscription.offsets[max(0, len(subscription.offsets) - 1 - back)]

            async def go() -> None:
                await self._ack(handle, channel, offset, epoch)
                if resume:
                    await handle.client.unsubscribe(channel)
                    await self._subscribe(handle, label, "omitted")

            self._step(go)

        async def _ack(
            self, handle: ClientHandle, channel: str, offset: int, epoch: str | None
        ) -> None:
            session = handle.session
            before = session.cursor_options(channel)
            after = frozenset(max(c or 0, offset) for c in before)  # ACK-4: never moves back
            session.cursors[channel] = before | after  # applied or not, until the reply
            reply = await handle.client.ack(channel, offset, epoch=epoch)
            if reply.get("ok") is not True:
                session.cursors[channel] = before
                return
            if reply.get("cursor") not in after:
                raise ConformanceFailure(
                    "ACK-4",
                    f"cursor {' or '.join(map(str, sorted(after)))} after an ack of {offset}",
                    str(reply)[:200],
                    target.log.tail(channel, handle.label),
                )
            session.cursors[channel] = frozenset({reply["cursor"]})

        # --- judging --------------------------------------------------------------------------

        def teardown(self) -> None:
            try:
                self._run(self._drain_and_check, timeout=STEP_TIMEOUT_S + DRAIN_TIMEOUT_S)
            finally:
                self._run(self.context.close)

        async def _drain_and_check(self) -> None:
            """Heal every fault, let open subscriptions reach their channel's head, then judge
            the whole history; raise the earliest problem, with every other one listed."""
            for handle in self.handles:
                handle.proxy.heal()
            heads = {label: await self._head(label) for label in CHANNELS}
            for handle in self.handles:
                for label, (epoch, head) in heads.items():
                    subscription = handle.client.subscription(self.channel(label))
                    if subscription is None or subscription.epoch != epoch or head is None:
                        continue
                    # What never arrives is the checkers' to name (lost), with its clause.
                    with contextlib.suppress(ConformanceFailure, ConnectionLost, NoReply):
                        await handle.client.wait_until(
                            functools.partial(drained, subscription, head),
                            f"{handle.label} drained to {head}",
                            timeout=DRAIN_TIMEOUT_S,
                        )
            problems = [*self.context.log.violations, *self.failures]
            anomalies = check(
                History.from_log(self.context.log.entries),
                idempotency="idempotency" in features,
            )
            if anomalies:
                seqs = {seq for anomaly in anomalies for seq in anomaly.seqs}
                problems.append(
                    ConformanceFailure(
                        anomalies[0].clause,
                        f"no {anomalies[0].kind} anomaly in the history",
                        "; ".join(str(a) for a in anomalies[:5]),
                        [e for e in self.context.log.entries if e.seq in seqs][-40:],
                    )
                )
            if problems:
                first = problems[0]
                first.others = [*first.others, *problems[1:]]
                raise first

        async def _head(self, label: str) -> tuple[object, int | None]:
            """The channel's epoch and head, as a fresh all-seeing subscriber is told."""
            probe = await target.client(grants=[grant("*", "subscribe")], name=f"probe-{label}")
            reply = await probe.subscribe(self.channel(label), "latest")
            await probe.close()
            head = reply.get("head")
            return reply.get("epoch"), head if isinstance(head, int) else None

    return ReplayMachine
