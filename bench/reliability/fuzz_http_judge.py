"""What the spec allows as the answer to one generated backend HTTP request (§4), and whether
an answer is it. Pure: :func:`expect_http` reads a request as API-9's check order does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from bench.reliability.fuzz_judge import (
    OK,
    SAFE_INTEGER,
    Expectation,
    Limits,
    data_size,
    deep_recursion,
    depth,
    ijson_problem,
    refuse,
    with_deep_data,
)  # fmt: skip
from conformance.schemas import validate


@dataclass
class HttpRequest:
    """One request as sent: ``path`` is percent-encoded, ``query`` is pairs (GET only)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    query: list[tuple[str, str]] = field(default_factory=list)

    def target(self) -> str:
        """The request target as sent: the path and the percent-encoded query."""
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)
        return self.path + (f"?{query}" if query else "")


PREFIX = "/replay/v1"
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GET info", re.compile(r"/info")),
    ("POST sessions", re.compile(r"/sessions")),
    ("DELETE sessions", re.compile(r"/sessions/(?P<segment>[^/]+)")),
    ("POST messages", re.compile(r"/channels/(?P<segment>[^/]*)/messages")),
    ("GET messages", re.compile(r"/channels/(?P<segment>[^/]*)/messages")),
    ("PUT retention", re.compile(r"/channels/(?P<segment>[^/]*)/retention")),
    ("POST batches", re.compile(r"/channels/(?P<segment>[^/]*)/batches")),
)
BODY_SCHEMAS = {
    "POST sessions": "http-session-request",
    "POST messages": "http-publish-request",
    "PUT retention": "http-retention-request",
    "POST batches": "http-batch-publish-request",
}
OK_SCHEMAS = {
    "GET info": "http-info-response",
    "POST sessions": "http-session-response",
    "POST messages": "http-publish-response",
    "GET messages": "http-history-response",
    "PUT retention": "http-retention-response",
    "POST batches": "http-batch-publish-response",
}
OK_STATUSES = {"POST sessions": {200, 201}, "POST messages": {200, 201},
               "POST batches": {200, 201}, "DELETE sessions": {204}}  # fmt: skip
STATUS_OF = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
             "already_subscribed": 409, "not_subscribed": 409, "epoch_mismatch": 409,
             "history_truncated": 410, "offset_out_of_range": 416, "payload_too_large": 413,
             "rate_limited": 429, "unavailable": 503, "internal": 500}  # fmt: skip
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(?P<key>.*)")
_DECIMAL = re.compile(r"[0-9]+")
# HTTP servers refuse a longer request line before any route sees it (aiohttp: 400, Node.js:
# 414), and §4 says nothing of it: such an answer's body is not judged.
MAX_REQUEST_LINE = 8190
LINE_TOO_LONG = "request line too long"
_CHANNEL = re.compile(r"[A-Za-z0-9_.:@/-]{1,200}")


# A channel of several segments (`/channels/a/b/messages`): API-5 makes it one segment, but
# a router that matches on the decoded path (aiohttp, so the reference) cannot tell `a%2Fb`
# from `a/b`, and takes both for the channel `a/b`.
_SPANNING = tuple((r, re.compile(p.pattern.replace("[^/]*", ".+"))) for r, p in _ROUTES)


def route_of(method: str, path: str, spanning: bool = False) -> tuple[str | None, str | None]:
    """The route a request names (API-6, API-10) and its raw path parameter; with
    ``spanning``, a ``{channel}`` may span several segments."""
    if not path.startswith(PREFIX + "/"):
        return None, None
    rest = path.removeprefix(PREFIX)
    for route, pattern in _SPANNING if spanning else _ROUTES:
        if route.split()[0] == method and (match := pattern.fullmatch(rest)):
            return route, match.groupdict().get("segment")
    return None, None


def authorized(headers: dict[str, str], api_key: str) -> bool:
    """API-2, API-15: ``Bearer`` in any case, one or more spaces, the exact key."""
    match = _BEARER.fullmatch(headers.get("Authorization", "").strip())
    return match is not None and match["key"] == api_key


