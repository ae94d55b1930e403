"""The malformed-input part of the reliability campaign: its CI slice through the real command,
and its pure pieces (corpus, mutations, judges, ledger) on purpose-made inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from reliability_runs import run_part

from bench.reliability import PARTS
from bench.reliability.fuzz_corpus import draw, flat_schema
from bench.reliability.fuzz_fire import TargetTally
from bench.reliability.fuzz_http_judge import HttpRequest, expect_http, judge_http
from bench.reliability.fuzz_judge import Limits, expect_event, ijson_problem, judge_event
from bench.reliability.fuzz_ledger import HeadLedger
from bench.reliability.fuzz_mutations import STRANGE_VALUES, mutate
from bench.reliability.fuzz_requests import EVENT_SOURCES, ROUTE_SOURCES, event_call
from bench.reliability.malformed_input import share_problems
from conformance.schemas import validate

KEY = "k" * 32
LIMITS = Limits()
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def test_malformed_input_for_30_seconds(tmp_path: Path) -> None:
    result = run_part("malformed-input", 30, tmp_path)
    counts = result["counts"]
    assert result["anomalies"] == []
    for target in [*EVENT_SOURCES, *ROUTE_SOURCES]:
        key = target.replace("replay:", "").replace(" ", "_").lower()
        # 300 and more each on a quiet machine, 160 at a load average of 12 on two cores
        assert counts[f"{key}.sent"] >= 60, (target, counts)
        assert counts[f"{key}.valid"] >= 6 and counts[f"{key}.invalid"] >= 6, (target, counts)
        assert counts[f"{key}.distinct"] >= 30, (target, counts)
    assert counts["publish.bad_request"] > 0 and counts["publish.ok"] > 0, counts
    assert counts["post_messages.ok"] > 0 and counts["post_batches.bad_request"] > 0, counts
    assert counts["channels_read_back"] > 10 and counts["tracebacks"] == 0, counts


def test_the_registry_names_the_part() -> None:
    assert "malformed-input" in PARTS


def test_the_corpus_is_schema_valid_varied_and_reproducible() -> None:
    drawn = draw("subscribe", 40, 7, 20.0)
    assert drawn == draw("subscribe", 40, 7, 20.0)
    assert len(drawn) == 40 and all(validate("subscribe-request", v) == [] for v in drawn)
    assert len({json.dumps(v, sort_keys=True) for v in drawn}) > 20
    assert "$ref" not in json.dumps(flat_schema("session"))


def test_mutations_make_both_valid_and_invalid_payloads() -> None:
    rng = random.Random(3)
    base = {"channel": "room", "from": "beginning"}
    verdicts = [expect_event("replay:subscribe", (mutate(rng, base, 1)[0],), LIMITS).valid
                for _ in range(300)]  # fmt: skip
    assert 0.01 < sum(verdicts) / len(verdicts) < 0.5  # a dropped "from" is still valid
    calls = [event_call("replay:history", {"channel": "a"}, rng) for _ in range(300)]
    assert {len(c.args) for c in calls} == {0, 1, 2}


def test_the_event_judge_refuses_what_the_spec_refuses() -> None:
    good = {"channel": "room", "from": 1, "epoch": "e"}
    assert expect_event("replay:subscribe", (good,), LIMITS).valid
    for args in [(), (good, good), (b"x",), ([good],), ({**good, "x": 1},),
                 ({"channel": "room", "from": 1},), ({**good, "epoch": "\ud800"},)]:  # fmt: skip
        assert expect_event("replay:subscribe", args, LIMITS).outcomes == {"bad_request"}, args
    big = {"channel": "a", "data": "x" * 70_000}
    assert expect_event("replay:publish", (big,), LIMITS).outcomes == {"payload_too_large"}
    deep: object = 1
    for _ in range(70):
        deep = [deep]
    assert "bad_request" in expect_event("replay:publish", ({"channel": "a", "data": deep},),
                                         LIMITS).outcomes  # fmt: skip
    assert ijson_problem({"a": float("nan")}) and ijson_problem([2**53])
    assert ijson_problem("\ud800\udfff") is None  # a pair, once written as JSON


def test_judge_event_names_a_wrong_code_and_a_broken_reply() -> None:
    refused = expect_event("replay:unsubscribe", ({"channel": 5},), LIMITS)
    error = {"ok": False, "error": {"code": "not_subscribed", "message": "no"}}
    assert judge_event("replay:unsubscribe", refused, error)[1] is not None
    bad = {"ok": False, "error": {"code": "bad_request", "message": "no"}}
    assert judge_event("replay:unsubscribe", refused, bad) == ("bad_request", None)
    assert judge_event("replay:unsubscribe", refused, {"ok": "yes"})[1] is not None


def test_the_http_judge_follows_the_check_order() -> None:
    def outcomes(request: HttpRequest) -> set[str]:
        return set(expect_http(request, KEY, LIMITS).outcomes)

    path = "/replay/v1/channels/room/messages"
    assert outcomes(HttpRequest("POST", path, AUTH, b'{"data": 1}')) == {"ok"}
    assert outcomes(HttpRequest("PATCH", path, AUTH, b"{")) == {"not_found"}
    assert outcomes(HttpRequest("POST", path, {}, b"{")) == {"unauthorized"}
    no_type = {"Authorization": f"bEaReR   {KEY}"}
    assert outcomes(HttpRequest("POST", path, no_type, b'{"data": 1}')) == {"bad_request"}
    huge = b'{"data": 1}' + b" " * LIMITS.body_limit
    assert outcomes(HttpRequest("POST", path, AUTH, huge)) == {"payload_too_large"}
    for body in [b'{"data": 1, "data": 2}', b'{"data": NaN}', b'{"data": "\\ud800"}', b"\xff"]:
        assert outcomes(HttpRequest("POST", path, AUTH, body)) == {"bad_request"}, body
    bad_channel = "/replay/v1/channels/a%20b/messages"
    assert outcomes(HttpRequest("POST", bad_channel, AUTH, b'{"data": 1}')) == {"bad_request"}
    empty = "/replay/v1/channels//messages"
    assert outcomes(HttpRequest("POST", empty, AUTH, b'{"data": 1}')) == {"not_found",
                                                                         "bad_request"}  # fmt: skip
    history = HttpRequest("GET", path, AUTH, query=[("from", "1")])
    assert outcomes(history) == {"bad_request"}  # HIS-9: no epoch
    assert outcomes(HttpRequest("GET", "/replay/v1/info", {})) == {"ok"}


def test_judge_http_checks_status_code_and_schema() -> None:
    request = HttpRequest("POST", "/replay/v1/channels/room/messages", AUTH, b'{"data": 1}')
    expectation = expect_http(request, KEY, LIMITS)
    stored = {"channel": "room", "offset": 1, "epoch": "e", "id": "i", "duplicate": False}
    assert judge_http(request, expectation, 201, json.dumps(stored).encode()) == ("ok", None)
    assert judge_http(request, expectation, 500, b"")[1] is not None
    assert judge_http(request, expectation, 201, b"{}")[1] is not None
    error = {"error": {"code": "bad_request", "message": "no"}}
    assert judge_http(request, expectation, 400, json.dumps(error).encode())[1] is not None
    assert judge_http(request, expectation, 409, json.dumps(error).encode())[1] is not None


def test_the_ledger_finds_a_stored_failure_a_gap_and_a_duplicate_offset() -> None:
    ledger = HeadLedger()
    ledger.success("a", 1, "x", duplicate=False)
    ledger.success("a", 1, "x", duplicate=True)
    ledger.failure("a")
    ledger.failure("not a channel")
    assert ledger.channels() == ["a"]
    assert ledger.check("a", 1, [{"offset": 1, "id": "x"}]) == []
    assert "head 2" in ledger.check("a", 2, [])[0]  # a refused publish stored something
    assert "holds id" in ledger.check("a", 1, [{"offset": 1, "id": "y"}])[0]
    ledger.success("b", 2, "z", duplicate=False)
    assert any("gap" in p for p in ledger.check("b", 1, []))
    ledger.success("b", 2, "w", duplicate=False)
    assert ledger.problems and "acknowledged twice" in ledger.problems[0]


def test_share_problems_fail_a_target_without_valid_or_invalid_payloads() -> None:
    assert share_problems({"t": TargetTally(sent=100, valid=50)}) == []
    assert share_problems({"t": TargetTally(sent=100, valid=5)})
    assert share_problems({"t": TargetTally(sent=100, valid=95)})
    assert share_problems({"t": TargetTally()})


def test_mutations_never_share_or_change_their_stock_of_values() -> None:
    stock = json.dumps(STRANGE_VALUES, default=repr)
    rng = random.Random(11)
    for _ in range(3000):
        value, _ = mutate(rng, {"channel": "a", "data": {"b": [1, {"c": "d"}]}}, 3)
        json.dumps(value, default=repr)  # no cycle
    assert json.dumps(STRANGE_VALUES, default=repr) == stock
