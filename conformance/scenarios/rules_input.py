"""The scenario rule that mixes malformed and boundary events into normal traffic.

Each goes out on a socket that is subscribed and receiving, and must get its typed error with
no effect (EVT-3, EVT-6, EVT-12, LIM-4), or for a payload of exactly
``limits.max_payload_bytes``, be stored (LIM-5). Afterwards the socket is still connected
(ROB-2), and the whole-trace checkers see that its subscriptions lost nothing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from conformance.errors import ConformanceFailure, ConnectionLost
from conformance.protocol import grants_allow
from conformance.scenarios.model import MALFORMED, ClientHandle
from conformance.scenarios.stage import CLIENTS, LABELS, Stage

__all__ = ["InputRules"]


def _code(reply: object) -> object:
    if isinstance(reply, dict) and reply.get("ok") is False:
        return (reply.get("error") or {}).get("code")
    return "ok" if isinstance(reply, dict) and reply.get("ok") is True else None


class InputRules(Stage):
    """Events a careless or hostile client sends."""

    @rule(handle=CLIENTS, label=LABELS, kind=st.sampled_from(MALFORMED))
    def malformed(self, handle: ClientHandle, label: str, kind: str) -> None:
        if not handle.usable or handle.session.revoked or handle.session.may_have_lapsed():
            return
        channel = self.channel(label)
        made = self.malformed_event(kind, channel, handle)
        if made is None:
            return
        event, payload, expected, clause = made

        async def go() -> None:
            try:
                reply = await handle.client.emit_raw(event, payload)
            except ConnectionLost as lost:
                failure = ConformanceFailure(
                    "ROB-2", f"the socket still connected after {kind} {event}", str(lost)
                )
                self.judged(failure, channel, handle.label)
                return
            got = _code(reply)
            if expected is None and got not in (None, "ok"):
                return  # any typed error
            if expected is None or got not in expected:
                failure = ConformanceFailure(
                    clause,
                    f"{' or '.join(sorted(expected or {'an error'}))} for {kind} {event}",
                    str(reply)[:200],
                )
                self.judged(failure, channel, handle.label)

        self.step(go)

    def malformed_event(
        self, kind: str, channel: str, handle: ClientHandle
    ) -> tuple[str, dict[str, Any], set[str] | None, str] | None:
        """(event, payload, the codes that may answer it (None: any error), the clause)."""
        limit = self.target.limits.get("max_payload_bytes")
        if kind == "wrong-type":
            return "replay:subscribe", {"channel": channel, "from": 1.5}, {"bad_request"}, "EVT-3"
        if kind == "unknown-member":
            return "replay:unsubscribe", {"channel": channel, "x": 1}, {"bad_request"}, "EVT-3"
        if kind == "lone-surrogate":
            payload = {"channel": channel, "from": "beginning", "x": "\ud800"}
            return "replay:subscribe", payload, {"bad_request"}, "EVT-12"
        if kind == "unknown-name":
            # EVT-4 only says SHOULD bad_request: any error will do, but an answer (EVT-1).
            return "replay:bogus", {"channel": channel}, None, "EVT-1"
        if not isinstance(limit, int) or "client-publish" not in self.features:
            return None
        if not grants_allow(handle.session.grants, channel, "publish"):
            return None  # forbidden and payload_too_large race for first: nothing to learn
        # A JSON string measures its characters plus two quotes (LIM-3).
        tag = f"{next(self.counter)}:"
        size = limit - 2 if kind == "payload-at-limit" else limit - 1
        data = tag + "x" * (size - len(tag))
        if kind == "payload-at-limit":
            return "replay:publish", {"channel": channel, "data": data}, {"ok"}, "LIM-5"
        return "replay:publish", {"channel": channel, "data": data}, {"payload_too_large"}, "LIM-4"