def is_json_media_type(headers: dict[str, str]) -> bool:
    """API-11."""
    value = headers.get("Content-Type")
    return value is not None and value.split(";")[0].strip().lower() == "application/json"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("a member named twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> tuple[Any, str | None]:
    """The body as the strict reader of API-1 and API-13 reads it, or why it cannot."""
    try:
        text = body.decode("utf-8")
        with deep_recursion():
            value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"not JSON: {str(exc)[:80]}"
    problem = ijson_problem(value)
    return value, None if problem is None else f"not I-JSON: {problem}"


def _channel_problem(segment: str | None) -> str | None:
    """API-5, CHN-1: the decoded ``{channel}`` segment is a channel name (common.json's
    pattern, matched whole, so no final line feed slips through)."""
    if segment is None:
        return None
    try:
        name = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return "API-5: the channel is not UTF-8"
    return None if is_channel_name(name) else f"CHN-1: channel {name[:40]!r}"


def is_channel_name(name: str) -> bool:
    """CHN-1, by common.json's pattern matched whole (so no final line feed slips through)."""
    return _CHANNEL.fullmatch(name) is not None


def _query_problem(query: list[tuple[str, str]]) -> str | None:
    """HIS-2, HIS-9, HIS-13 (an unknown name may be refused or ignored: see the caller)."""
    names = [name for name, _ in query]
    values = dict(query)
    if any(names.count(n) > 1 for n in ("from", "epoch", "limit")):
        return "HIS-13: a parameter twice"
    start = values.get("from", "beginning")
    if start != "beginning" and not (_DECIMAL.fullmatch(start) and 1 <= int(start) <= SAFE_INTEGER):
        return f"HIS-2: from={start[:30]!r}"
    limit = values.get("limit", "1")
    if not (_DECIMAL.fullmatch(limit) and 1 <= int(limit) <= SAFE_INTEGER):  # as the event's
        return f"HIS-2: limit={values['limit'][:30]!r}"
    if start != "beginning" and "epoch" not in values:
        return "HIS-9: an integer from without epoch"
    if "epoch" in values and not 1 <= len(values["epoch"]) <= 64:
        return "epoch of the wrong length"
    return None


def _body_outcomes(route: str, body: Any, limits: Limits) -> Expectation:
    """Step 6 for a body that passed step 5."""
    if route == "POST messages":
        if data_size(body["data"]) > limits.max_payload_bytes:
            return Expectation(frozenset({"payload_too_large"}), "LIM-4")
        return with_deep_data(Expectation(frozenset({OK}), "valid"), body["data"])
    if route == "POST batches":
        entries = body["messages"]
        if len(entries) > limits.max_batch_publish:
            return Expectation(frozenset({"payload_too_large"}), "BAT-6")
        if any(data_size(e["data"]) > limits.max_payload_bytes for e in entries):
            return Expectation(frozenset({"payload_too_large"}), "BAT-7")
        deepest_data = max((e["data"] for e in entries), key=depth)
        return with_deep_data(Expectation(frozenset({OK}), "valid"), deepest_data)
    if route == "POST sessions":
        channels = [entry["channel"] for entry in body.get("subscribe", [])]
        if len(set(channels)) != len(channels):
            return refuse("SES-7: a channel subscribed twice")
    return Expectation(frozenset({OK}), "valid")


def expect_http(request: HttpRequest, api_key: str, limits: Limits,
                live_session: bool = False) -> Expectation:  # fmt: skip
    """The allowed answers to ``request``, by API-9's check order."""
    if len(request.target()) > MAX_REQUEST_LINE:
        return Expectation(frozenset({"bad_request", LINE_TOO_LONG}), "request line", valid=False)
    route, segment = route_of(request.method, request.path)
    if route is not None and segment != "":
        return _expect_route(request, route, segment, api_key, limits, live_session)
    why = "API-14: an empty {channel}" if route is not None else "a {channel} of several segments"
    if route is None:
        route, segment = route_of(request.method, request.path, spanning=True)
    if route is None:
        return Expectation(frozenset({"not_found"}), "API-6: no such route", valid=False)
    routed = _expect_route(request, route, segment, api_key, limits, live_session)
    return Expectation(routed.outcomes | {"not_found"}, f"{why}, else {routed.why}", valid=False)


def _expect_route(request: HttpRequest, route: str, segment: str | None, api_key: str,
                  limits: Limits, live_session: bool) -> Expectation:  # fmt: skip
    if route != "GET info" and not authorized(request.headers, api_key):
        return Expectation(frozenset({"unauthorized"}), "API-2", valid=False)
    body: Any = None
    if route in BODY_SCHEMAS:
        body, refused = _read_body(request, route, limits)
        if refused is not None:
            return refused
    if route != "DELETE sessions" and (problem := _channel_problem(segment)) is not None:
        return refuse(problem)
    if route == "GET messages":
        if (problem := _query_problem(request.query)) is not None:
            return refuse(problem)
        codes = {OK, "epoch_mismatch", "offset_out_of_range", "history_truncated"}
        if any(name not in ("from", "epoch", "limit") for name, _ in request.query):
            codes.add("bad_request")  # HIS-13 lets a server refuse an unknown parameter
        return Expectation(frozenset(codes), "HIS-12")
    if route == "DELETE sessions":
        return Expectation(frozenset({OK} if live_session else {OK, "not_found"}), "SES-13")
    if route in BODY_SCHEMAS:
        return _body_outcomes(route, body, limits)
    return Expectation(frozenset({OK}), "INF-1")


def _read_body(request: HttpRequest, route: str,
               limits: Limits) -> tuple[Any, Expectation | None]:  # fmt: skip
    """Steps 3 to 5 of API-9 for the body (``Content-Type``, the body limit, JSON, schema):
    the body, or the answer to a request that fails one of them."""
    if not is_json_media_type(request.headers):
        return None, refuse("API-11: Content-Type")
    raw = request.body or b""
    limit = limits.max_batch_publish_bytes if route == "POST batches" else limits.body_limit
    if len(raw) > limit:
        return None, Expectation(frozenset({"payload_too_large"}), "API-7", valid=False)
    body, problem = parse_body(raw)
    if problem is not None:
        return None, refuse(f"API-1: {problem}")
    with deep_recursion():
        problems = validate(BODY_SCHEMAS[route], body)
    return body, refuse(f"API-1: {problems[0][:200]}") if problems else None


def judge_http(request: HttpRequest, expectation: Expectation, status: int,
               body: bytes) -> tuple[str, str | None]:  # fmt: skip
    """The outcome an HTTP answer shows (``ok`` or its code), and what is wrong with it."""
    if status >= 500:
        return str(status), f"answered {status}: {body[:200]!r}"
    if LINE_TOO_LONG in expectation.outcomes and status in (400, 414):
        return LINE_TOO_LONG, None
    route, _ = route_of(request.method, request.path, spanning=True)
    if 200 <= status < 300:
        outcome = OK
        if route is None or status not in OK_STATUSES.get(route, {200}):
            return outcome, f"answered {status} to {route or 'no route'}"
        if status == 204:
            return (outcome, None) if not body else (outcome, "a 204 with a body")
        problems = _json_problems(OK_SCHEMAS[route], body)
    else:
        parsed, _ = parse_body(body)
        code = parsed.get("error", {}).get("code") if isinstance(parsed, dict) else None
        outcome = str(code)
        problems = _json_problems("http-error", body)
        if not problems and STATUS_OF.get(outcome) != status:
            problems = [f"{outcome} under HTTP {status}"]
    if problems:
        return outcome, f"answered {status} breaking its schema: {problems[0][:200]}"
    if outcome not in expectation.outcomes:
        allowed = sorted(expectation.outcomes)
        return outcome, f"answered {status} {outcome}, allowed {allowed} ({expectation.why})"
    return outcome, None


def _json_problems(schema: str, body: bytes) -> list[str]:
    value, problem = parse_body(body)
    return [problem] if problem is not None else validate(schema, value)
