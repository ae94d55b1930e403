"""Security near-misses (spec §4.1, §4.3, §4.4, §5): credentials that are almost right.

What a security reviewer tries first against a key check: the real secret cut short, extended,
with one character changed or its case flipped, a credential of the other kind (a session token
as the API key, the API key as a token), a dead session's token, the right key in the wrong
scheme or the wrong place. Each is refused: 401 ``unauthorized`` over HTTP (API-2), a
``CONNECT_ERROR`` ``unauthorized`` at connect (CON-2).

The other side of the same rule: the scheme's case and the spaces after it are HTTP's, not
the key's (API-15, RFC 9110 §11.1), so ``bearer <key>`` and ``Bearer  <key>`` carry the key.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from conformance import Target, case, expect, expect_refused, expect_status
from conformance.protocol import messages_path, session_path


def _other(char: str) -> str:
    """A character other than ``char``, from the alphabet tokens and hex keys share."""
    return "0" if char != "0" else "1"


def _flip_first_case(secret: str) -> str:
    """``secret`` with the case of its first cased character flipped (unchanged if none)."""
    for index, char in enumerate(secret):
        if char.swapcase() != char:
            return secret[:index] + char.swapcase() + secret[index + 1 :]
    return secret


# One small edit of a secret each; a server that compares a prefix, a length, or letters
# without case, or that trims, accepts one of them.
EDITS: dict[str, Callable[[str], str]] = {
    "empty": lambda s: "",
    "prefix": lambda s: s[:-1],
    "first-half": lambda s: s[: len(s) // 2],
    "suffix": lambda s: s[1:],
    "extended": lambda s: s + _other(s[-1]),
    "doubled": lambda s: s + s,
    "first-char-changed": lambda s: _other(s[0]) + s[1:],
    "last-char-changed": lambda s: s[:-1] + _other(s[-1]),
    "one-case-flipped": _flip_first_case,
    "all-case-swapped": str.swapcase,
}


def _edited(secret: str, edit: str) -> str:
    """``secret`` under the edit named ``edit``; skips the case when the edit leaves it as is."""
    variant = EDITS[edit](secret)
    if variant == secret:
        # A key of digits only has no case to flip: that near-miss does not exist for it.
        pytest.skip(f"the edit {edit!r} does not change this secret")
    return variant


async def _expect_every_route_refuses(target: Target, headers: dict[str, str], query: str) -> None:
    """Each route API-2 protects answers 401 ``unauthorized`` to a request with ``headers``."""
    channel = target.channel()
    routes: list[tuple[str, str, object]] = [
        ("POST", session_path(), {"client_id": "conformance", "grants": []}),
        ("DELETE", session_path(f"conformance-{secrets.token_hex(8)}"), None),
        ("POST", messages_path(channel), {"data": 1}),
    ]
    for method, path, body in routes:
        kwargs: dict[str, Any] = {"body": body} if body is not None else {}
        answer = await target.backend.request(
            method, path + query, auth=False, headers=headers, channel=channel, **kwargs
        )
        expect_status(answer, 401, clause="API-2", code="unauthorized", channel=channel)


@case("API-2")
@pytest.mark.parametrize("edit", list(EDITS))
async def test_an_api_key_one_edit_away_is_refused(target: Target, edit: str) -> None:
    headers = {"Authorization": f"Bearer {_edited(target.api_key, edit)}"}
    await _expect_every_route_refuses(target, headers, "")


@case("API-2")
@pytest.mark.parametrize(
    "form",
    [
        "Basic {key}",
        "Basic {basic_user}",
        "Basic {basic_password}",
        "Token {key}",
        "Bearer{key}",
        "Bearer: {key}",
        "Bearer Bearer {key}",
        "{key} Bearer",
    ],
)
async def test_the_right_key_in_another_form_is_refused(target: Target, form: str) -> None:
    key = target.api_key
    value = form.format(
        key=key,
        basic_user=base64.b64encode(f"{key}:".encode()).decode(),
        basic_password=base64.b64encode(f":{key}".encode()).decode(),
    )
    await _expect_every_route_refuses(target, {"Authorization": value}, "")


@case("API-15", "API-2")
@pytest.mark.parametrize("form", ["bearer {key}", "BEARER {key}", "bEaReR {key}", "Bearer  {key}"])
async def test_the_scheme_in_any_case_and_more_spaces_carry_the_key(
    target: Target, form: str
) -> None:
    """The scheme is HTTP's case-insensitive token, then one or more spaces (API-15): each form
    reaches the route, which answers a random session's DELETE with 404, not 401."""
    headers = {"Authorization": form.format(key=target.api_key)}
    path = session_path(f"conformance-{secrets.token_hex(8)}")
    answer = await target.backend.request("DELETE", path, auth=False, headers=headers)
    expect_status(answer, 404, clause="API-15", code="not_found")


