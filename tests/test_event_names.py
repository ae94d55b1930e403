from __future__ import annotations

import pytest

from reference.core.event_names import RESERVED_EVENT_NAMES, names_client_event


@pytest.mark.parametrize("name", sorted(RESERVED_EVENT_NAMES))
def test_reserved_names_name_no_client_event(name: str) -> None:  # EVT-8
    assert not names_client_event([name])
    assert not names_client_event([name, {"channel": "c"}])


@pytest.mark.parametrize("data", [[], [5], [None], [True], [{}], [["x"]], "x", None, {"0": "x"}])
def test_data_without_a_string_name_names_no_client_event(data: object) -> None:  # EVT-9
    assert not names_client_event(data)


@pytest.mark.parametrize("name", ["replay:subscribe", "replay:bogus", "message", "", "Connect"])
def test_any_other_string_names_a_client_event(name: str) -> None:
    assert names_client_event([name, {"channel": "c"}])
