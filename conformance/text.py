"""How the suite writes payloads and offsets into one-line messages (failures, logs, reports)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

__all__ = ["ranges", "summarize"]

_SUMMARY_CHARS: Final = 200


def ranges(offsets: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1..3, 5, 7..8"`` (in the given order, runs of +1 joined)."""
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs) or "none"


def _offsets_of(messages: object) -> list[int] | None:
    if not isinstance(messages, list):
        return None
    found = [m.get("offset") for m in messages if isinstance(m, dict)]
    return [o for o in found if isinstance(o, int)]


def summarize(payload: object, limit: int = _SUMMARY_CHARS) -> str:
    """A short, single-line rendering of a payload; message lists become offset ranges."""
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        offsets = _offsets_of(payload["messages"]) or []
        rest = {k: v for k, v in payload.items() if k != "messages"}
        shown = f"messages=[{ranges(offsets)}] ({len(payload['messages'])})"
        return (f"{summarize(rest, limit)} " if rest else "") + shown
    try:
        text = json.dumps(payload, separators=(",", ":"), sort_keys=False, default=repr)
    except (TypeError, ValueError):
        text = repr(payload)
    return text if len(text) <= limit else text[: limit - 3] + "..."
