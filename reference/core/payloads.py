"""Validate incoming payloads against ``spec/schemas`` and turn them into typed requests.

Every request the server acts on passes through here first (EVT-3, API-1), so the shell only
ever sees well-formed, typed values; anything else becomes ``BadRequest`` or
``PayloadTooLarge`` with a short message that never echoes the offending value back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import orjson
from referencing import Registry, Resource

from reference.core import ijson, jcs
from reference.core.errors import BadRequest, PayloadTooLarge
from reference.core.model import CHANNEL_PATTERN, AutoSubscription, Grant, Payload
from reference.spec_files import spec_dir

_MAX_DETAIL = 60
# One encoder for every payload: json.dumps with options builds a new one per call, which
# costs about as much as encoding a small payload (a batch publish encodes thousands).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# orjson writes what _COMPACT writes, byte for byte, for every value but two kinds: floats
# (``0.00001`` against ``1e-05``) and NaN or infinity, which it writes as ``null`` where
# _COMPACT refuses them. Text with neither a float nor a ``null`` holds neither.


def _compact_text(value: object) -> str:
    """``_COMPACT.encode(value)``, through orjson (several times faster) where that is the
    same text; ``_COMPACT`` raises for what is not JSON (NaN, a lone surrogate, ...)."""
    try:
        text = orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:  # integers beyond 64 bits, deep nesting, surrogates, ...
        return _COMPACT.encode(value)
    return _COMPACT.encode(value) if "null" in text or jcs.may_hold_float(text) else text


@cache
def _registry() -> Registry[Any]:
    resources = []
    for path in sorted((spec_dir() / "schemas").glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


# An unescaped `$` that ends the pattern or one of its top-level alternatives.
_END_ANCHOR = re.compile(r"(?<!\\)\$(?=\||\Z)")


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMAScript regexes, where `$` is the end of the string; Python's
    # `$` also matches before a trailing newline, which would let "room\n" pass CHN-1 (and the
    # grant "room:*\n", whose `$` ends the first alternative). common.json rejects line
    # terminators with a `not` as well; this gives `$` ECMAScript's meaning in every other
    # pattern too (session_id's).
    return re.compile(_END_ANCHOR.sub(r"\\Z", pattern))


def _pattern(
    validator: jsonschema.protocols.Validator, pattern: str, instance: object, schema: object
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = _registry().contents(f"urn:socketio-replay:replay-1:{name}")
    base = jsonschema.validators.validator_for(schema)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern})  # type: ignore[no-untyped-call]
    return cls(schema, registry=_registry())  # type: ignore[no-any-return]


def _integer(value: Any) -> Any:
    """An integral JSON number as an int (TRN-5): the schemas already rejected 1.5."""
    return int(value) if isinstance(value, float) else value


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def validate(schema: str, instance: object) -> None:
    """Raise ``BadRequest`` unless ``instance`` is valid against ``spec/schemas/<schema>.json``."""
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(instance))  # type: ignore[arg-type]
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path) or "payload"
    if error.validator == "additionalProperties":
        extra = set(error.instance) - set(error.schema.get("properties", {}))
        problem = f"unknown member(s) {_short(sorted(extra))}"
    elif error.validator in ("oneOf", "anyOf"):
        problem = "is not one of the allowed forms"
    elif error.validator == "required":
        problem = error.message.split(" is a required")[0] + " is required"
    else:
        problem = f"fails {error.validator} {_short(error.validator_value)}"
    raise BadRequest(f"{where}: {problem}", schema=schema)


def check_channel(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise ``BadRequest`` (CHN-1)."""
    if not CHANNEL_PATTERN.fullmatch(name):
        raise BadRequest(f"invalid channel name {_short(name)}")
    return name


def encode_payload(value: object, max_bytes: int) -> Payload:
    """Encode published ``data`` compactly, measure it and enforce ``max_payload_bytes``
    (LIM-3, LIM-4).

    Whether ``data`` is I-JSON is the request's question (``parse_publish``); a store's own
    tests encode integers beyond 2^53 here too (measured as their decimal digits).
    """
    try:
        encoded = _compact_text(value)
        size = jcs.canonical_size(value, encoded)  # UnicodeEncodeError: a lone surrogate
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadRequest(f"data is not encodable as JSON: {type(exc).__name__}") from None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"data is {size} bytes; the limit is {max_bytes}", size=size, limit=max_bytes
        )
    return Payload(value, encoded, size)


