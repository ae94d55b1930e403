"""Unit tests of the conformance suite's machinery (conformance/*): options, the case decorator,
findings, schema validation, the driver, the client's on-the-fly checks, grading and reports.

The last test runs the plugin end to end against a stub target (an aiohttp app serving only
the info and session routes) to check grading as pytest reports it: MUST failures fail the run,
SHOULD failures are xfails, unclaimed features are skipped.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from conformance import clauses, schemas
from conformance.backend import Backend
from conformance.context import current, run_case
from conformance.driver import Driver
from conformance.errors import CaseTimeout, ConformanceFailure, ConnectRefused, SuiteError
from conformance.eventlog import EventLog, active_log
from conformance.expectations import (
    describe_offsets,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    expect_refused,
    expect_status,
)
from conformance.grading import (
    ERROR,
    FAILED,
    NOT_CLAIMED,
    NOT_COVERED,
    PASSED,
    CaseResult,
    as_failure,
    grade,
    is_strict,
)
from conformance.launch import LaunchSpec
from conformance.nodes import expand_command
from conformance.options import Settings, resolve_settings
from conformance.protocol import Reply, grant, step_clause
from conformance.recorder import Recorder
from conformance.registry import CASES, CaseSpec, case, spec_of
from conformance.report import (
    failure_dict,
    render_json,
    render_markdown,
    report_paths,
    terminal_lines,
    write_report,
)
from conformance.sio import emit_data
from conformance.text import ranges, summarize

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]


# --- options ------------------------------------------------------------------------------------


def _options(**given: Any) -> dict[str, Any]:
    return {f"replay_{k}": v for k, v in given.items()}


def test_settings_default_to_the_reference_server() -> None:
    settings = resolve_settings({}, {})
    assert settings == Settings()
    assert settings.launch_spec.mode == "reference"
    assert "reference" in settings.describe()


def test_settings_read_the_environment() -> None:
    env = {
        "REPLAY_TARGET": "http://a:1, http://b:2",
        "REPLAY_API_KEY": "k",
        "REPLAY_TIMEOUT": "12.5",
        "REPLAY_REPORT": "out/r",
        "REPLAY_TARGET_IMAGE_PORT": "9000",
    }
    settings = resolve_settings({}, env)
    assert settings.targets == ("http://a:1", "http://b:2")
    assert (settings.api_key, settings.timeout, settings.report) == ("k", 12.5, "out/r")
    assert settings.target_image_port == 9000
    assert settings.launch_spec.mode == "url"


def test_command_line_wins_over_the_environment() -> None:
    options = _options(target=["http://cli:1", "http://cli:2,http://cli:3"], api_key="cli")
    settings = resolve_settings(options, {"REPLAY_TARGET": "http://env:1", "REPLAY_API_KEY": "e"})
    assert settings.targets == ("http://cli:1", "http://cli:2", "http://cli:3")
    assert settings.api_key == "cli"


def test_launch_priority_is_urls_then_command_then_image() -> None:
    assert LaunchSpec(urls=("u",), command="c", image="i").mode == "url"
    assert LaunchSpec(command="c", image="i").mode == "command"
    assert LaunchSpec(image="i").mode == "image"


def test_bad_numbers_are_usage_errors() -> None:
    with pytest.raises(SuiteError, match="--replay-timeout must be a number"):
        resolve_settings({}, {"REPLAY_TIMEOUT": "soon"})


def test_command_placeholders_are_filled() -> None:
    argv = expand_command(
        "{python} -m srv --port {port} --key={api_key} '{x}'", port=5, api_key="k"
    )
    assert argv == [sys.executable, "-m", "srv", "--port", "5", "--key=k", "{x}"]


# --- the case decorator -------------------------------------------------------------------------


class FakeHost:
    """Stands in for Target: claims what it is told, runs bodies on a fresh loop."""

    def __init__(self, features: set[str] | None = None, durable: bool = False) -> None:
        self.features = frozenset(features or {"sessions"})
        self.durable = durable
        self.ran: list[str] = []

    def run_case(self, spec: CaseSpec, body: Callable[[], Awaitable[None]]) -> None:
        self.ran.append(spec.name)
        asyncio.run(run_case(spec, body, spec.timeout))


def test_unknown_clause_ids_are_rejected_at_import_time() -> None:
    with pytest.raises(SuiteError, match="unknown clause 'ORD-99'"):
        case("ORD-1", "ORD-99")


def test_internal_clauses_and_bad_features_are_rejected() -> None:
    with pytest.raises(SuiteError, match="internal"):
        case("API-3")
    with pytest.raises(SuiteError, match="unknown feature"):
        case("ORD-1", feature="time-travel")


def test_a_case_must_be_async_and_take_target() -> None:
    with pytest.raises(SuiteError, match="async def"):
        case("ORD-1")(lambda target: None)  # type: ignore[arg-type, return-value]

    async def no_target(other: object) -> None: ...

    with pytest.raises(SuiteError, match="target"):
        case("ORD-1")(no_target)


def test_a_case_is_a_sync_test_with_marks_and_a_spec() -> None:
    @case("ORD-1", "ORD-2", timeout=3)
    async def test_sample(target: FakeHost) -> None:
        target.ran.append("body")

    spec = spec_of(test_sample)
    assert spec is not None
    assert spec.clauses == ("ORD-1", "ORD-2") and spec.timeout == 3
    assert CASES[spec.name] is spec
    assert not asyncio.iscoroutinefunction(test_sample)
    marks = {m.name: m.args for m in test_sample.pytestmark}  # type: ignore[attr-defined]
    assert marks["clause"] == ("ORD-1", "ORD-2")
    host = FakeHost()
    test_sample(target=host)
    assert host.ran == [spec.name, "body"]


def test_the_spec_is_found_under_hypothesis_given() -> None:
    @case("ORD-1")
    async def test_wrapped(target: FakeHost) -> None: ...

    def outer() -> None: ...

    outer.hypothesis = SimpleNamespace(inner_test=test_wrapped)  # type: ignore[attr-defined]
    assert spec_of(outer) is spec_of(test_wrapped) is not None
    assert spec_of(lambda: None) is None


def test_a_case_needing_an_unclaimed_feature_is_skipped() -> None:
    @case("HIS-4")  # tagged [feature: history]: the feature comes with the clause
    async def test_history(target: FakeHost) -> None:
        raise AssertionError("must not run")

    assert spec_of(test_history) is not None
    assert spec_of(test_history).features == ("history",)  # type: ignore[union-attr]
    with pytest.raises(pytest.skip.Exception, match="not claimed: feature history"):
        test_history(target=FakeHost())

    @case("DUR-2", durable=True)
    async def test_durable(target: FakeHost) -> None:
        raise AssertionError("must not run")

    with pytest.raises(pytest.skip.Exception, match="not claimed: durable=true"):
        test_durable(target=FakeHost(durable=False))


def test_violations_recorded_during_a_case_fail_it_at_its_end() -> None:
    @case("ORD-2")
    async def test_quietly_broken(target: FakeHost) -> None:
        log = active_log.get()
        assert log is not None
        log.violation("DLV-1", "a valid event", "an invalid one")

    with pytest.raises(ConformanceFailure) as raised:
        test_quietly_broken(target=FakeHost())
    assert raised.value.clause == "DLV-1"


def test_the_earliest_problem_leads_and_later_ones_are_attached() -> None:
    @case("ORD-2")
    async def test_twice_broken(target: FakeHost) -> None:
        log = active_log.get()
        assert log is not None
        log.violation("DLV-1", "a valid event", "an invalid one")
        expect(False, clause="ORD-2", expected="4", received="5")

    with pytest.raises(ConformanceFailure) as raised:
        test_twice_broken(target=FakeHost())
    assert raised.value.clauses == ["DLV-1", "ORD-2"]


def test_findings_of_an_exception_group_become_one_finding_naming_each_clause() -> None:
    # What Hypothesis raises when a scenario run found several distinct failures.
    first = ConformanceFailure("UNS-3", "nothing after the reply", "offset 9")
    second = ConformanceFailure("SUB-7", "ok", "already_subscribed")
    second.others.append(ConformanceFailure("ORD-2", "4", "5"))
    group = ExceptionGroup("2 distinct failures", [first, ExceptionGroup("inner", [second])])
    found = as_failure(group)
    assert found is not None and found.headline == first.headline
    assert found.clauses == ["UNS-3", "SUB-7", "ORD-2"]
    assert as_failure(first) is first
    # A crash among them is no finding: the case's cited clauses decide, strictly.
    assert as_failure(ExceptionGroup("mixed", [first, TypeError("suite bug")])) is None
    assert as_failure(TypeError("x")) is None and as_failure(None) is None


def test_a_case_that_hangs_times_out_with_its_log() -> None:
    @case("ORD-1", timeout=0.2)
    async def test_hangs(target: FakeHost) -> None:
        log = active_log.get()
        assert log is not None
        log.record("c1", "send", "replay:subscribe", channel="a")
        await asyncio.sleep(30)

    with pytest.raises(CaseTimeout, match=r"within 0\.2 s(.|\n)*replay:subscribe"):
        test_hangs(target=FakeHost())


def test_grant_defaults_to_every_action() -> None:
    assert grant("room:*") == {"channels": "room:*", "actions": ["subscribe", "publish", "history"]}
    assert grant("a", "history") == {"channels": "a", "actions": ["history"]}
    with pytest.raises(SuiteError):
        grant("a", "delete")


# --- findings -----------------------------------------------------------------------------------


def test_ranges_and_summaries() -> None:
    assert ranges([1, 2, 3, 5, 7, 8]) == "1..3, 5, 7..8"
    assert ranges([]) == "none"
    payload = {"channel": "c", "messages": [{"offset": 1}, {"offset": 2}]}
    assert summarize(payload) == '{"channel":"c"} messages=[1..2] (2)'
    assert summarize("x" * 500).endswith("...")


@pytest.mark.parametrize(
    ("received", "problem"),
    [
        ([1, 2, 4], "missing 3"),
        ([1, 2, 2, 3], "duplicated 2"),
        ([1, 2, 3, 9], "unexpected 9"),
        ([1, 3, 2], "out of order at position 1: 3 instead of 2"),
    ],
)
def test_describe_offsets(received: list[int], problem: str) -> None:
    assert problem in describe_offsets(received, [1, 2, 3])


def test_expect_helpers_raise_failures_naming_the_clause() -> None:
    expect(True, clause="ORD-1", expected="x", received="x")
    assert expect_ok({"ok": True, "from": 1}, clause="SUB-7") == {"ok": True, "from": 1}
    error = {"code": "forbidden", "message": "no"}
    assert expect_error({"ok": False, "error": error}, "forbidden", clause="SUB-2") == error
    assert expect_status((201, {"a": 1}), 201, clause="PUB-1") == {"a": 1}
    expect_offsets([1, 2], range(1, 3), clause="ORD-2")
    with pytest.raises(ConformanceFailure, match=r"\[SUB-2\] expected an error reply"):
        expect_error({"ok": True}, "forbidden", clause="SUB-2")
    with pytest.raises(ConformanceFailure, match=r"HTTP 404 with error code 'not_found'"):
        expect_status(
            (404, {"error": {"code": "bad_request"}}), 404, clause="SES-13", code="not_found"
        )
    with pytest.raises(ConformanceFailure, match="missing 2"):
        expect_offsets([1, 3], [1, 2, 3], clause="ORD-2")


@pytest.mark.parametrize(
    ("event", "payload", "clause"),
    [
        ("replay:subscribe", {"channel": "a", "from": "beginning"}, "SUB-7"),
        ("replay:subscribe", {"channel": "a", "from": "latest"}, "SUB-8"),
        ("replay:subscribe", {"channel": "a"}, "SUB-9"),
        ("replay:subscribe", {"channel": "a", "from": 3, "epoch": "e"}, "SUB-1"),
        ("replay:subscribe", {"channel": "a", "from": 3, "allow_truncation": True}, "SUB-11"),
        ("replay:ack", {"channel": "a", "offset": 3, "epoch": "e"}, "ACK-4"),
        ("replay:unsubscribe", {"channel": "a"}, "UNS-1"),
        ("replay:publish", {"channel": "a", "data": 1}, "PUB-6"),
        ("replay:history", {"channel": "a"}, "HIS-4"),
    ],
)
def test_a_refused_step_names_the_clause_its_event_rests_on(
    event: str, payload: dict[str, Any], clause: str
) -> None:
    refused = {"ok": False, "error": {"code": "bad_request", "message": "unknown member"}}
    with pytest.raises(ConformanceFailure) as raised:
        expect_ok(Reply.to(event, payload, refused))
    assert raised.value.clause == clause
    # The case's own clause, when it judges the event's success itself, wins.
    with pytest.raises(ConformanceFailure, match=r"\[ACK-5\]"):
        expect_ok(Reply.to(event, payload, refused), clause="ACK-5")
    answered = Reply.to(event, payload, {"ok": True})
    assert expect_ok(answered) == {"ok": True} and answered.request == (event, payload)


def test_a_step_names_what_the_client_knows_its_refusal_breaks() -> None:
    # A subscribe refused already_subscribed right after the socket's ok unsubscribe: the
    # client sets the step's clause to UNS-4 (subscribing again), not the resolution's SUB-7.
    refused = {"ok": False, "error": {"code": "already_subscribed", "message": "still there"}}
    reply = Reply.to("replay:subscribe", {"channel": "a", "from": "beginning"}, refused)
    reply.step = "UNS-4"
    with pytest.raises(ConformanceFailure, match=r"\[UNS-4\]"):
        expect_ok(reply)


def test_a_step_needs_a_reply_that_knows_its_event() -> None:
    with pytest.raises(SuiteError, match="needs clause="):
        expect_ok({"ok": True})
    assert step_clause("replay:unknown", {}) is None


def test_a_failure_carries_the_recent_log() -> None:
    log = EventLog()
    token = active_log.set(log)
    try:
        for n in range(50):
            log.record("c1", "event", "replay:messages", channel="a" if n % 2 else "b")
        with pytest.raises(ConformanceFailure) as raised:
            expect(False, clause="ORD-2", expected="x", received="y", channel="a")
    finally:
        active_log.reset(token)
    failure = raised.value
    assert len(failure.log) == 25 and {e.channel for e in failure.log} == {"a"}
    assert failure.log[-1].seq == 50
    assert "event log (25 entries" in str(failure)


def test_log_tail_keeps_the_connections_of_involved_clients() -> None:
    log = EventLog()
    log.record("c1", "connect", "connect")
    log.record("c2", "connect", "connect")
    log.record("c1", "event", "replay:messages", channel="a")
    assert [e.actor for e in log.tail("a")] == ["c1", "c1"]
    op = log.invoke("c1", "replay:subscribe", channel="a", payload={"channel": "a"})
    assert log.find(op=op)[0].kind == "send"


async def test_expect_refused() -> None:
    async def refused() -> None:
        raise ConnectRefused({"message": "unauthorized"})

    async def accepted() -> None:
        return None

    assert (await expect_refused(refused(), clause="CON-2")).message == "unauthorized"
    with pytest.raises(ConformanceFailure, match="the connection was accepted"):
        await expect_refused(accepted(), clause="CON-2")

    async def wrong() -> None:
        raise ConnectRefused({"message": "internal"})

    with pytest.raises(ConformanceFailure, match='"message":"internal"'):
        await expect_refused(wrong(), clause="CON-2")


# --- schemas ------------------------------------------------------------------------------------


def test_schema_validation() -> None:
    assert "subscribe-reply" in schemas.names()
    good = {"ok": True, "channel": "a", "epoch": "e", "from": 1, "head": 5}
    assert schemas.validate("subscribe-reply", good) == []
    assert schemas.validate("subscribe-reply", {**good, "from": 0}) == [
        "from: 0 is less than the minimum of 1"
    ]
    assert schemas.validate_reply("replay:subscribe", good) == []
    bad_error = {"ok": False, "error": {"code": "nope", "message": "m"}}
    assert schemas.validate_reply("replay:subscribe", bad_error)[0].startswith("error/code")
    assert "neither" in schemas.validate_reply("replay:subscribe", [1])[0]
    with pytest.raises(SuiteError):
        schemas.validator("no-such-schema")


# --- driver -------------------------------------------------------------------------------------


def test_driver_runs_coroutines_and_times_them_out() -> None:
    driver = Driver()
    cleaned = threading.Event()

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def broken() -> None:
        raise KeyError("k")

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    try:
        assert driver.run(answer(), timeout=5) == 42
        with pytest.raises(KeyError):
            driver.run(broken(), timeout=5)
        started = time.monotonic()
        with pytest.raises(CaseTimeout, match=r"did not finish within 0\.2 s"):
            driver.run(slow(), timeout=0.2)
        assert cleaned.is_set() and time.monotonic() - started < 5
    finally:
        driver.close()
        driver.close()
    assert driver.closed


# --- the recorder's on-the-fly checks (no server: handlers are called as python-socketio would) -


def _recorder(max_batch: int | None = None) -> Recorder:
    recorder = Recorder("c1", EventLog(), max_batch)
    recorder.connected = True
    return recorder


def _messages(channel: str, *offsets: int, epoch: str = "e") -> dict[str, Any]:
    return {
        "channel": channel,
        "epoch": epoch,
        "messages": [{"offset": o, "id": str(o), "ts": 1, "data": o} for o in offsets],
    }


def _subscribed(recorder: Recorder, channel: str, start: int = 1) -> None:
    recorder.on_subscribed({"channel": channel, "epoch": "e", "from": start, "head": start - 1})


def _violations(recorder: Recorder) -> list[str | None]:
    return [v.clause for v in recorder.log.violations]


async def test_a_consecutive_stream_is_clean() -> None:
    recorder = _recorder()
    _subscribed(recorder, "a")
    recorder.on_messages(_messages("a", 1, 2))
    recorder.on_messages(_messages("a", 3))
    assert recorder.book.stream("a").offsets == [1, 2, 3] and _violations(recorder) == []


@pytest.mark.parametrize(
    ("batches", "clause"),
    [([[2]], "ORD-1"), ([[1, 2], [4]], "ORD-2"), ([[1, 2], [2, 3]], "ORD-3"), ([[1, 3]], "ORD-2")],
)
async def test_order_violations_are_recorded(batches: list[list[int]], clause: str) -> None:
    recorder = _recorder()
    _subscribed(recorder, "a")
    for batch in batches:
        recorder.on_messages(_messages("a", *batch))
    assert _violations(recorder) == [clause]


async def test_epoch_batch_size_and_schema_violations() -> None:
    recorder = _recorder(max_batch=2)
    _subscribed(recorder, "a")
    recorder.on_messages(_messages("a", 1, 2, 3, epoch="other"))
    assert _violations(recorder) == ["DLV-1", "DLV-2"]
    recorder.on_messages({"channel": "a", "epoch": "e", "messages": []})
    recorder.on_messages({"channel": "a", "epoch": "e", "messages": [{"offset": 4}]})
    assert _violations(recorder)[2:] == ["DLV-1", "MSG-1"]


async def test_messages_outside_a_subscription_are_recorded() -> None:
    recorder = _recorder()
    recorder.on_messages(_messages("never", 1))
    _subscribed(recorder, "a")
    recorder.book.end("a", "unsubscribe", seq=len(recorder.log.entries))
    recorder.on_messages(_messages("a", 1))
    _subscribed(recorder, "b")
    recorder.on_unsubscribed({"channel": "b", "reason": "revoked"})
    recorder.on_messages(_messages("b", 1))
    assert _violations(recorder) == ["CON-4", "UNS-3", "UNS-6"]
    recorder.connected = False  # in flight after our own disconnect: not the server's fault
    recorder.on_messages(_messages("never", 2))
    assert len(_violations(recorder)) == 3


async def test_messages_before_the_subscribe_reply_break_sub_13() -> None:
    recorder = _recorder()
    op = recorder.log.invoke("c1", "replay:subscribe", channel="a", payload={"channel": "a"})
    pending = recorder.awaiting(op, "replay:subscribe", "a", {"channel": "a"})
    recorder.on_messages(_messages("a", 1))
    reply = {"ok": True, "channel": "a", "epoch": "e", "from": 1, "head": 1}
    recorder.on_reply(pending, (reply,))
    assert _violations(recorder) == ["SUB-13"]
    span = recorder.book.spans.live("a")
    assert span is not None and span.offsets == [1] and span.origin == "reply"
    assert pending.future.result() == (reply,)


async def test_invalid_replies_break_evt_1() -> None:
    recorder = _recorder()
    for reply in [({"ok": True, "channel": "a"},), ("a", "b")]:
        op = recorder.log.invoke("c1", "replay:subscribe", channel="a", payload={})
        pending = recorder.awaiting(op, "replay:subscribe", "a", {})
        recorder.on_reply(pending, reply)
    assert _violations(recorder) == ["EVT-1", "EVT-1"]


def test_emit_data_sends_exactly_the_arguments() -> None:
    assert emit_data(()) is None
    assert emit_data(({"a": 1},)) == {"a": 1}
    assert emit_data(((1, 2),)) == [1, 2]
    assert emit_data((1, 2)) == (1, 2)


# --- grading and reports ------------------------------------------------------------------------

SPEC = textwrap.dedent(
    """\
    ## 1. Things
    - `(AAA-1)` A server MUST do one.
    - `(AAA-2)` A server SHOULD do two.
    - `(AAA-3)` *[feature: history]* A server MUST do three.
    - `(AAA-4)` *[internal]* A server MUST do four.
    - `(AAA-5)` A server MUST do five.
    - `(AAA-6)` A server MUST do six.
    - `(AAA-7)` A server MUST do seven.
    """
)


def _graded(results: list[CaseResult], features: tuple[str, ...] = ()) -> dict[str, Any]:
    return {v.id: v for v in grade(clauses.parse(SPEC), results, features)}


def test_grading_per_clause() -> None:
    results = [
        CaseResult("t::one", ("AAA-1",)),
        CaseResult(
            "t::two",
            ("AAA-2",),
            outcome=FAILED,
            strict=False,
            failure={"clause": "AAA-2", "clauses": ["AAA-2"], "expected": "", "received": ""},
        ),
        CaseResult("t::three", ("AAA-3",), outcome="skipped", reason="not claimed: feature x"),
        CaseResult("t::five", ("AAA-5",), outcome="skipped", reason="not claimed: durable=true"),
        CaseResult(
            "t::six",
            ("AAA-6",),
            outcome=FAILED,
            failure={"clause": "AAA-1", "clauses": ["AAA-1"], "expected": "", "received": ""},
        ),
    ]
    graded = _graded(results)
    assert graded["AAA-1"].status == FAILED and graded["AAA-1"].cases == ["t::six"]
    assert graded["AAA-2"].status == FAILED and not graded["AAA-2"].strict
    assert graded["AAA-3"].status == NOT_CLAIMED  # its feature is not advertised
    assert graded["AAA-4"].status == NOT_COVERED and graded["AAA-4"].note == "internal"
    assert graded["AAA-5"].status == NOT_CLAIMED and "durable" in graded["AAA-5"].note
    # t::six failed on AAA-1, which its failure names: it decided nothing about AAA-6.
    assert graded["AAA-6"].status == NOT_COVERED and graded["AAA-6"].cases == ["t::six"]
    assert graded["AAA-6"].note == "not reached: failed first on AAA-1"
    assert graded["AAA-7"].status == NOT_COVERED
    assert _graded(results[:1], ("history",))["AAA-1"].status == PASSED
    assert _graded(results[:1], ("history",))["AAA-3"].status == NOT_COVERED


def test_a_failure_naming_no_clause_is_an_error_that_decides_nothing() -> None:
    crash = {"clause": None, "clauses": [], "expected": "the case to complete", "received": ""}
    results = [
        CaseResult(
            "t::crash", ("AAA-1", "AAA-6"), outcome=ERROR, reason="KeyError: 'k'", failure=crash
        ),
        CaseResult("t::other", ("AAA-6",)),
    ]
    assert results[0].failed_clauses == () and results[0].unreached == ("AAA-1", "AAA-6")
    graded = _graded(results)
    # No finding named AAA-1: the crash decides nothing about it, and fails nothing.
    assert graded["AAA-1"].status == NOT_COVERED and graded["AAA-1"].cases == ["t::crash"]
    assert graded["AAA-1"].note == "not reached (case errored: KeyError: 'k')"
    assert graded["AAA-6"].status == PASSED and graded["AAA-6"].cases == ["t::other"]
    # Whatever outcome was recorded, a failure naming no clause fails no clause.
    legacy = CaseResult("t::legacy", ("AAA-1",), outcome=FAILED, failure=crash)
    assert _graded([legacy])["AAA-1"].status == NOT_COVERED


def test_a_setup_step_failure_leaves_the_cases_own_clauses_not_reached() -> None:
    """The issue's case: a retention PUT refused in the setup of a RET-5 case fails RET-1;
    RET-5, which the case never reached, is not failed (another case may pass it)."""
    step = {"clause": "RET-1", "clauses": ["RET-1"], "expected": "HTTP 200", "received": "403"}
    stopped = CaseResult("t::ret5", ("RET-1", "RET-5"), outcome=FAILED, failure=step)
    graded = {v.id: v for v in grade(clauses.load(), [stopped], ("retention",))}
    assert graded["RET-1"].status == FAILED and graded["RET-1"].cases == ["t::ret5"]
    assert graded["RET-5"].status == NOT_COVERED
    assert graded["RET-5"].note == "not reached: failed first on RET-1"
    passing = CaseResult("t::other", ("RET-5",))
    graded = {v.id: v for v in grade(clauses.load(), [stopped, passing], ("retention",))}
    assert graded["RET-5"].status == PASSED and graded["RET-5"].cases == ["t::other"]


def test_a_clause_named_by_an_also_finding_fails_even_uncited() -> None:
    found = ConformanceFailure("AAA-1", "x", "y", others=[ConformanceFailure("AAA-5", "u", "v")])
    result = CaseResult("t::one", ("AAA-1", "AAA-7"), outcome=FAILED, failure=failure_dict(found))
    graded = _graded([result])
    assert graded["AAA-1"].status == FAILED and graded["AAA-5"].status == FAILED
    assert graded["AAA-5"].cases == ["t::one"]
    assert graded["AAA-7"].note == "not reached: failed first on AAA-1, AAA-5"


def test_a_named_failure_leaves_the_other_cited_clauses_to_other_cases() -> None:
    named = {"clause": "AAA-2", "clauses": ["AAA-2"], "expected": "", "received": ""}
    results = [
        CaseResult("t::should", ("AAA-1", "AAA-2"), outcome=FAILED, failure=named),
        CaseResult("t::passes", ("AAA-1",)),
    ]
    assert results[0].failed_clauses == ("AAA-2",)
    graded = _graded(results)
    assert graded["AAA-1"].status == PASSED and graded["AAA-1"].cases == ["t::passes"]
    assert graded["AAA-2"].status == FAILED and not graded["AAA-2"].strict
    assert not is_strict(results[0].failed_clauses, {c.id: c for c in clauses.parse(SPEC)})


def test_strictness_follows_the_strongest_clause() -> None:
    catalog = {c.id: c for c in clauses.parse(SPEC)}
    assert is_strict(["AAA-1", "AAA-2"], catalog)
    assert not is_strict(["AAA-2"], catalog)


def test_reports_are_written_as_json_and_markdown(tmp_path: Path) -> None:
    paths = (Path("out/r.json"), Path("out/r.md"), Path("out/r.badge.json"))
    assert report_paths("out/r") == paths == report_paths("out/r.md")
    failure = {
        "clause": "AAA-1",
        "clauses": ["AAA-1"],
        "expected": "offset 4",
        "received": "offset 5 | odd",
        "also": [],
        "log": ["#1 +0.001s c1 event replay:messages"],
    }
    results = [CaseResult("t::one", ("AAA-1",), outcome=FAILED, failure=failure)]
    verdicts = grade(clauses.parse(SPEC), results, ())
    info = {"implementation": {"name": "impl", "version": "1"}, "features": ["sessions"]}
    document = render_json({"description": "http://x", "info": info}, verdicts, results)
    json_path, md_path, badge_path = write_report(tmp_path / "sub" / "report.json", document)
    assert json.loads(badge_path.read_text()) == {
        "schemaVersion": 1,
        "label": "replay/1",
        "message": "0/1 MUST",  # AAA-1 failed; the SHOULD AAA-2 is not counted
        "color": "red",
    }
    loaded = json.loads(json_path.read_text())
    assert loaded["summary"]["failed_must"] == ["AAA-1"]
    assert loaded["failures"][0]["received"] == "offset 5 | odd"
    markdown = md_path.read_text()
    assert "### t::one" in markdown and "offset 5 \\| odd" in markdown
    assert "#1 +0.001s c1 event replay:messages" in markdown
    assert render_markdown(document) == markdown
    lines = terminal_lines(verdicts)
    assert lines[0].startswith("0 passed, 1 failed") and lines[1] == "failed MUST clauses: AAA-1"


def test_an_errored_case_is_reported_as_an_error_with_its_clauses_not_reached() -> None:
    crash = {
        "clause": None,
        "clauses": [],
        "expected": "the case to complete",
        "received": "KeyError: 'k'",
        "also": [],
        "log": [],
    }
    named = {"clause": "AAA-1", "clauses": ["AAA-1"], "expected": "4", "received": "5"}
    results = [
        CaseResult("t::crash", ("AAA-5",), outcome=ERROR, reason="KeyError: 'k'", failure=crash),
        CaseResult("t::one", ("AAA-1", "AAA-6"), outcome=FAILED, failure=named),
    ]
    verdicts = grade(clauses.parse(SPEC), results, ())
    document = render_json({"description": "http://x", "info": {}}, verdicts, results)
    assert document["summary"]["cases"] == {"passed": 0, "failed": 1, "error": 1, "skipped": 0}
    assert document["summary"]["errors"] == ["t::crash"]
    assert document["summary"]["failed_must"] == ["AAA-1"]
    failures = {f["case"]: f for f in document["failures"]}
    assert failures["t::crash"]["outcome"] == ERROR
    assert failures["t::crash"]["not_reached"] == ["AAA-5"]
    assert failures["t::one"]["not_reached"] == ["AAA-6"]
    markdown = render_markdown(document)
    assert "### t::crash (error: the suite could not judge it; fails the run)" in markdown
    assert "- not reached: AAA-6" in markdown
    lines = terminal_lines(verdicts, results)
    assert lines[-1] == "errored cases (no finding, no clause decided; the run fails): crash"


# --- the plugin end to end, against a stub target -----------------------------------------------

INNER_CASES = """
from conformance import case, expect
from conformance.eventlog import active_log


