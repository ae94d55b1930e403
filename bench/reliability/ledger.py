"""The pure judging of the store-facing parts: what publishers were told, checked against what
a channel holds afterwards, and each subscriber's stream checked as it arrives.

Words as the campaign brief uses them: acknowledged = the server answered success (201, or 200
for a duplicate); lost = acknowledged but not at its offset afterwards; duplicated = one `id`
stored at two offsets; gap = an offset missing between `first` and `head`; phantom = a stored
`id` no publisher sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ack:
    offset: int
    epoch: str


@dataclass
class Ledger:
    """Every publish the publishers sent and every acknowledgement they got, by channel and id."""

    sent: dict[tuple[str, str], object] = field(default_factory=dict)
    acks: dict[tuple[str, str], Ack] = field(default_factory=dict)
    duplicate_answers: int = 0  # a retry answered "duplicate": its first try had been stored
    anomalies: list[str] = field(default_factory=list)

    def send(self, channel: str, message_id: str, data: object) -> None:
        self.sent[(channel, message_id)] = data

    def acknowledge(self, channel: str, message_id: str, body: dict[str, Any]) -> None:
        """Record a success answer; one id answered at two places is an anomaly (IDM-7)."""
        ack = Ack(int(body["offset"]), str(body["epoch"]))
        if body.get("duplicate"):
            self.duplicate_answers += 1
        earlier = self.acks.setdefault((channel, message_id), ack)
        if earlier != ack:
            self.anomalies.append(
                f"{channel} id {message_id} acknowledged at {earlier} and again at {ack}"
            )


@dataclass
class Verdict:
    """One channel read back after the attack."""

    channel: str
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    phantom: int = 0
    altered: int = 0
    epoch_changes: int = 0
    anomalies: list[str] = field(default_factory=list)


def judge_channel(ledger: Ledger, channel: str, history: dict[str, Any]) -> Verdict:
    """Judge ``history`` (a channel's whole retained history, nothing trimmed) by ``ledger``."""
    verdict = Verdict(channel)
    messages = history["messages"]
    verdict.stored = len(messages)
    epoch = str(history["epoch"])
    by_offset = {int(m["offset"]): m for m in messages}
    first = history["first"] if history["first"] is not None else history["head"] + 1
    missing = [o for o in range(first, history["head"] + 1) if o not in by_offset]
    verdict.gaps = len(missing)
    if missing:
        verdict.anomalies.append(f"{channel}: {len(missing)} offsets missing: {missing[:10]}")
    ids = Counter(str(m["id"]) for m in messages)
    twice = sorted(i for i, n in ids.items() if n > 1)
    verdict.duplicated = len(twice)
    if twice:
        where = {i: [m["offset"] for m in messages if m["id"] == i] for i in twice[:5]}
        verdict.anomalies.append(f"{channel}: {len(twice)} ids stored twice: {where}")
    for m in messages:
        key = (channel, str(m["id"]))
        if key not in ledger.sent:
            verdict.phantom += 1
            verdict.anomalies.append(f"{channel}: offset {m['offset']} holds unsent id {m['id']}")
        elif m["data"] != ledger.sent[key]:
            verdict.altered += 1
            verdict.anomalies.append(f"{channel}: offset {m['offset']} holds other data: {m}")
    epochs = {a.epoch for (c, _), a in ledger.acks.items() if c == channel} | {epoch}
    verdict.epoch_changes = len(epochs) - 1
    if verdict.epoch_changes:
        verdict.anomalies.append(f"{channel}: acknowledged in epochs {sorted(epochs)}")
    for (c, message_id), ack in ledger.acks.items():
        if c != channel:
            continue
        verdict.acknowledged += 1
        found = by_offset.get(ack.offset)
        if ack.epoch != epoch or found is None or str(found["id"]) != message_id:
            verdict.lost += 1
            verdict.anomalies.append(
                f"{channel}: acknowledged id {message_id} at {ack} is gone (found: {found})"
            )
    return verdict


@dataclass
class Stream:
    """One subscriber's view of one channel: each subscription must start where it asked and
    go on densely (ORD-1, ORD-2, ORD-3); across resubscriptions no offset may come twice."""

    name: str
    last: int = 0  # the highest offset received
    epoch: str | None = None
    received: int = 0
    duplicates: int = 0
    gaps: int = 0
    stale: int = 0  # offsets delivered with no live subscription (after an end, UNS-6)
    anomalies: list[str] = field(default_factory=list)
    _next: int | None = None

    def started(self, reply: dict[str, Any]) -> None:
        """A subscription began (an ok reply): its ``from`` must continue what was seen."""
        epoch, start = str(reply["epoch"]), int(reply["from"])
        if self.epoch is not None and epoch != self.epoch:
            self.anomalies.append(f"{self.name}: epoch changed from {self.epoch} to {epoch}")
        if self.last and start != self.last + 1:
            self.anomalies.append(f"{self.name}: resubscribed at {start}, seen up to {self.last}")
        self.epoch, self._next = epoch, start

    def ended(self) -> None:
        """The subscription ended (``replay:unsubscribed``): nothing more may arrive for it."""
        self._next = None

    def feed(self, epoch: str, offsets: list[int]) -> None:
        if self._next is None:
            self.stale += len(offsets)
            self.anomalies.append(f"{self.name}: offsets {offsets[:5]} with no live subscription")
            return
        if epoch != self.epoch:
            self.anomalies.append(f"{self.name}: delivery in epoch {epoch}, not {self.epoch}")
        for offset in offsets:
            if offset < self._next or offset <= self.last:
                self.duplicates += 1
                self.anomalies.append(f"{self.name}: offset {offset} again (expected {self._next})")
                continue
            if offset > self._next:
                self.gaps += offset - self._next
                self.anomalies.append(f"{self.name}: offsets {self._next}..{offset - 1} skipped")
            self.received += 1
            self.last, self._next = offset, offset + 1


VERDICT_COUNTS = ("acknowledged", "stored", "lost", "duplicated", "gaps", "phantom", "altered",
                  "epoch_changes")  # fmt: skip


def totals(verdicts: list[Verdict], publishes: int) -> tuple[dict[str, int], list[str]]:
    """The verdicts' counts summed over channels, and their anomalies; every publish sent
    must have been acknowledged in the end (publishers retry until it is)."""
    counts = {name: sum(int(getattr(v, name)) for v in verdicts) for name in VERDICT_COUNTS}
    anomalies = [a for v in verdicts for a in v.anomalies]
    if counts["acknowledged"] != publishes:
        anomalies.append(f"{publishes} publishes sent, {counts['acknowledged']} acknowledged")
    return counts, anomalies


def stream_totals(streams: list[Stream]) -> tuple[dict[str, int], list[str]]:
    """Subscribers' streams summed: messages delivered, gaps, duplicates; and their anomalies."""
    counts = {
        "delivered": sum(s.received for s in streams),
        "stream_gaps": sum(s.gaps for s in streams),
        "stream_duplicates": sum(s.duplicates for s in streams),
    }
    return counts, [a for s in streams for a in s.anomalies]
