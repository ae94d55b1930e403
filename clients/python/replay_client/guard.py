"""The client-side guard: within one epoch no offset twice, none out of order, gaps noticed.

Pure: it decides what of a batch may reach the application; the subscription acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replay_client.records import Message

__all__ = ["Guard", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What to do with one batch: deliver ``fresh``; ``duplicates`` were dropped; ``gap`` or
    ``foreign`` (another epoch) means the rest was dropped too."""

    fresh: list[Message] = field(default_factory=list)
    duplicates: int = 0
    gap: bool = False
    foreign: bool = False


class Guard:
    """The epoch and the next offset the application may see."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.next_offset: int | None = None

    def start(self, epoch: str, from_: int) -> None:
        """A subscription starts at ``from_`` in ``epoch``: forget any older epoch, and within
        the same one never step back (what was delivered stays delivered)."""
        if epoch != self.epoch or self.next_offset is None:
            self.epoch, self.next_offset = epoch, from_
        else:
            self.next_offset = max(self.next_offset, from_)

    def forget(self) -> None:
        """Drop all memory, for a policy that restarts from scratch."""
        self.epoch = self.next_offset = None

    def judge(self, epoch: str, messages: list[Message]) -> Verdict:
        """Sort a batch: offsets below the next one are duplicates, a jump past it is a gap;
        a batch with a gap is dropped whole, to be fetched again."""
        if epoch != self.epoch or self.next_offset is None:
            return Verdict(foreign=True)
        expected = self.next_offset
        fresh = [m for m in messages if m.offset >= expected]
        duplicates = len(messages) - len(fresh)
        if [m.offset for m in fresh] != list(range(expected, expected + len(fresh))):
            return Verdict(duplicates=duplicates, gap=True)
        return Verdict(fresh=fresh, duplicates=duplicates)

    def commit(self, offset: int) -> None:
        """The application finished with ``offset``."""
        self.next_offset = offset + 1