@case("INF-1")
async def test_must_passes(target):
    info = await target.backend.info()
    expect(info["protocol"] == "replay/1", clause="INF-1", expected="replay/1", received=info)


@case("CHN-2")
async def test_must_fails(target):
    expect(False, clause="CHN-2", expected="exact names", received="folded")


@case("MSG-5")
async def test_should_fails(target):
    expect(False, clause="MSG-5", expected="ts not decreasing", received="it decreased")


@case("HIS-4")
async def test_unclaimed_feature(target):
    raise AssertionError("must not run")


@case("DUR-2", durable=True)
async def test_unclaimed_durability(target):
    raise AssertionError("must not run")


@case("INF-2")
async def test_violation_in_passing(target):
    active_log.get().violation("EVT-1", "a valid reply", "an invalid one")


@case("CHN-3")
async def test_crashes(target):
    raise KeyError("a bug of the case, not a finding")
"""

INNER_CONFTEST = """
import pytest
from conformance.plugin import session_target


@pytest.fixture(scope="session")
def target(request):
    return session_target(request.config)
"""

STUB_INFO = {
    "protocol": "replay/1",
    "implementation": {"name": "stub", "version": "0"},
    "namespace": "/",
    "durable": False,
    "features": ["sessions"],
    "limits": {
        "max_payload_bytes": 100,
        "max_batch": 10,
        "max_history_limit": 10,
        "idempotency_window_s": 60,
    },
}


async def _stub_target() -> web.AppRunner:
    async def info(request: web.Request) -> web.Response:
        return web.json_response(STUB_INFO)

    async def delete(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer stub-key":
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "no"}}, status=401
            )
        return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)

    app = web.Application()
    app.router.add_get("/replay/v1/info", info)
    app.router.add_delete("/replay/v1/sessions/{id}", delete)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def _run_against_a_stub(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """Run the inner cases against the stub target: exit status, output and JSON report."""
    (tmp_path / "test_inner.py").write_text(INNER_CASES)
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    runner = await _stub_target()
    try:
        port = runner.addresses[0][1]
        command = [
            sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-rA",
            "--target", f"http://127.0.0.1:{port}", "--api-key", "stub-key",
            "--replay-report", str(tmp_path / "report"), *args,
        ]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    finally:
        await runner.cleanup()
    report = json.loads((tmp_path / "report.json").read_text())
    return done.returncode, done.stdout + done.stderr, report


async def test_grading_end_to_end_against_a_stub(tmp_path: Path) -> None:
    status, out, report = await _run_against_a_stub(tmp_path)
    assert status == 1, out
    assert "3 failed, 1 passed, 2 skipped, 1 xfailed" in out
    assert "not claimed: feature history" in out and "not claimed: durable=true" in out
    assert "failed MUST clauses: CHN-2, EVT-1" in out  # INF-2's case failed first on EVT-1
    assert "failed SHOULD clauses (not failing the run): MSG-5" in out
    assert "errored cases (no finding, no clause decided; the run fails): test_crashes" in out
    statuses = {c["id"]: c["status"] for c in report["clauses"]}
    assert statuses["INF-1"] == "passed" and statuses["HIS-4"] == "not claimed"
    assert statuses["DUR-2"] == "not claimed" and statuses["API-3"] == "not covered"
    assert statuses["INF-2"] == "not covered"
    assert statuses["CHN-3"] == "not covered"  # the crash named no clause: it fails none
    failures = {f["case"].split("::")[-1]: f for f in report["failures"]}
    assert failures["test_must_fails"]["received"] == "folded"
    assert failures["test_violation_in_passing"]["clause"] == "EVT-1"
    assert not failures["test_should_fails"]["strict"]
    assert failures["test_crashes"]["outcome"] == "error"
    assert (tmp_path / "report.md").read_text().startswith("# replay/1 conformance report")


async def test_an_errored_case_alone_still_fails_the_run(tmp_path: Path) -> None:
    """A target can never pass by crashing a case: an error decides no clause, yet the run
    fails, with a non-zero exit status."""
    status, out, report = await _run_against_a_stub(tmp_path, "-k", "must_passes or crashes")
    assert status == 1, out
    assert "1 failed, 1 passed" in out
    assert report["summary"]["failed_must"] == [] and report["summary"]["errors"]
    note = next(c["note"] for c in report["clauses"] if c["id"] == "CHN-3")
    assert note.startswith("not reached (case errored: KeyError"), note


# --- the backend client's own checks ------------------------------------------------------------


async def test_a_queried_history_read_is_checked_against_its_schema() -> None:  # HIS-1
    """A read with ``?from=&epoch=`` is the same route as one without: its body is checked."""

    async def history(request: web.Request) -> web.Response:
        return web.json_response({"channel": "c", "messages": "not a list"})

    app = web.Application()
    app.router.add_get("/replay/v1/channels/{channel}/messages", history)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log = EventLog()
    try:
        async with aiohttp.ClientSession() as http:
            backend = Backend(http, f"http://127.0.0.1:{port}", "key", log)
            for query in ("", "?from=2&epoch=e1&limit=5"):
                await backend.request("GET", f"/replay/v1/channels/c/messages{query}")
    finally:
        await runner.cleanup()
    assert [v.clause for v in log.violations] == ["HIS-1", "HIS-1"]


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, {"ok": False, "error": {"code": "bad_request", "message": "no retention"}}),
        (403, {"error": {"code": "forbidden", "message": "no retention"}}),
    ],
)
async def test_a_refused_setup_step_fails_its_own_clause_and_nothing_else(
    status: int, answer: dict[str, Any]
) -> None:
    """The issue's RET-5: a retention PUT answered 200 with an error object was taken for a
    success (its schema violation only recorded), so the case went on and failed RET-5 on the
    PUT's defect. The step fails RET-1 at once now, as one finding, whatever the refusal."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_put("/replay/v1/channels/{channel}/retention", refuse)
    runner, url = await _serve(app)
    try:
        async with aiohttp.ClientSession() as http:

            async def body() -> None:
                backend = Backend(http, url, "key", current().log)
                settings = await backend.set_retention("room:a", max_messages=2)
                expect(
                    settings.get("max_messages") == 2,
                    clause="RET-5",
                    expected="max_messages 2",
                    received=settings,
                )

            with pytest.raises(ConformanceFailure) as raised:
                await run_case(CaseSpec("t.ret5", ("RET-1", "RET-5")), body, 10)
    finally:
        await runner.cleanup()
    assert raised.value.clauses == ["RET-1"], str(raised.value)
    assert raised.value.others == []


async def test_a_refused_connect_the_case_relied_on_fails_con_1() -> None:
    async def body() -> None:
        raise ConnectRefused({"message": "unauthorized"})  # what client.connect() raises

    with pytest.raises(ConformanceFailure) as raised:
        await run_case(CaseSpec("t.sub7", ("SUB-7",)), body, 5)
    assert raised.value.clauses == ["CON-1"] and "unauthorized" in raised.value.received
