"""Cutting what a subscription reads into ``replay:messages`` events (DLV-1, DLV-2)."""

from __future__ import annotations

from collections.abc import Sequence

from reference.core.model import Message

DEFAULT_MAX_BATCH_BYTES = 1024 * 1024


def cut_batch(
    messages: Sequence[Message], *, max_count: int, max_bytes: int = DEFAULT_MAX_BATCH_BYTES
) -> tuple[Message, ...]:
    """The longest prefix of ``messages`` within ``max_count`` messages and ``max_bytes`` of data.

    Always at least one message when any is given, so a single message larger than
    ``max_bytes`` still moves; ``max_bytes`` only keeps events of many large messages from
    growing into megabytes each.
    """
    total = 0
    for index, message in enumerate(messages[:max_count]):
        total += message.size
        if total > max_bytes and index > 0:
            return tuple(messages[:index])
    return tuple(messages[:max_count])


def messages_event(channel: str, epoch: str, batch: Sequence[Message]) -> dict[str, object]:
    """The ``replay:messages`` payload for one batch of one subscription."""
    return {"channel": channel, "epoch": epoch, "messages": [m.wire for m in batch]}
