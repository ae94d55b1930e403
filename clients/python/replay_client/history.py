"""``replay:history`` as an async iterator over pages (HIS-4, HIS-8)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from replay_client.errors import ReplayClientError, error_from_reply
from replay_client.records import HistoryPage, Message, Position

__all__ = ["pages"]

Request = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def pages(
    request: Request,
    channel: str,
    from_: Literal["beginning"] | Position = "beginning",
    limit: int | None = None,
) -> AsyncIterator[HistoryPage]:
    """Pages from ``from_`` (``"beginning"``, or after a position) until ``head``: each next
    page starts after the last message with the reply's epoch, so paging is lossless."""
    payload: dict[str, Any] = {"channel": channel}
    if isinstance(from_, Position):
        payload |= {"from": from_.offset + 1, "epoch": from_.epoch}
    else:
        payload["from"] = from_
    if limit is not None:
        payload["limit"] = limit
    while True:
        reply = await request("replay:history", payload)
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            raise error_from_reply(reply)
        try:
            page = HistoryPage(
                channel,
                str(reply["epoch"]),
                reply["first"],
                int(reply["head"]),
                [Message.from_wire(m) for m in reply["messages"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayClientError("bad_reply", f"history reply: {exc!r}") from exc
        yield page
        if not page.messages or page.messages[-1].offset >= page.head:
            return
        payload |= {"from": page.messages[-1].offset + 1, "epoch": page.epoch}
