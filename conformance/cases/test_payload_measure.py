"""LIM-3's measure of ordinary numbers: fractions that every encoder spells alike (``0.5``,
``-3.25``), unlike the spellings of ``test_http_api`` that differ between encoders. A server
that counts them wrong by even one byte accepts a data one byte over the limit, or refuses
one that fits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from conformance import Target, case, expect_error, expect_ok, expect_status, grant
from conformance.protocol import messages_path, payload_size

JSON: Final = {"Content-Type": "application/json"}
# Written the same by RFC 8785, ECMAScript and Python's json: within 1e-4 to 1e16, not integral.
FRACTIONS: Final = "0.5,-3.25,1234.5678,0.001"


def _fractions(size: int) -> str:
    """JSON text of an array measuring exactly ``size`` bytes (LIM-3): about half of it
    :data:`FRACTIONS` repeated, the rest one string of ``x``."""
    each = payload_size(json.loads(f"[{FRACTIONS}]")) - 1  # its brackets, less a comma
    count = max(0, (size - 4) // (2 * each))
    fill = size - 4 - count * each  # the brackets and the filler's quotes
    text = "[" + f"{FRACTIONS}," * count + json.dumps("x" * fill) + "]"
    assert payload_size(json.loads(text)) == size, size
    return text


async def _expect_measured(target: Target, spell: Callable[[int], str]) -> None:
    """The backend stores ``spell(max_payload_bytes)`` (LIM-5) and refuses ``spell`` of one
    byte more (LIM-4); sent raw, so that numbers travel as spelled."""
    limit = target.limits["max_payload_bytes"]
    channel = target.channel()
    path = messages_path(channel)
    for size in (limit, limit + 1):
        raw = ('{"data":' + spell(size) + "}").encode()
        answer = await target.backend.request("POST", path, raw=raw, headers=JSON, channel=channel)
        if size == limit:
            expect_status(answer, 201, clause="LIM-5", channel=channel)
        else:
            expect_status(answer, 413, clause="LIM-4", code="payload_too_large", channel=channel)


@case("LIM-3", "LIM-4", "LIM-5")
async def test_fractions_are_measured_as_written(target: Target) -> None:
    await _expect_measured(target, _fractions)


@case("LIM-3", "LIM-4", "LIM-5", feature="client-publish")
async def test_client_fractions_are_measured_as_written(target: Target) -> None:
    limit = target.limits["max_payload_bytes"]
    channel = target.channel()
    client = await target.client(grants=[grant(channel)])
    for size in (limit, limit + 1):
        reply = await client.publish(channel, json.loads(_fractions(size)))
        if size == limit:
            expect_ok(reply, clause="LIM-5")
        else:
            expect_error(reply, "payload_too_large", clause="LIM-4", channel=channel)


# Integral floats inside nested arrays and objects: LIM-3 writes each as an integer ("1.0" as
# "1"), however deep it sits, so a server must look inside every container to measure them.
NESTED_FLOATS: Final = '[[1.0,{"f":[2.0,-3.0]}],{"g":{"h":4.0}}]'


def _nested_floats(size: int) -> str:
    """JSON text of an object measuring exactly ``size`` bytes (LIM-3): about half of it
    :data:`NESTED_FLOATS` repeated (as Python's json writes it, longer), then one string."""
    each = payload_size(json.loads(NESTED_FLOATS)) + 1  # and its comma
    count = max(1, (size - 15) // (2 * each))
    # '{"n":[],"s":' and "}" and the filler's quotes, less the comma the last group lacks
    fill = size - 14 - count * each
    text = '{"n":[' + ",".join([NESTED_FLOATS] * count) + '],"s":' + json.dumps("x" * fill) + "}"
    assert payload_size(json.loads(text)) == size, (size, payload_size(json.loads(text)))
    return text


@case("LIM-3", "LIM-4", "LIM-5")
async def test_nested_integral_floats_are_measured_as_integers(target: Target) -> None:
    await _expect_measured(target, _nested_floats)
