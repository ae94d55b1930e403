"""The pure core of a batch publish (``reference/core/batch_publish.py``, spec §4.8)."""

from __future__ import annotations

from typing import Any

import pytest

from reference.core import ijson
from reference.core.batch_publish import batch_stored_any, batch_wire, earlier_repeats
from reference.core.batch_publish import parse_batch_publish as parse
from reference.core.errors import BadRequest, PayloadTooLarge
from reference.core.model import AppendResult

LIMITS: dict[str, int] = {"max_payload_bytes": 16, "max_entries": 3}


def test_a_valid_batch_keeps_entries_in_order() -> None:
    request = parse("c", {"messages": [{"data": 1}, {"data": "x", "id": "k"}]}, **LIMITS)
    assert request.channel == "c"
    assert [(e.payload.value, e.id) for e in request.entries] == [(1, None), ("x", "k")]
    assert request.entries[1].payload.size == 3  # LIM-3: `"x"`


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"messages": []},  # BAT-5: an empty batch
        {"messages": {"data": 1}},
        {},
        {"messages": [{"data": 1}], "more": 1},
        ijson.loads('{"messages": [{"data": 1}], "messages": [{"data": 2}]}'),  # API-13
    ],
)
def test_a_malformed_body_is_bad_request_without_an_index(body: object) -> None:
    with pytest.raises(BadRequest) as caught:
        parse("c", body, **LIMITS)
    assert "index" not in caught.value.details


@pytest.mark.parametrize(
    ("entries", "index"),
    [
        ([{"data": 1}, {"id": "k"}], 1),  # no data
        ([{"data": 1}, {"data": 2}, {"data": 3, "x": 1}], 2),  # unknown member
        ([{"data": 1, "id": ""}], 0),  # id too short
        ([{"data": 1}, ijson.loads('{"data": {"a": 1, "a": 2}}')], 1),  # MSG-7
        ([{"data": "\ud800"}], 0),  # MSG-6
        ([{"data": ijson.loads("12345678901234567890")}], 0),  # MSG-8
        ([{"data": 1}, "entry", {"x": 1}], 1),  # the lowest of two
    ],
)
def test_a_bad_entry_is_bad_request_naming_the_lowest(entries: list[Any], index: int) -> None:
    with pytest.raises(BadRequest) as caught:
        parse("c", {"messages": entries}, **LIMITS)
    assert caught.value.details["index"] == index
    assert caught.value.message.startswith(f"messages/{index}: ")


def test_checks_run_in_bat_10_order() -> None:
    too_big = {"data": "x" * 20}
    # A bad entry (400) beats too many entries and too large data (413).
    with pytest.raises(BadRequest):
        parse("c", {"messages": [too_big, too_big, too_big, {"id": "k"}]}, **LIMITS)
    with pytest.raises(BadRequest):  # so does a bad channel name (step 5, 400)
        parse("no spaces", {"messages": [too_big]}, **LIMITS)
    with pytest.raises(PayloadTooLarge) as caught:  # then the count (BAT-6), no index
        parse("c", {"messages": [too_big, {"data": 1}, {"data": 1}, {"data": 1}]}, **LIMITS)
    assert caught.value.details == {"count": 4, "limit": 3}
    with pytest.raises(PayloadTooLarge) as caught:  # then each data's size (BAT-7)
        parse("c", {"messages": [{"data": 1}, too_big, too_big]}, **LIMITS)
    assert caught.value.details["index"] == 1 and caught.value.details["limit"] == 16


def test_earlier_repeats_point_at_the_first_entry_of_an_id() -> None:
    assert earlier_repeats([None, "a", "b", "a", None, "a", "b"]) == {3: 1, 5: 1, 6: 2}
    assert earlier_repeats([None, None]) == {}


def _result(offset: int, duplicate: bool, epoch: str = "e") -> AppendResult:
    return AppendResult("c", offset, epoch, f"id-{offset}", duplicate)


def test_the_answer_lists_results_in_order_and_says_whether_any_was_stored() -> None:
    results = [_result(5, False), _result(2, True)]
    assert batch_wire("c", results) == {
        "channel": "c",
        "epoch": "e",
        "results": [
            {"offset": 5, "id": "id-5", "duplicate": False},
            {"offset": 2, "id": "id-2", "duplicate": True},
        ],
    }
    assert batch_stored_any(results)
    assert not batch_stored_any([_result(2, True)])  # BAT-1: 200, not 201
    with pytest.raises(AssertionError):
        batch_wire("c", [_result(1, False), _result(2, False, epoch="other")])


def test_the_validator_shortcut_accepts_only_what_the_schema_accepts() -> None:
    from reference.core.batch_publish import _plainly_valid
    from reference.core.payloads import validate

    entries: list[object] = [
        {"data": 1},
        {"data": None, "id": "k"},
        {"data": 1, "id": "x" * 128},
        {"data": 1, "id": "x" * 129},
        {"data": 1, "id": ""},
        {"data": 1, "id": 5},
        {"id": "k"},
        {"data": 1, "other": 2},
        [1],
    ]
    for entry in entries:
        if _plainly_valid(entry):
            validate("http-publish-request", entry)  # raises if the shortcut were wrong
    assert [_plainly_valid(e) for e in entries] == [True, True, True] + [False] * 6
