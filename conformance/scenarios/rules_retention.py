"""The scenario rules about retention (feature ``retention``, spec §4.7, §10.6).

The backend sets, changes and clears ``max_messages`` and ``max_age_s`` while subscribers lag
or are away. The model only remembers which channels ever had a limit (``trimmed``): there,
a subscribe from an offset may also be answered ``history_truncated`` (SUB-6). Everything
else is the whole-trace checkers' to judge, and they need no exception for retention: a
subscription never skips (SIG-1, SIG-2 end it with ``truncated`` instead), a start later than
asked says ``truncated`` (SUB-11), a start below a ``first`` already reported is
``resurrected`` (SUB-6, RET-8), and an offset given twice is ``reassigned`` (OFF-3), so
publishes after retention emptied a channel must continue at head + 1.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.errors import ConformanceFailure
from conformance.scenarios.model import (
    DISCONNECT_TIMEOUT_S,
    KEEP,
    MAX_AGES,
    MAX_MESSAGES,
    ClientHandle,
)
from conformance.scenarios.stage import CLIENTS, LABELS, NODES, Stage

__all__ = ["RetentionRules"]


def _claims_retention(machine: Stage) -> bool:
    return "retention" in machine.features


class RetentionRules(Stage):
    """Rules that trim channels under their subscribers."""

    @precondition(_claims_retention)
    @rule(
        label=LABELS,
        max_messages=st.sampled_from(MAX_MESSAGES),
        max_age_s=st.sampled_from(MAX_AGES),
    )
    def set_retention(self, label: str, max_messages: object, max_age_s: object) -> None:
        """``PUT …/retention``; a member the update omits keeps its value (RET-1)."""
        channel = self.channel(label)
        self.trimmed.add(label)  # before the reply: a lost reply may still have applied it
        asked = {"max_messages": max_messages, "max_age_s": max_age_s}
        sent = {k: v for k, v in asked.items() if v is not KEEP}
        if not sent:
            sent = {"max_messages": None}

        async def go() -> None:
            answer = await self.target.backend.set_retention(channel, **sent)  # type: ignore[arg-type]
            settings = self.retention.setdefault(label, {"max_messages": None, "max_age_s": None})
            settings.update(sent)
            shown = {k: answer.get(k) for k in settings}
            if shown != settings:
                failure = ConformanceFailure(
                    "RET-1", f"the settings now in force, {settings}", str(answer)[:200]
                )
                self.judged(failure, channel, "backend")

        self.step(go)

    @precondition(_claims_retention)
    @rule(handle=CLIENTS, label=LABELS, keep=st.sampled_from((1, 3)), node=NODES)
    def trim_while_away(self, handle: ClientHandle, label: str, keep: int, node: int) -> None:
        """While a reader of ``label`` is cut off, the channel gets ``max_messages`` = keep
        and more messages than that; back, it resumes after the last offset it had: below
        ``first`` now, so ``history_truncated`` (SUB-6), and again with ``allow_truncation``,
        which starts at ``first_available`` and says so (SUB-11)."""
        channel = self.channel(label)
        if not handle.usable or handle.session.revoked or not handle.client.subscription(channel):
            return
        self.trimmed.add(label)

        async def go() -> None:
            await handle.proxy.cut()
            await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)
            backend = self.target.backend_at(node)
            await backend.set_retention(channel, max_messages=keep)
            self.retention.setdefault(label, {"max_age_s": None})["max_messages"] = keep
            for _ in range(keep + 2):
                await backend.publish(channel, self.next_data())
            if not await self.connect_as(handle.client, handle.session):
                return
            await self.subscribe_judged(handle, label, "resume")
            if handle.client.subscription(channel) is None:
                await self.subscribe_judged(handle, label, "resume-truncating")

        self.step(go)
