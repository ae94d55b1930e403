"""The one error root of the library: every error it raises or reports carries a ``code``."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["RETRYABLE_CODES", "ReplayClientError", "error_from_reply"]

# Codes that report a passing condition of the server or the network: trying again later may
# succeed (spec §4.1's `unavailable`, `internal`, `rate_limited`; the library's own
# `timeout`, `disconnected` and `connect_failed`).
RETRYABLE_CODES: Final = frozenset(
    {"unavailable", "internal", "rate_limited", "timeout", "disconnected", "connect_failed"}
)


class ReplayClientError(Exception):
    """An error reply of the server (its code, e.g. ``forbidden``) or one of the library's
    own (``gap``, ``handler_failed``, ``timeout``, ``disconnected``, ``closed``,
    ``connect_failed``, ``token_failed``, ``bad_reply``)."""

    def __init__(self, code: str, message: str = "", *, retryable: bool | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retryable = code in RETRYABLE_CODES if retryable is None else retryable


def error_from_reply(reply: Any) -> ReplayClientError:
    """The error an error reply (``{"ok": false, "error": {code, message}}``) carries; a reply
    of any other shape is a ``bad_reply``."""
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return ReplayClientError(error["code"], str(error.get("message", "")))
    return ReplayClientError("bad_reply", f"not a reply: {reply!r}"[:200])
