"""Turn drawn payloads into what the part sends: client-event arguments and HTTP requests,
valid or mutated, from one seeded ``random.Random`` (pure: nothing is sent here)."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.reliability.fuzz_http_judge import PREFIX, HttpRequest
from bench.reliability.fuzz_mutations import mutate

VALID_SHARE = 0.4  # sent as drawn; the rest is mutated (and may still be valid)
TRACKED_SHARE = 0.7  # publishes sent to the few channels whose heads are read back
TRACKED_CHANNELS = 4
BAD_SEGMENTS = ("%ED%A0%80", "%FF", "%", "%zz", "a%20b", "%0A", "room%0A", "a" * 201, "%2E%2E")
JUNK_BODIES = (b"", b"{", b"null", b"[]", b'"data"', b"\xff\xfe", b"{'data': 1}", b"NaN",
               b'{"data": NaN}', b'{"data": Infinity}', b'{"data": 1}garbage', b"\x00")  # fmt: skip
EVENT_SOURCES = {"replay:subscribe": "subscribe", "replay:unsubscribe": "unsubscribe",
                 "replay:ack": "ack", "replay:publish": "publish",
                 "replay:history": "history"}  # fmt: skip
ROUTE_SOURCES = {"GET info": None, "POST sessions": "session", "DELETE sessions": "session-id",
                 "POST messages": "http-publish", "GET messages": "history",
                 "PUT retention": "retention", "POST batches": "batch"}  # fmt: skip
PUBLISHING = frozenset({"replay:publish", "POST messages", "POST batches"})


def tracked_channel(target: str, rng: random.Random) -> str:
    slug = target.replace("replay:", "").replace(" ", "-").lower()
    return f"fuzz.{slug}.{rng.randrange(TRACKED_CHANNELS)}"


@dataclass
class EventCall:
    event: str
    args: tuple[Any, ...]
    mutations: list[str] = field(default_factory=list)


def event_call(event: str, base: Any, rng: random.Random) -> EventCall:
    """One client event drawn from ``base``: as drawn, mutated, or with the wrong arguments."""
    payload = copy.deepcopy(base)
    if event in PUBLISHING and rng.random() < TRACKED_SHARE:
        payload["channel"] = tracked_channel(event, rng)
    if rng.random() < VALID_SHARE:
        return EventCall(event, (payload,))
    payload, done = mutate(rng, payload, rng.choice((1, 1, 2)))
    roll = rng.random()
    if roll < 0.04:
        return EventCall(event, (), [*done, "no argument"])
    if roll < 0.08:
        return EventCall(event, (payload, payload), [*done, "two arguments"])
    if roll < 0.11:
        return EventCall(event, (b"\x00binary",), [*done, "a binary attachment"])
    return EventCall(event, (payload,), done)


def _segment(value: str) -> str:
    """A path segment as API-5 asks: percent-encoded (``.`` too, so ``..`` stays a name)."""
    return quote(value, safe=":@", errors="surrogatepass").replace(".", "%2E")


def _body_bytes(value: Any, rng: random.Random, mutations: list[str], limit: int) -> bytes:
    body = json.dumps(value).encode()
    roll = rng.random()
    if roll < 0.03 and isinstance(value, dict) and value:
        name = next(iter(value))
        mutations.append(f"member {name!r} twice")
        rest = body[1:] if len(body) > 2 else b"}"
        return b"{" + json.dumps(name).encode() + b": 0, " + rest
    if roll < 0.07:
        mutations.append("junk body")
        return rng.choice(JUNK_BODIES)
    if roll < 0.09:
        mutations.append("truncated body")
        return body[: rng.randrange(len(body))] if len(body) > 1 else b"{"
    if roll < 0.10:
        mutations.append("invalid UTF-8")
        return body.replace(b"{", b"{\xc3(", 1)
    if roll < 0.11:
        mutations.append("data 3000 deep")
        return b'{"data": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    if roll < 0.112:
        mutations.append(f"padded above the {limit}-byte body limit")
        return body + b" " * (limit + 1024)
    return body


def _headers(api_key: str, rng: random.Random, mutations: list[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    wrong_keys = ["", "Basic " + api_key, "Bearer" + api_key, "Bearer x" + api_key,
                  "Bearer " + api_key[:-1], "Bearer " + api_key.upper()]  # fmt: skip
    _vary(headers, "Authorization", rng, mutations, wrong_keys, "bEaReR   " + api_key)  # API-15
    wrong_types = ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""]
    _vary(headers, "Content-Type", rng, mutations, wrong_types, "Application/JSON; charset=utf-8")
    return headers


def _vary(headers: dict[str, str], name: str, rng: random.Random, mutations: list[str],
          wrong: list[str], unusual: str) -> None:  # fmt: skip
    """Now and then give header ``name`` a wrong value or none (a mutation), or a valid but
    unusual spelling (none: the judge must accept it)."""
    roll = rng.random()
    if roll < 0.03:
        headers[name] = rng.choice(wrong)
        mutations.append(f"{name} {headers[name][:12]!r}")
    elif roll < 0.04:
        del headers[name]
        mutations.append(f"no {name}")
    elif roll < 0.06:
        headers[name] = unusual


def _query(base: dict[str, Any], rng: random.Random, mutations: list[str]) -> list[tuple[str, str]]:
    pairs = [(k, str(v)) for k, v in base.items() if k in ("from", "epoch", "limit")]
    roll = rng.random()
    if roll < 0.1:
        extra = rng.choice([("from", "1"), ("limit", "0"), ("from", "-1"), ("from", "1.5"),
                            ("limit", "1e3"), ("from", "\uff19"), ("x", "1"), ("_", "123"),
                            ("from", str(2**53)), ("limit", ""), ("epoch", "")])  # fmt: skip
        pairs.append(extra)
        mutations.append(f"query {extra}")
    elif roll < 0.15 and pairs:
        pairs.pop(rng.randrange(len(pairs)))
        mutations.append("drop a query parameter")
    return [(k, v.encode("utf-8", "replace").decode()) for k, v in pairs]


def http_request(route: str, base: Any, channels: list[str], api_key: str, rng: random.Random,
                 limit: int) -> tuple[HttpRequest, list[str]]:  # fmt: skip
    """One request to ``route`` drawn from ``base`` (None for info) and, for a route whose
    body holds no channel, from ``channels``: as drawn or mutated."""
    mutations: list[str] = []
    mutated = rng.random() >= VALID_SHARE
    value = copy.deepcopy(base)
    if mutated and route not in BODILESS:
        value, mutations = mutate(rng, value, rng.choice((1, 1, 2)))
    channel = _channel(route, value, channels, rng)
    sender = rng if mutated else _QUIET
    headers = _headers(api_key, sender, mutations)
    if route not in BODY_ROUTES:
        headers.pop("Content-Type", None)
    body = _body_bytes(value, sender, mutations, limit) if route in BODY_ROUTES else None
    fields = value if isinstance(value, dict) else {}
    query = _query(fields, sender, mutations) if route == "GET messages" else []
    request = HttpRequest(route.split()[0], PREFIX + _path(route, channel, value), headers, body,
                          query)  # fmt: skip
    if mutated:
        _break_route(request, route, channel, api_key, rng, mutations)
    return request, mutations


BODILESS = ("GET info", "DELETE sessions")
BODY_ROUTES = ("POST sessions", "POST messages", "PUT retention", "POST batches")


def _channel(route: str, value: Any, channels: list[str], rng: random.Random) -> str:
    if route == "GET messages":  # the history-request corpus names its channel
        drawn = value.get("channel") if isinstance(value, dict) else None
        return drawn if isinstance(drawn, str) else "-"
    if route in PUBLISHING and rng.random() < TRACKED_SHARE:
        return tracked_channel(route, rng)
    return rng.choice(channels) if channels else "-"


def _break_route(request: HttpRequest, route: str, channel: str, api_key: str,
                 rng: random.Random, mutations: list[str]) -> None:  # fmt: skip
    """Now and then a wrong key, path segment or method; most often on the two routes that
    take no body to mutate."""
    bodiless = route in BODILESS
    if bodiless and rng.random() < 0.3 and "Authorization" in request.headers:
        wrong = rng.choice(["", "Bearer", "Bearer  ", "Token " + api_key])
        request.headers["Authorization"] = wrong
        mutations.append(f"Authorization {wrong!r}")
    if rng.random() < (0.4 if bodiless else 0.08):
        segment = rng.choice(BAD_SEGMENTS if rng.random() < 0.5 else ("", "a/b", "%2F"))
        if route == "DELETE sessions":
            request.path = f"{PREFIX}/sessions/{segment}"
        elif "/channels/" in request.path:
            request.path = request.path.replace(f"/{_segment(channel)}/", f"/{segment}/", 1)
        else:
            segment = rng.choice(["/", "x", "/extra"])
            request.path += segment
        mutations.append(f"path {segment[:20]!r}")
    if rng.random() < (0.3 if bodiless else 0.03):
        request.method = rng.choice(["PUT", "PATCH", "DELETE", "POST", "GET"])
        mutations.append(f"method {request.method}")


def _path(route: str, channel: str, value: Any) -> str:
    if route == "GET info":
        return "/info"
    if route == "POST sessions":
        return "/sessions"
    if route == "DELETE sessions":
        return f"/sessions/{quote(str(value), safe='', errors='surrogatepass')}"
    return f"/channels/{_segment(channel)}/{route.split()[1]}"


class _Quiet(random.Random):
    """A ``Random`` whose every roll is 1.0: no request-level mutation applies."""

    def random(self) -> float:
        return 1.0


_QUIET = _Quiet(0)
