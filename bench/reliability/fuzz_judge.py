"""What the spec allows as the answer to one generated client event, and whether an answer
is it; and the I-JSON and size readings that the HTTP judge (``fuzz_http_judge``) shares.

Pure: no sockets. :func:`expect_event` reads an event as §6.6's check order does and gives
the outcomes a server may answer with; :func:`judge_event` compares an ack with them and with
the reply schemas.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import rfc8785

from conformance.schemas import validate, validate_reply

SAFE_INTEGER = 2**53 - 1
DEEPEST_DATA = 64  # ROB-7: deeper data may be refused with bad_request
OK = "ok"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Error codes a schema-valid event may get from a healthy server with `*` grants (§6.6),
# besides bad_request for data nested deeper than ROB-7's bound.
EVENT_STATE_CODES: dict[str, frozenset[str]] = {
    "replay:subscribe": frozenset({"already_subscribed", "rate_limited", "epoch_mismatch",
                                   "offset_out_of_range", "history_truncated"}),
    "replay:unsubscribe": frozenset({"not_subscribed"}),
    "replay:ack": frozenset({"epoch_mismatch", "offset_out_of_range"}),
    "replay:publish": frozenset(),
    "replay:history": frozenset({"epoch_mismatch", "offset_out_of_range", "history_truncated"}),
}  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """The limits a target advertises in ``GET /replay/v1/info``, and its body limit."""

    max_payload_bytes: int = 65536
    max_batch_publish: int = 1000
    max_batch_publish_bytes: int = 8388608

    @property
    def body_limit(self) -> int:
        """The reference's body limit for single requests (``reference/server/app.py``)."""
        return 6 * self.max_payload_bytes + 64 * 1024


@dataclass(frozen=True)
class Expectation:
    """The outcomes allowed: ``ok`` (a success) and error codes; ``why`` says which rule."""

    outcomes: frozenset[str]
    why: str
    valid: bool = True  # the request is well formed: it passes every check of the request alone


def refuse(why: str) -> Expectation:
    return Expectation(frozenset({"bad_request"}), why, valid=False)


# -- reading a value as I-JSON -------------------------------------------------------------


@contextlib.contextmanager
def deep_recursion(limit: int = 20_000) -> Iterator[None]:
    """Let the recursive decoder, encoder and validator read the deep nesting we send."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _has_lone_surrogate(text: str) -> bool:
    """MSG-6 as the JSON text reads: a high surrogate directly followed by a low one is
    written as a pair of escapes, which is one character."""
    if _SURROGATE.search(text) is None:
        return False
    at = 0
    while at < len(text):
        code = ord(text[at])
        if (
            0xD800 <= code <= 0xDBFF
            and at + 1 < len(text)
            and 0xDC00 <= ord(text[at + 1]) <= 0xDFFF
        ):
            at += 2
            continue
        if 0xD800 <= code <= 0xDFFF:
            return True
        at += 1
    return False


def ijson_problem(value: Any) -> str | None:
    """Why ``value`` is not I-JSON (MSG-6, MSG-8, no NaN or infinity), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and _has_lone_surrogate(item):
            return "a lone surrogate"
        if isinstance(item, float) and not math.isfinite(item):
            return f"the number {item}"
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > SAFE_INTEGER:
            return f"the integer {item} beyond 2^53-1"
        if isinstance(item, dict):
            for key, member in item.items():
                if _has_lone_surrogate(key):
                    return "a lone surrogate in a member name"
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
    return None


def depth(value: Any) -> int:
    """Nesting depth as ROB-7 counts it (a scalar is 1)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def data_size(data: Any) -> int:
    """LIM-3's measure of an I-JSON ``data``."""
    with deep_recursion():
        return len(rfc8785.dumps(data))


def with_deep_data(base: Expectation, data: Any) -> Expectation:
    if depth(data) > DEEPEST_DATA:
        deeper = f", data deeper than {DEEPEST_DATA}"
        return Expectation(base.outcomes | {"bad_request"}, base.why + deeper)
    return base


# -- client events ------------------------------------------------------------------------


def expect_event(event: str, args: tuple[Any, ...], limits: Limits) -> Expectation:
    """The allowed answers to client event ``event`` sent with ``args`` (§6.6)."""
    if len(args) != 1 or not isinstance(args[0], dict):
        return refuse("TRN-3: not exactly one object argument")
    payload = args[0]
    if (problem := ijson_problem(payload)) is not None:
        return refuse(f"EVT-12: {problem}")
    with deep_recursion():
        problems = validate(event.removeprefix("replay:") + "-request", payload)
    if problems:
        return refuse(f"EVT-3: {problems[0][:200]}")
    if event == "replay:publish":
        if data_size(payload["data"]) > limits.max_payload_bytes:
            return Expectation(frozenset({"payload_too_large"}), "LIM-4")
        return with_deep_data(Expectation(frozenset({OK}), "valid"), payload["data"])
    return Expectation(EVENT_STATE_CODES[event] | {OK}, "valid")


def judge_event(event: str, expectation: Expectation, reply: Any) -> tuple[str, str | None]:
    """The outcome an ack shows (``ok`` or its code), and what is wrong with it, if anything."""
    problems = validate_reply(event, reply)
    if problems:
        return "invalid", f"reply breaks its schema: {problems[0][:200]}"
    outcome = OK if reply["ok"] else str(reply["error"]["code"])
    if outcome not in expectation.outcomes:
        allowed = sorted(expectation.outcomes)
        return outcome, f"answered {outcome}, allowed {allowed} ({expectation.why})"
    return outcome, None
