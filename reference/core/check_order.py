"""Where each event's and each route's checks run, in the order the spec gives them (§6.6 and
§4.1 "Check order"), and the one check of that order that belongs to no other module: the
``Content-Type`` of a body (API-11).

Theory of operation
-------------------
A request that breaks several rules fails with the first failing check's code. Every order
runs from what the request alone shows, to the session's grants, to the socket's
subscriptions, to the channel's state; the shell keeps it by calling each step only with what
the step before returned, and by reading the store only once the grant check has passed (so
that ``forbidden`` cannot depend on the channel, ACC-8).

Client events, after EVT-10's ``bad_request`` checks (arguments, schema, I-JSON), which
``payloads.parse_*`` make before anything else:

==================  ======================================  ===================================
event               then, in order                          run by
==================  ======================================  ===================================
subscribe (SUB-1)   grant, subscription, limit; epoch,      ``subscribe_order.admit``, then
                    upper bound, lower bound                ``subscribe_order.resolve``
unsubscribe         ``not_subscribed``, no grant (UNS-7)    ``socket_api``
ack (ACK-10)        grant; epoch, range                     ``grants.require``, then
                                                            ``positions.check_ack``
publish (PUB-8)     size; grant; duplicate ``id``           ``payloads.parse_publish``,
                                                            ``grants.require``, the store
history (HIS-11)    grant; epoch, upper, lower bound        ``grants.require``, then
                                                            ``positions.resolve_history``
==================  ======================================  ===================================

Backend routes (API-9): aiohttp routes a request first, so an unknown path, or a route's path
with another method, is 404 before any handler runs (API-6, API-10). Each handler then checks
the key (``http_api._authorize``; ``GET …/info`` has none, API-12), then, on a route with a
body, ``check_content_type`` and the body limit (aiohttp's ``client_max_size``, enforced as
the body is read), then the body, path and query (``payloads``), then the route's own checks:
the size of ``data`` and duplicates for a publish (PUB-9), the state checks of a history read
(HIS-12, ``positions.resolve_history``), an unknown session for a delete (SES-13).
"""

from __future__ import annotations

from reference.core.errors import BadRequest

JSON_MEDIA_TYPE = "application/json"


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value: parameters dropped, lower-cased (media
    types compare case-insensitively, RFC 9110 §8.3.1)."""
    return content_type.partition(";")[0].strip().lower()


def check_content_type(content_type: str | None) -> None:
    """Raise ``BadRequest`` unless a body's ``Content-Type`` says it is JSON (API-11).

    ``None`` is a request without the header. Parameters, ``charset`` included, change
    nothing: the body is UTF-8 (API-1).
    """
    if content_type is None:
        raise BadRequest(f"the body needs Content-Type: {JSON_MEDIA_TYPE}")
    if media_type(content_type) != JSON_MEDIA_TYPE:
        shown = media_type(content_type)[:60] or "(empty)"
        raise BadRequest(f"the body is {shown}, not {JSON_MEDIA_TYPE}")
