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


def http_request(route: str, base: Any, api_key: str, rng: random.Random,
                 limit: int) -> tuple[HttpRequest, list[str]]:  # fmt: skip
    """One request to ``route`` drawn from ``base`` (None for info): as drawn or mutated."""
    method = route.split()[0]
    mutations: list[str] = []
    value = copy.deepcopy(base)
    mutated = rng.random() >= VALID_SHARE
    channel = ""
    if route in PUBLISHING or route == "PUT retention":
        channel = (tracked_channel(route, rng) if route in PUBLISHING and
                   rng.random() < TRACKED_SHARE else _random_channel(rng))  # fmt: skip
    if mutated and route not in ("GET info", "DELETE sessions"):
        value, mutations = mutate(rng, value, rng.choice((1, 1, 2)))
    if route == "GET messages":
        fields = value if isinstance(value, dict) else {}
        drawn = fields.get("channel")
        channel = drawn if isinstance(drawn, str) else "-"
    path = PREFIX + _path(route, channel, value)
    headers = _headers(api_key, rng, mutations) if mutated else _headers(api_key, _QUIET, [])
    if route == "GET info" or route == "DELETE sessions" or route == "GET messages":
        headers.pop("Content-Type", None)
    body = None
    if route in ("POST sessions", "POST messages", "PUT retention", "POST batches"):
        body = _body_bytes(value, rng if mutated else _QUIET, mutations, limit)
    query = []
    if route == "GET messages":
        fields = value if isinstance(value, dict) else {}
        query = _query(fields, rng if mutated else _QUIET, mutations)
    # These two take no body to mutate: their mutated requests get a wrong path, method or key.
    bodiless = mutated and route in ("GET info", "DELETE sessions")
    if bodiless and rng.random() < 0.3 and "Authorization" in headers:
        headers["Authorization"] = rng.choice(["", "Bearer", "Bearer  ", "Token " + api_key])
        mutations.append(f"Authorization {headers['Authorization']!r}")
    if mutated and rng.random() < (0.4 if bodiless else 0.08):
        segment = rng.choice(BAD_SEGMENTS if rng.random() < 0.5 else ("", "a/b", "%2F"))
        if route == "DELETE sessions":
            path = f"{PREFIX}/sessions/{segment}"
            mutations.append(f"path segment {segment[:20]!r}")
        elif "/channels/" in path:
            path = path.replace(f"/{_segment(channel)}/", f"/{segment}/", 1)
            mutations.append(f"path segment {segment[:20]!r}")
        else:
            path += rng.choice(["/", "x", "/extra"])
            mutations.append("unknown path")
    if mutated and rng.random() < (0.3 if bodiless else 0.03):
        method = rng.choice(["PUT", "PATCH", "DELETE", "POST", "GET"])
        mutations.append(f"method {method}")
    return HttpRequest(method, path, headers, body, query), mutations


def _path(route: str, channel: str, value: Any) -> str:
    if route == "GET info":
        return "/info"
    if route == "POST sessions":
        return "/sessions"
    if route == "DELETE sessions":
        return f"/sessions/{quote(str(value), safe='', errors='surrogatepass')}"
    return f"/channels/{_segment(channel)}/{route.split('/')[-1].split()[-1]}"


class _Quiet(random.Random):
    """A ``Random`` whose every roll is 1.0: no request-level mutation applies."""

    def random(self) -> float:
        return 1.0


_QUIET = _Quiet(0)


def _random_channel(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABC0123456789_.:@/-"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
