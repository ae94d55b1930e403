"""One error root for the whole server; each class carries its wire code (spec §4.1)."""

from __future__ import annotations

from typing import Any, ClassVar


class ReplayError(Exception):
    """A failure the protocol names: reported to the peer as ``{"code", "message"}``."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        """The error object of ``common.json#/$defs/error``."""
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            wire["details"] = self.details
        return wire


class BadRequest(ReplayError):
    code = "bad_request"
    http_status = 400


class Unauthorized(ReplayError):
    code = "unauthorized"
    http_status = 401


class Forbidden(ReplayError):
    code = "forbidden"
    http_status = 403


class NotFound(ReplayError):
    code = "not_found"
    http_status = 404


class AlreadySubscribed(ReplayError):
    code = "already_subscribed"
    http_status = 409


class NotSubscribed(ReplayError):
    code = "not_subscribed"
    http_status = 409


class EpochMismatch(ReplayError):
    code = "epoch_mismatch"
    http_status = 409


class HistoryTruncated(ReplayError):
    code = "history_truncated"
    http_status = 410


class OffsetOutOfRange(ReplayError):
    code = "offset_out_of_range"
    http_status = 416


class PayloadTooLarge(ReplayError):
    code = "payload_too_large"
    http_status = 413


class RateLimited(ReplayError):
    code = "rate_limited"
    http_status = 429


class Unavailable(ReplayError):
    code = "unavailable"
    http_status = 503


class InternalError(ReplayError):
    code = "internal"
    http_status = 500


ERROR_CLASSES: tuple[type[ReplayError], ...] = (
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadySubscribed,
    NotSubscribed,
    EpochMismatch,
    HistoryTruncated,
    OffsetOutOfRange,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    InternalError,
)
