"""The backend HTTP API (spec §4) on aiohttp."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from reference.core import batch_publish, check_order, ijson, payloads
from reference.core.errors import (
    BadRequest,
    InternalError,
    NotFound,
    PayloadTooLarge,
    ReplayError,
    Unauthorized,
)
from reference.core.tokens import api_key_matches
from reference.server.node import ReplayNode

log = logging.getLogger(__name__)

PREFIX = "/replay/v1"
NODE_KEY = web.AppKey("replay_node", ReplayNode)
API_KEY = web.AppKey("replay_api_key", str)

T = TypeVar("T")
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def error_response(error: ReplayError) -> web.Response:
    """The status and body of API-4."""
    return web.json_response({"error": error.to_wire()}, status=error.http_status)


def answering_errors(handler: RouteHandler) -> RouteHandler:
    """``handler`` with every failure turned into the JSON error body of API-4; never an HTML
    page.

    A wrapper on each route of §4, not a middleware: a middleware's coroutine (and aiohttp's
    own one that comes with any middleware) would stay suspended under every Socket.IO
    request as well, for each socket's whole life (``bench/memory_profile.py``).
    """

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ReplayError as exc:
            return error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return error_response(PayloadTooLarge("request body too large"))  # API-7
        except web.HTTPException:
            raise
        except Exception:
            log.exception("HTTP handler failed")
            return error_response(InternalError("internal server error"))

    return answer


async def no_route(request: web.Request) -> web.Response:
    """Any other path under the prefix, or a route's path with another method (API-6)."""
    raise NotFound(f"no route {request.method} {request.path}")


def _authorize(request: web.Request) -> None:
    """API-2, API-15: the backend's bearer key on every route but info; the scheme in any case."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not api_key_matches(key.strip(), request.app[API_KEY]):
        raise Unauthorized("missing or wrong API key")


async def _json_body(request: web.Request) -> object:
    """Steps 3 to 5 of API-9 on a route with a body: ``Content-Type``, the body limit, JSON.

    The header is checked before the body is read, and the handler checks the key before it
    calls this, so a refused request's body is never read (API-9).
    """
    text = await _body_text(request)
    return _decoded(lambda: ijson.loads(text, parse_constant=_reject_constant))


async def _body_text(request: web.Request) -> str:
    check_order.check_content_type(request.headers.get("Content-Type"))  # API-11
    raw = await request.read()  # aiohttp raises HTTPRequestEntityTooLarge here (API-7)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid JSON") from None  # API-1


def _decoded(decode: Callable[[], T]) -> T:
    try:
        return decode()  # MSG-6 to MSG-8
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None  # API-1


def _channel_name(request: web.Request) -> str:
    return payloads.check_channel(request.match_info["channel"])  # API-5, CHN-1


async def info(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].info())  # INF-1


async def register_session(request: web.Request) -> web.Response:
    _authorize(request)
    node = request.app[NODE_KEY]
    body = payloads.parse_session(await _json_body(request), node.limits.max_ttl_s)
    created, token, session = await node.register(body)
    return web.json_response(
        {"session_id": session.session_id, "token": token, "expires_at": session.expires_at},
        status=201 if created else 200,  # SES-1, SES-2
    )


async def delete_session(request: web.Request) -> web.Response:
    _authorize(request)
    await request.app[NODE_KEY].revoke(request.match_info["session_id"])
    return web.Response(status=204)  # SES-13


async def publish(request: web.Request) -> web.Response:
    _authorize(request)
    node = request.app[NODE_KEY]
    body = await _json_body(request)
    result = await node.publish(
        payloads.parse_http_publish(_channel_name(request), body, node.limits.max_payload_bytes)
    )
    return web.json_response(result.to_wire(), status=200 if result.duplicate else 201)


async def publish_batch(request: web.Request) -> web.Response:
    _authorize(request)
    node = request.app[NODE_KEY]
    # The batch route's own body limit (BAT-10, INF-7), above the other routes' (API-8).
    text = await _body_text(request.clone(client_max_size=node.limits.batch_publish_body_limit()))
    body, noted = _decoded(lambda: ijson.loads_noting(text, parse_constant=_reject_constant))
    parsed = batch_publish.parse_batch_publish(
        request.match_info["channel"],  # API-5, CHN-1: checked there, after the entries
        body,
        max_payload_bytes=node.limits.max_payload_bytes,
        max_entries=node.limits.max_batch_publish,
        i_json=not noted,
    )
    results = await node.publish_batch(parsed)
    status = 201 if batch_publish.batch_stored_any(results) else 200  # BAT-1
    # orjson: a thousand results of offsets, ids and booleans, ~10x faster than json.dumps
    body = orjson.dumps(batch_publish.batch_wire(parsed.channel, results))
    return web.Response(body=body, status=status, content_type="application/json")


async def read_history(request: web.Request) -> web.Response:
    _authorize(request)
    channel = _channel_name(request)
    history = payloads.parse_http_history(channel, request.query)
    read = await request.app[NODE_KEY].history(history)
    return web.json_response(read)


async def set_retention(request: web.Request) -> web.Response:
    _authorize(request)
    # The body limit (413) before the path's channel (400): API-9 steps 4 and 5.
    update = payloads.parse_retention(await _json_body(request))
    channel = _channel_name(request)
    retention = await request.app[NODE_KEY].store.set_retention(channel, update)
    return web.json_response(
        {
            "channel": channel,
            "max_messages": retention.max_messages,
            "max_age_s": retention.max_age_s,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the routes of §4 on ``app``."""
    # Any characters rather than the default `[^/]+`: aiohttp matches on the decoded path,
    # where a channel's `%2F` is already a `/` (API-5), and a `%0A` a newline that `.` would
    # not match; CHN-1 then rejects what is not a channel name with `bad_request`.
    channel = PREFIX + r"/channels/{channel:[\s\S]+}"
    routes = [
        ("GET", PREFIX + "/info", info),
        ("POST", PREFIX + "/sessions", register_session),
        ("DELETE", PREFIX + "/sessions/{session_id}", delete_session),
        ("POST", channel + "/messages", publish),
        ("GET", channel + "/messages", read_history),
        ("POST", channel + "/batches", publish_batch),
        ("PUT", channel + "/retention", set_retention),
        # last: aiohttp tries routes in order, so this only answers what none of the above
        # does; Socket.IO's own paths, outside the prefix, answer as they like
        ("*", PREFIX + r"/{path:[\s\S]*}", no_route),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, answering_errors(handler))
