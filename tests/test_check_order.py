"""The Content-Type check of a request body (API-11), the one step of API-9 that
``reference.core.check_order`` runs itself."""

from __future__ import annotations

import pytest

from reference.core import check_order
from reference.core.errors import BadRequest


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        " application/json ; charset=latin-1",  # parameters change nothing: the body is UTF-8
    ],
)
def test_json_media_types_are_accepted(content_type: str) -> None:
    check_order.check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,  # no header at all
        "",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "application/octet-stream",  # what aiohttp and curl send for raw bytes
        "application/merge-patch+json",  # another media type, although JSON-based
        "application/jsonx",
        "json",
    ],
)
def test_other_media_types_are_bad_requests(content_type: str | None) -> None:
    with pytest.raises(BadRequest):
        check_order.check_content_type(content_type)


def test_the_media_type_drops_parameters_and_case() -> None:
    assert check_order.media_type("Text/HTML; charset=utf-8") == "text/html"
    assert check_order.media_type("") == ""
