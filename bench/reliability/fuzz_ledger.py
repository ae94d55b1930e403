"""Every acknowledged publish, per channel, to check what the server stored against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.reliability.fuzz_http_judge import is_channel_name


@dataclass
class HeadLedger:
    """Every acknowledged publish, per channel; a channel's head must count exactly these.

    A request answered with an error must not move a head or leave a message (EVT-6, ROB-4,
    BAT-3); a successful one stores exactly one message per non-duplicate result."""

    stored: dict[str, dict[int, str]] = field(default_factory=dict)
    duplicates: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)  # no answer: anything may be stored
    problems: list[str] = field(default_factory=list)

    def success(self, channel: str, offset: int, message_id: str, duplicate: bool) -> None:
        if duplicate:
            self.duplicates.setdefault(channel, []).append((offset, message_id))
            return
        offsets = self.stored.setdefault(channel, {})
        if offset in offsets:
            self.problems.append(f"{channel!r}: offset {offset} acknowledged twice "
                                 f"(ids {offsets[offset]!r} and {message_id!r})")  # fmt: skip
        offsets[offset] = message_id

    def failure(self, channel: str) -> None:
        if is_channel_name(channel):  # a request to no channel can store nothing to read back
            self.refused.add(channel)

    def channels(self) -> list[str]:
        """The channels to read back: every one written or refused, and answered."""
        return sorted((set(self.stored) | set(self.duplicates) | self.refused) - self.unknown)

    def check(self, channel: str, head: int, messages: list[dict[str, Any]]) -> list[str]:
        """What is wrong with ``channel`` as read back (its head and retained messages)."""
        offsets = self.stored.get(channel, {})
        problems = []
        if head != len(offsets):
            problems.append(f"{channel!r}: head {head} but {len(offsets)} publishes stored")
        if sorted(offsets) != list(range(1, len(offsets) + 1)):
            problems.append(f"{channel!r}: acknowledged offsets have a gap")
        for message in messages:
            wanted = offsets.get(message["offset"])
            if wanted != message["id"]:
                problems.append(f"{channel!r}: offset {message['offset']} holds id "
                                f"{message['id']!r}, acknowledged {wanted!r}")  # fmt: skip
        for offset, message_id in self.duplicates.get(channel, []):
            if offsets.get(offset) != message_id:
                problems.append(f"{channel!r}: a duplicate named offset {offset}, id "
                                f"{message_id!r}, which no publish stored")  # fmt: skip
        return problems
