"""The scenario rules that publish: by the backend, by a client, retried by id, racing a
subscribe, and floods of large messages (spec §4.4, §6.3, §7).

Each publish is recorded in the trace with its answer, so the whole-trace checkers judge
what was stored against what every subscriber received.
"""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.scenarios import verdicts
from conformance.scenarios.model import (
    FLOOD_BATCHES,
    FLOOD_CONCURRENCY,
    FLOOD_PAD,
    ID_MODES,
    RACE_PUBLISHERS,
    ClientHandle,
)
from conformance.scenarios.stage import CLIENTS, LABELS, NODES, Stage

__all__ = ["PublishRules"]


class PublishRules(Stage):
    """Publishes of every kind the protocol allows."""

    @rule(label=LABELS, id_mode=st.sampled_from(ID_MODES), node=NODES)
    def publish(self, label: str, id_mode: str, node: int) -> None:
        data, message_id = self.next_data(), self.message_id(label, id_mode)
        backend = self.target.backend_at
        self.step(lambda: backend(node).publish(self.channel(label), data, message_id))

    @rule(label=LABELS, node=NODES, concurrent=st.booleans())
    def retry_publish(self, label: str, node: int, concurrent: bool) -> None:
        """A publisher that lost a reply publishes again with the same id, after the first
        or racing it, maybe through another node (IDM-6, IDM-2)."""
        channel, message_id = self.channel(label), self.message_id(label, "new")
        first, again = self.next_data(), self.next_data()

        async def go() -> None:
            backends = (self.target.backend_at(node), self.target.backend_at(self.last_node))
            publishes = [
                b.publish(channel, d, message_id)
                for b, d in zip(backends, (first, again), strict=True)
            ]
            if concurrent:
                await asyncio.gather(*publishes)
            else:
                for publish in publishes:
                    await publish

        self.step(go)

    @precondition(lambda self: "client-publish" in self.features)
    @rule(handle=CLIENTS, label=LABELS, id_mode=st.sampled_from(ID_MODES))
    def client_publish(self, handle: ClientHandle, label: str, id_mode: str) -> None:
        if not handle.usable or handle.session.revoked:
            return
        channel = self.channel(label)
        data, message_id = self.next_data(), self.message_id(label, id_mode)

        async def go() -> None:
            reply = await handle.client.publish(channel, data, id=message_id)
            failure = verdicts.grant_verdict(handle.session, channel, "publish", reply)
            self.judged(failure, channel, handle.label)

        self.step(go)

    @rule(handle=CLIENTS, label=LABELS, burst=st.integers(4, 40), node=NODES)
    def publish_racing_subscribe(
        self, handle: ClientHandle, label: str, burst: int, node: int
    ) -> None:
        """Publishers keep several publishes in flight while the client subscribes from the
        beginning, and go on until ``burst`` more were stored after its reply: some land
        before, some while its history is delivered, some after the handoff to live (HND-2)."""
        if not handle.usable or handle.session.revoked:
            return
        channel = self.channel(label)
        if handle.client.subscription(channel) is not None:
            return

        async def go() -> None:
            backend = self.target.backend_at(node)  # inside: it logs to the running case
            stored = 0
            started, answered = asyncio.Event(), asyncio.Event()
            after: list[int] = []

            async def publisher() -> None:
                nonlocal stored
                while len(after) < burst:
                    await backend.publish(channel, self.next_data())
                    stored += 1
                    if stored >= burst // 3:
                        started.set()
                    if answered.is_set():
                        after.append(stored)

            publishing = asyncio.gather(*(publisher() for _ in range(RACE_PUBLISHERS)))
            try:
                await started.wait()
                await self.subscribe_judged(handle, label, "beginning")
            finally:
                answered.set()
                await publishing

        self.step(go)

    @rule(label=LABELS, node=NODES)
    def flood(self, label: str, node: int) -> None:
        """Large messages, enough to fill a stalled reader's buffers (FLW-1)."""
        channel = self.channel(label)

        async def go() -> None:
            backend = self.target.backend_at(node)
            for _ in range(FLOOD_BATCHES):
                await asyncio.gather(
                    *(
                        backend.publish(channel, {**self.next_data(), "pad": FLOOD_PAD})
                        for _ in range(FLOOD_CONCURRENCY)
                    )
                )

        self.step(go)