def single_argument(args: Sequence[object]) -> Mapping[str, Any]:
    """The one object argument every replay event carries (TRN-3)."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise BadRequest("expected exactly one JSON object argument")
    require_i_json(args[0])
    return args[0]


def require_i_json(request: object) -> None:
    """EVT-12, API-13 (and MSG-6 to MSG-8 for a publish's data): a request that names a member
    twice, holds an unpaired surrogate or an unsafe number anywhere in it is refused whole; no
    member's value is guessed at."""
    problem = ijson.problem(request)
    if problem is not None:
        raise BadRequest(f"the request is not I-JSON: {problem}")


# --- typed requests -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    channel: str
    start: int | str | None
    epoch: str | None
    allow_truncation: bool


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """``replay:unsubscribe``: only a channel."""

    channel: str


@dataclass(frozen=True, slots=True)
class AckRequest:
    channel: str
    offset: int
    epoch: str  # required: an offset travels with its epoch (EPO-6, ACK-8)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    channel: str
    payload: Payload
    id: str | None


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    channel: str
    start: int | str | None
    epoch: str | None  # present with an integer start (EPO-6, HIS-9)
    limit: int | None


@dataclass(frozen=True, slots=True)
class SessionRequest:
    session_id: str | None
    client_id: str
    grants: tuple[Grant, ...]
    subscribe: tuple[AutoSubscription, ...]
    ttl_s: int | None


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class RetentionUpdate:
    """A retention PUT: a member left out keeps its value (RET-1), ``None`` removes a limit."""

    max_messages: int | None = _UNSET
    max_age_s: int | None = _UNSET

    def sets_max_messages(self) -> bool:
        return self.max_messages is not _UNSET

    def sets_max_age(self) -> bool:
        return self.max_age_s is not _UNSET


def parse_subscribe(args: Sequence[object]) -> SubscribeRequest:
    body = single_argument(args)
    validate("subscribe-request", body)
    return SubscribeRequest(
        channel=body["channel"],
        start=_integer(body.get("from")),
        epoch=body.get("epoch"),
        allow_truncation=body.get("allow_truncation", False),
    )


def parse_unsubscribe(args: Sequence[object]) -> ChannelRequest:
    body = single_argument(args)
    validate("unsubscribe-request", body)
    return ChannelRequest(body["channel"])


def parse_ack(args: Sequence[object]) -> AckRequest:
    body = single_argument(args)
    validate("ack-request", body)
    return AckRequest(body["channel"], _integer(body["offset"]), body["epoch"])


def parse_publish(args: Sequence[object], max_payload_bytes: int) -> PublishRequest:
    body = single_argument(args)  # I-JSON, data and id included (MSG-6 to MSG-8, EVT-12)
    validate("publish-request", body)
    payload = encode_payload(body["data"], max_payload_bytes)
    return PublishRequest(body["channel"], payload, body.get("id"))


def parse_history(args: Sequence[object]) -> HistoryRequest:
    body = single_argument(args)
    validate("history-request", body)
    return HistoryRequest(
        body["channel"], _integer(body.get("from")), body.get("epoch"), _integer(body.get("limit"))
    )


def parse_http_publish(channel: str, body: object, max_payload_bytes: int) -> PublishRequest:
    require_i_json(body)  # MSG-6 to MSG-8, API-13: data, id and the body itself
    validate("http-publish-request", body)
    assert isinstance(body, dict)
    return PublishRequest(
        check_channel(channel), encode_payload(body["data"], max_payload_bytes), body.get("id")
    )


def parse_http_history(channel: str, query: Mapping[str, str]) -> HistoryRequest:
    """``?from=&epoch=&limit=`` of the history route (HIS-2, HIS-9, HIS-13). ``query`` may be a
    multi-mapping (aiohttp's): its ``items()`` then list a repeated name once per value."""
    names = [name for name, _ in query.items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # HIS-13: which one would count?
        raise BadRequest(f"query parameter(s) given more than once: {_short(repeated)}")
    unknown = set(query) - {"from", "epoch", "limit"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {_short(sorted(unknown))}")
    start: int | str | None = None
    raw_from = query.get("from")
    if raw_from is not None:
        start = raw_from if raw_from == "beginning" else _query_int("from", raw_from, 1)
    epoch = query.get("epoch")
    if epoch is not None and not 1 <= len(epoch) <= 64:  # EPO-1
        raise BadRequest("epoch must be 1 to 64 characters")
    if isinstance(start, int) and epoch is None:
        raise BadRequest("an integer from needs the epoch it belongs to")  # EPO-6, HIS-9
    raw_limit = query.get("limit")
    limit = None if raw_limit is None else _query_int("limit", raw_limit, 1)
    return HistoryRequest(check_channel(channel), start, epoch, limit)


def _query_int(name: str, raw: str, minimum: int) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise BadRequest(f"{name} must be a decimal integer")
    value = int(raw)
    if value < minimum or value > 2**53 - 1:
        raise BadRequest(f"{name} is out of range")
    return value


def parse_session(body: object, max_ttl_s: int) -> SessionRequest:
    require_i_json(body)
    validate("http-session-request", body)
    assert isinstance(body, dict)
    entries = tuple(
        AutoSubscription(
            e["channel"],
            _integer(e.get("from", "latest")),
            e.get("allow_truncation", False),
            e.get("epoch"),  # present with an integer from (AUT-7): the schema requires it
        )
        for e in body.get("subscribe", [])
    )
    channels = [e.channel for e in entries]
    if len(set(channels)) != len(channels):  # SES-7
        raise BadRequest("subscribe names a channel more than once")
    ttl_s = _integer(body.get("ttl_s"))
    if ttl_s is not None and ttl_s > max_ttl_s:  # SES-6
        raise BadRequest(f"ttl_s is above the maximum of {max_ttl_s}")
    grants = tuple(Grant.from_wire(g) for g in body["grants"])
    return SessionRequest(body.get("session_id"), body["client_id"], grants, entries, ttl_s)


def parse_retention(body: object) -> RetentionUpdate:
    require_i_json(body)
    validate("http-retention-request", body)
    assert isinstance(body, dict)
    return RetentionUpdate(
        max_messages=_integer(body.get("max_messages", _UNSET)),
        max_age_s=_integer(body.get("max_age_s", _UNSET)),
    )
