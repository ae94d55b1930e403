"""What the suite knows of replay/1 itself: routes, error codes, features, actions, grants,
and the clause each client event's success rests on.

Plain constants and pure functions, one place for each fact the spec states, so that the
backend client, the cases and the checkers never spell one of them twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

import rfc8785

from conformance.errors import SuiteError

__all__ = [
    "ACTIONS",
    "API",
    "DEFAULT_TTL_S",
    "ERROR_STATUS",
    "FEATURES",
    "INFO_PATH",
    "MAX_TTL_S",
    "PROTOCOL",
    "ROUTE_BATCHES",
    "ROUTE_INFO",
    "ROUTE_MESSAGES",
    "ROUTE_RETENTION",
    "ROUTE_SESSION",
    "ROUTE_SESSIONS",
    "SUCCESS_SCHEMAS",
    "Reply",
    "batches_path",
    "channel_of",
    "channel_segment",
    "grant",
    "grants_allow",
    "messages_path",
    "payload_size",
    "retention_path",
    "session_path",
    "step_clause",
]

PROTOCOL: Final = "replay/1"
API: Final = "/replay/v1"  # the route prefix of the backend HTTP API (spec §4)
INFO_PATH: Final = f"{API}/info"

# The routes of spec §4, as patterns over a percent-encoded path (no query string).
ROUTE_INFO: Final = re.compile(rf"^{API}/info$")
ROUTE_SESSIONS: Final = re.compile(rf"^{API}/sessions$")
ROUTE_SESSION: Final = re.compile(rf"^{API}/sessions/(?P<session>[^/?]+)$")
ROUTE_MESSAGES: Final = re.compile(rf"^{API}/channels/(?P<channel>[^/?]+)/messages$")
ROUTE_RETENTION: Final = re.compile(rf"^{API}/channels/(?P<channel>[^/?]+)/retention$")
ROUTE_BATCHES: Final = re.compile(rf"^{API}/channels/(?P<channel>[^/?]+)/batches$")

# (method, route) -> {status: (schema of the body, clause that defines it)}
SUCCESS_SCHEMAS: Final[list[tuple[str, re.Pattern[str], dict[int, tuple[str, str]]]]] = [
    ("GET", ROUTE_INFO, {200: ("http-info-response", "INF-1")}),
    (
        "POST",
        ROUTE_SESSIONS,
        {201: ("http-session-response", "SES-1"), 200: ("http-session-response", "SES-2")},
    ),
    (
        "POST",
        ROUTE_MESSAGES,
        {201: ("http-publish-response", "PUB-1"), 200: ("http-publish-response", "IDM-7")},
    ),
    ("GET", ROUTE_MESSAGES, {200: ("http-history-response", "HIS-1")}),
    ("PUT", ROUTE_RETENTION, {200: ("http-retention-response", "RET-1")}),
    (
        "POST",
        ROUTE_BATCHES,
        {
            201: ("http-batch-publish-response", "BAT-1"),
            200: ("http-batch-publish-response", "BAT-1"),
        },
    ),
]

# The HTTP status of each error code (spec §4.1 table).
ERROR_STATUS: Final[Mapping[str, int]] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "already_subscribed": 409,
    "not_subscribed": 409,
    "epoch_mismatch": 409,
    "history_truncated": 410,
    "offset_out_of_range": 416,
    "payload_too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
}

# The features of spec §11 ("sessions" is the core every target has).
FEATURES: Final = frozenset(
    {
        "sessions",
        "client-publish",
        "idempotency",
        "history",
        "cursors",
        "retention",
        "cluster",
        "batch-publish",
    }
)
# What a grant may allow (spec §9.1).
ACTIONS: Final = ("subscribe", "publish", "history")

# A session's lifetime: an omitted ttl_s (SES-5), and the longest one a target that does not
# advertise limits.max_ttl_s must accept (SES-6, the bound in http-session-request.json).
DEFAULT_TTL_S: Final = 3600
MAX_TTL_S: Final = 30 * 24 * 3600


# The clause a client event's success rests on, when a case only relies on it (a step) rather
# than judging it: a wrongful refusal breaks that clause, not the ones the case is about.
_STEP_CLAUSES: Final[Mapping[str, str]] = {
    "replay:unsubscribe": "UNS-1",
    "replay:ack": "ACK-4",
    "replay:publish": "PUB-6",
    "replay:history": "HIS-4",
}


def step_clause(event: str, payload: object) -> str | None:
    """The clause a successful ``event`` with ``payload`` rests on (None: no such event).

    A subscribe's is the step of the resolution (§6.1) its ``from`` takes: SUB-7 for
    ``beginning``, SUB-8 for ``latest``, SUB-9 when omitted, SUB-11 for an integer with
    ``allow_truncation``, and SUB-1 (no check fails, so it starts there) for an integer.
    """
    fields = payload if isinstance(payload, Mapping) else {}
    if event != "replay:subscribe":
        return _STEP_CLAUSES.get(event)
    start = fields.get("from")
    if start is None:
        return "SUB-9"
    if start in ("beginning", "latest"):
        return "SUB-7" if start == "beginning" else "SUB-8"
    return "SUB-11" if fields.get("allow_truncation") is True else "SUB-1"


class Reply(dict[str, Any]):
    """A client event's reply, knowing the event and payload it answers (``request``), so that
    a step's failure can name the clause its success rests on (:func:`step_clause`)."""

    request: tuple[str, object] | None = None
    step: str | None = None  # the client's own finding of what a refusal breaks, if it knows

    @classmethod
    def to(cls, event: str, payload: object, reply: Mapping[str, Any]) -> Reply:
        """``reply`` as the answer to ``event`` with ``payload``."""
        answered = cls(reply)
        answered.request = (event, payload)
        return answered

    @property
    def step_clause(self) -> str | None:
        """The clause the success of the event answered rests on: ``step`` when the client
        knows better, else :func:`step_clause`."""
        if self.step is not None or self.request is None:
            return self.step
        return step_clause(*self.request)


