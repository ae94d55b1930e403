"""The scenario rules that read history (feature ``history``, spec §4.6, §6.5).

A read is recorded like any other answer, and the trace keeps the messages it returned with
the deliveries (:mod:`conformance.trace`), so the whole-trace checkers judge both together:
one message per offset for everyone (CNS-1, OFF-3), and ``first`` and ``head`` that never go
back (OFF-4).
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.scenarios import verdicts
from conformance.scenarios.model import HISTORY_STARTS, ClientHandle
from conformance.scenarios.stage import CLIENTS, LABELS, NODES, Stage

__all__ = ["HistoryRules"]


def _claims_history(machine: Stage) -> bool:
    return "history" in machine.features


class HistoryRules(Stage):
    """Reads of a channel's history, by a client and by the backend."""

    @precondition(_claims_history)
    @rule(handle=CLIENTS, label=LABELS, start=st.sampled_from(HISTORY_STARTS))
    def read_history(self, handle: ClientHandle, label: str, start: str) -> None:
        """``replay:history`` of one message: from the beginning, from the last offset the
        client has, or from offset 1."""
        if not handle.usable or handle.session.revoked:
            return
        self.step(lambda: self.history_judged(handle, label, start))

    async def history_judged(self, handle: ClientHandle, label: str, start: str) -> None:
        """Read ``label``'s history from a kind of ``start`` and judge the reply."""
        channel = self.channel(label)
        stream = handle.client.stream(channel)
        from_: int | str = "beginning"
        epoch = stream.subscriptions[-1].epoch if stream.subscriptions else None
        if start == "last" and stream.offsets and isinstance(epoch, str):
            from_ = stream.offsets[-1]
        elif start == "first" and stream.offsets and isinstance(epoch, str):
            from_ = 1
        sent = epoch if isinstance(from_, int) and isinstance(epoch, str) else None
        reply = await handle.client.history(channel, from_, epoch=sent, limit=1)
        failure = verdicts.grant_verdict(handle.session, channel, "history", reply)
        failure = failure or verdicts.history_outcome(
            handle.session,
            channel,
            from_,
            reply,
            trimmed=label in self.trimmed,
            stale=self.stale[label],
            sent_epoch=sent,
        )
        self.judged(failure, channel, handle.label)

    @precondition(_claims_history)
    @rule(label=LABELS, node=NODES)
    def backend_history(self, label: str, node: int) -> None:
        """``GET …/messages`` from the beginning, as answered (a trimmed channel may answer
        ``history_truncated`` too; the checkers judge what an ok answer holds)."""
        channel = self.channel(label)
        self.step(lambda: self.target.backend_at(node).history_raw(channel, "beginning"))
