"""``--replay-history``: a failed case keeps its whole event log, not only the end a failure
message carries, and it is written as JSON lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from conformance import history
from conformance.context import current, run_case
from conformance.errors import ConformanceFailure
from conformance.eventlog import LOG_SLICE
from conformance.expectations import fail
from conformance.registry import CaseSpec

SPEC = CaseSpec("tests.test_history.long_case", ("SUB-4",))
STEPS = LOG_SLICE * 3


async def _long_case() -> None:
    log = current().log
    for n in range(STEPS):
        log.record("c1", "event", "replay:messages", channel="room:a", payload={"n": n})
    fail("SUB-4", "epoch_mismatch", "ok")


async def _crashing_case() -> None:
    current().log.record("c1", "send", "replay:subscribe", channel="room:a")
    raise RuntimeError("the case itself broke")


def test_a_failure_carries_the_tail_and_its_history_the_whole_log(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure) as caught:
        asyncio.run(run_case(SPEC, _long_case))
    entries = history.history_of(caught.value)
    assert entries is not None and len(caught.value.log) <= LOG_SLICE < STEPS == len(entries)
    path = history.write(tmp_path / "h", "conformance/cases/test_x.py::test_y[a b]", entries)
    assert path.name == "test_x.py--test_y-a-b-.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["payload"]["n"] for line in lines] == list(range(STEPS))
    assert lines[0]["case"] == "conformance/cases/test_x.py::test_y[a b]"
    assert {"seq", "t", "actor", "kind", "name", "channel"} <= set(lines[0])


def test_an_error_of_the_case_keeps_its_history_too() -> None:
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(run_case(SPEC, _crashing_case))
    entries = history.history_of(caught.value)
    assert entries is not None and [e.name for e in entries] == ["replay:subscribe"]
    assert history.history_of(ValueError()) is None