def channel_segment(channel: str) -> str:
    """Percent-encode a channel as one path segment (``/`` -> ``%2F``; API-5)."""
    return quote(channel, safe=":@")


def messages_path(channel: str) -> str:
    """``/replay/v1/channels/<channel>/messages``."""
    return f"{API}/channels/{channel_segment(channel)}/messages"


def batches_path(channel: str) -> str:
    """``/replay/v1/channels/<channel>/batches`` (feature ``batch-publish``)."""
    return f"{API}/channels/{channel_segment(channel)}/batches"


def retention_path(channel: str) -> str:
    """``/replay/v1/channels/<channel>/retention``."""
    return f"{API}/channels/{channel_segment(channel)}/retention"


def session_path(session_id: str | None = None) -> str:
    """``/replay/v1/sessions`` or ``/replay/v1/sessions/<id>``."""
    return f"{API}/sessions" + ("" if session_id is None else f"/{quote(session_id, safe='')}")


def channel_of(payload: object) -> str | None:
    """The ``channel`` member of a payload or reply, when it is a string."""
    channel = payload.get("channel") if isinstance(payload, dict) else None
    return channel if isinstance(channel, str) else None


def payload_size(data: Any) -> int:
    """``data``'s size for ``max_payload_bytes`` (LIM-3): the UTF-8 length of its RFC 8785
    form, what ``Buffer.byteLength(JSON.stringify(data))`` gives for I-JSON data."""
    return len(rfc8785.dumps(data))


def grant(channels: str, *actions: str) -> dict[str, Any]:
    """A grant object: ``grant("room:1", "subscribe")``; no actions means all three."""
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise SuiteError(f"unknown grant actions {unknown}; known: {list(ACTIONS)}")
    return {"channels": channels, "actions": list(actions or ACTIONS)}


def grants_allow(grants: Iterable[Mapping[str, Any]], channel: str, action: str) -> bool:
    """Whether grants allow ``action`` on ``channel`` (spec §9.1: exact, ``prefix*``, ``*``)."""
    for entry in grants:
        pattern = entry.get("channels", "")
        if action not in entry.get("actions", ()):
            continue
        if pattern == channel or (pattern.endswith("*") and channel.startswith(pattern[:-1])):
            return True
    return False