@case("API-2")
@pytest.mark.parametrize("place", ["x-api-key", "api-key-header", "query"])
async def test_the_right_key_in_another_place_is_refused(target: Target, place: str) -> None:
    # No Authorization header at all: the key is "missing" (API-2) wherever else it is.
    key = target.api_key
    headers = {"X-Api-Key": key} if place == "x-api-key" else {}
    if place == "api-key-header":
        headers = {"Api-Key": f"Bearer {key}"}
    tail = f"?api_key={key}" if place == "query" else ""
    await _expect_every_route_refuses(target, headers, tail)


@case("API-2", "SES-4")
@pytest.mark.parametrize("whose", ["live", "deleted"])
async def test_a_session_token_is_not_the_api_key(target: Target, whose: str) -> None:
    session = await target.register([])
    if whose == "deleted":
        expect_status(await target.backend.delete_session(session.session_id), 204, clause="SES-13")
    await _expect_every_route_refuses(target, {"Authorization": f"Bearer {session.token}"}, "")


@case("CON-2", "CON-1")
@pytest.mark.parametrize("edit", list(EDITS))
async def test_a_token_one_edit_away_is_refused(target: Target, edit: str) -> None:
    session = await target.register([])
    client = await target.client(connect=False, name=f"near-{edit}")
    await expect_refused(
        client.connect_raw({"token": _edited(session.token, edit)}), clause="CON-2"
    )
    # The real token still works: the refusals were of the edit, not of the session.
    await target.client(session=session, name="real")


@case("CON-2")
@pytest.mark.parametrize(
    "form", ["api-key", "bearer-prefixed", "other-field", "capitalised-field", "in-a-list"]
)
async def test_the_wrong_credential_at_connect_is_refused(target: Target, form: str) -> None:
    token = (await target.register([])).token
    auth: object = {
        "api-key": {"token": target.api_key},
        "bearer-prefixed": {"token": f"Bearer {token}"},
        "other-field": {"session_token": token},
        "capitalised-field": {"Token": token},
        "in-a-list": {"token": [token]},
    }[form]
    client = await target.client(connect=False, name=form)
    await expect_refused(client.connect_raw(auth), clause="CON-2")


@case("SES-23", "SES-16", "CON-2")
async def test_a_deleted_token_stays_refused_after_the_id_is_registered_again(
    target: Target,
) -> None:
    old = await target.register([])
    expect_status(await target.backend.delete_session(old.session_id), 204, clause="SES-13")
    new = await target.register([], session_id=old.session_id)
    expect(new.status == 201, clause="SES-16", expected="HTTP 201", received=new.status)
    stale = await target.client(connect=False, name="stale")
    await expect_refused(stale.connect(old.token), clause="SES-23")
    await target.client(session=new, name="fresh")


@case("SES-4", "CON-2")
async def test_every_replaced_token_stays_refused(target: Target) -> None:
    first = await target.register([])
    second = await target.register([], session_id=first.session_id)
    third = await target.register([], session_id=first.session_id)
    for label, stale in (("first", first), ("second", second)):
        client = await target.client(connect=False, name=label)
        await expect_refused(client.connect(stale.token), clause="SES-4")
    await target.client(session=third, name="third")
