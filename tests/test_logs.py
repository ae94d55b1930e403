"""The reference's JSON log: a request aiohttp cannot parse is the peer's fault, one warning."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import LineTooLong

from reference import logs


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("info")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_line_too_long_is_one_warning_without_traceback(log_lines: io.StringIO) -> None:
    try:
        raise LineTooLong(b"/replay/v1/channels/" + b"a" * 9000, "8190")
    except LineTooLong:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
    (entry,) = _entries(log_lines)
    assert entry["level"] == "warning" and "exc" not in entry
    assert str(entry["msg"]).startswith("Error handling request from ::1: LineTooLong")
    assert len(str(entry["msg"])) < 400


def test_other_server_errors_keep_their_level_and_traceback(log_lines: io.StringIO) -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
    (entry,) = _entries(log_lines)
    assert entry["level"] == "error" and "RuntimeError: a bug" in str(entry["exc"])
