"""Payload validation into typed requests (EVT-3, TRN-3, TRN-5, LIM-3, LIM-4, SES-6, SES-7)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from reference.core import ijson, payloads
from reference.core.errors import BadRequest, PayloadTooLarge
from reference.core.model import Action


@pytest.mark.parametrize(
    "args",
    [
        (),  # TRN-3: no argument
        ({"channel": "a"}, {"channel": "b"}),  # several
        ("a string",),  # not an object
        ([{"channel": "a"}],),
        ({},),  # missing channel
        ({"channel": "a", "unknown": 1},),  # unknown member
        ({"channel": "a b"},),  # CHN-1
        ({"channel": "room\n"},),  # ECMAScript `$`: no trailing newline
        ({"channel": "x" * 201},),
        ({"channel": "a", "from": 0},),
        ({"channel": "a", "from": 2**53},),
        ({"channel": "a", "from": 1.5},),  # TRN-5
        ({"channel": "a", "from": "first"},),
        ({"channel": "a", "from": True},),
        ({"channel": "a", "allow_truncation": "yes"},),
        ({"channel": "a", "epoch": ""},),
    ],
)
def test_malformed_subscribe_is_bad_request(args: tuple[object, ...]) -> None:
    with pytest.raises(BadRequest):
        payloads.parse_subscribe(args)


def test_subscribe_parses_and_normalises_integral_numbers() -> None:  # TRN-5
    request = payloads.parse_subscribe(({"channel": "room:1", "from": 5.0, "epoch": "e"},))
    assert request == payloads.SubscribeRequest("room:1", 5, "e", False)
    assert type(request.start) is int


def test_error_messages_never_echo_huge_values() -> None:
    with pytest.raises(BadRequest) as raised:
        payloads.parse_subscribe(({"channel": "x" * 100_000},))
    assert len(raised.value.message) < 200


def test_unknown_members_are_named() -> None:
    with pytest.raises(BadRequest, match="unknown member"):
        payloads.parse_unsubscribe(({"channel": "a", "offset": 1},))


def test_publish_measures_compact_utf8_json() -> None:  # LIM-3, LIM-4
    exact = payloads.parse_publish(({"channel": "a", "data": "é" * 3},), max_payload_bytes=8)
    assert exact.payload.encoded == '"ééé"' and exact.payload.size == 8
    with pytest.raises(PayloadTooLarge):
        payloads.parse_publish(({"channel": "a", "data": "é" * 4},), max_payload_bytes=8)
    compact = payloads.encode_payload({"a": [1, 2]}, 100)
    assert compact.encoded == '{"a":[1,2]}'


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("[1.0,1.0,1.0]", 7),  # JCS writes "[1,1,1]"; json.dumps "[1.0,1.0,1.0]", 13 bytes
        ("[1e16,-0.0]", 21),  # "[10000000000000000,0]"; json.dumps "[1e+16,-0.0]", 12 bytes
    ],
)
def test_publish_measures_numbers_as_ecmascript_writes_them(text: str, size: int) -> None:
    body = ijson.loads(f'{{"channel":"a","data":{text}}}')  # LIM-3, LIM-4
    assert payloads.parse_publish((body,), max_payload_bytes=size).payload.size == size
    with pytest.raises(PayloadTooLarge):
        payloads.parse_http_publish("a", {"data": body["data"]}, max_payload_bytes=size - 1)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_json_numbers_are_rejected(value: float) -> None:
    with pytest.raises(BadRequest):
        payloads.encode_payload({"x": value}, 1000)


def test_deeply_nested_data_is_a_bad_request_not_a_crash() -> None:
    nested: object = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(BadRequest):
        payloads.encode_payload(nested, 10**9)


def test_session_request() -> None:
    request = payloads.parse_session(
        {
            "client_id": "u1",
            "grants": [{"channels": "room:*", "actions": ["subscribe", "history"]}],
            "subscribe": [{"channel": "room:1", "from": 3.0, "epoch": "e1"}],
            "ttl_s": 60,
        },
        max_ttl_s=3600,
    )
    assert request.session_id is None
    assert request.grants[0].actions == frozenset({Action.SUBSCRIBE, Action.HISTORY})
    assert (request.subscribe[0].start, request.subscribe[0].epoch) == (3, "e1")
    assert request.ttl_s == 60


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "u", "grants": [], "ttl_s": 3601},  # SES-6
        {"client_id": "u", "grants": [], "subscribe": [{"channel": "a"}, {"channel": "a"}]},
        {"client_id": "u", "grants": [], "subscribe": [{"channel": "a", "from": 3}]},  # AUT-7
        {"client_id": "u", "grants": [{"channels": "a*b", "actions": ["subscribe"]}]},
        {"client_id": "u", "grants": [{"channels": "a", "actions": []}]},
        {"client_id": "u", "grants": [{"channels": "a", "actions": ["read"]}]},
        # CHN-1: a final line feed, which Python's `$` alone would let through
        {"client_id": "u", "grants": [{"channels": "room:*\n", "actions": ["subscribe"]}]},
        {"client_id": "u", "grants": [{"channels": "room\n", "actions": ["subscribe"]}]},
        {"client_id": "u", "grants": [], "subscribe": [{"channel": "room\n"}]},
        {"client_id": "u", "grants": [], "session_id": "s1\n"},
        {"grants": []},
        [],
    ],
)
def test_bad_session_requests(body: object) -> None:
    with pytest.raises(BadRequest):
        payloads.parse_session(body, max_ttl_s=3600)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [(r"^[a-z]{1,9}$", "room\n"), (r"^[a-z]{0,9}\*$|^[a-z]{1,9}$", "room*\n")],
)
def test_schema_patterns_end_at_the_end_of_the_string(pattern: str, text: str) -> None:
    # ECMAScript's `$`, in every alternative: not Python's, which also matches before a final "\n".
    assert payloads._ecma_regex(pattern).search(text.rstrip("\n"))
    assert payloads._ecma_regex(pattern).search(text) is None


def test_retention_distinguishes_omitted_from_null() -> None:  # RET-1
    update = payloads.parse_retention({"max_messages": None})
    assert update.sets_max_messages() and update.max_messages is None
    assert not update.sets_max_age()
    with pytest.raises(BadRequest):
        payloads.parse_retention({})


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ({}, (None, None, None)),
        ({"from": "beginning"}, ("beginning", None, None)),
        ({"from": "beginning", "epoch": "e1"}, ("beginning", "e1", None)),
        ({"from": "7", "epoch": "e1", "limit": "20"}, (7, "e1", 20)),
    ],
)
def test_history_query(query: dict[str, str], parsed: tuple[object, object, object]) -> None:
    read = payloads.parse_http_history("room:1", query)
    assert (read.channel, read.start, read.epoch, read.limit) == ("room:1", *parsed)


@pytest.mark.parametrize(
    "query",
    [
        {"from": "0", "epoch": "e1"},
        {"from": "-1", "epoch": "e1"},
        {"from": "1e3", "epoch": "e1"},
        {"limit": "x"},
        {"from": "٣", "epoch": "e1"},
        {"page": "1"},
        {"from": "7"},  # an offset without its epoch (EPO-6, HIS-9)
        {"from": "7", "epoch": ""},
        {"from": "7", "epoch": "e" * 65},
    ],
)
def test_bad_history_query(query: dict[str, str]) -> None:  # HIS-2, HIS-9
    with pytest.raises(BadRequest):
        payloads.parse_http_history("room:1", query)


@pytest.mark.parametrize("name", ["from", "epoch", "limit"])
def test_a_repeated_query_parameter_is_refused(name: str) -> None:  # HIS-13
    query = MultiDict([("from", "1"), ("epoch", "e1"), ("limit", "5"), (name, "2")])
    with pytest.raises(BadRequest, match="more than once"):
        payloads.parse_http_history("room:1", query)


def test_channel_check() -> None:  # CHN-1
    assert payloads.check_channel("a/b:c@d.e-f_g") == "a/b:c@d.e-f_g"
    for bad in ("", "a b", "ü", "x" * 201, "a\n"):
        with pytest.raises(BadRequest):
            payloads.check_channel(bad)


@pytest.mark.parametrize(
    "text",
    [
        r'{"channel":"a","data":"\ud800"}',  # MSG-6
        r'{"channel":"a","data":1,"id":"\udc00"}',
        '{"channel":"a","data":{"k":1,"k":2}}',  # MSG-7
        '{"channel":"a","data":1,"data":2}',
        '{"channel":"a","data":123456789012345678901234567890}',  # MSG-8
        '{"channel":"a","data":1e400}',
    ],
)
def test_a_publish_that_is_not_i_json_is_bad_request(text: str) -> None:
    body = ijson.loads(text)
    with pytest.raises(BadRequest):
        payloads.parse_publish((body,), 65536)
    http_body = {k: v for k, v in body.items() if k != "channel"}
    if isinstance(body, ijson.RepeatedMembers):
        http_body = ijson.RepeatedMembers(http_body)
    with pytest.raises(BadRequest):
        payloads.parse_http_publish("a", http_body, 65536)


def test_numbers_within_a_double_are_stored_as_doubles() -> None:  # MSG-9
    body = ijson.loads('{"channel":"a","data":[1.0000000000000001,1e2,1e-400,9007199254740991]}')
    request = payloads.parse_publish((body,), 65536)
    assert request.payload.encoded == "[1.0,100.0,0.0,9007199254740991]"
    assert request.payload.size == len("[1,100,0,9007199254740991]")  # LIM-3


def test_an_unsafe_integer_elsewhere_fails_its_schema() -> None:  # TRN-5, not internal
    body = ijson.loads('{"channel":"a","from":99999999999999999999,"epoch":"e"}')
    with pytest.raises(BadRequest):
        payloads.parse_subscribe((body,))


def test_encoding_a_lone_surrogate_is_bad_request_not_a_crash() -> None:
    with pytest.raises(BadRequest):
        payloads.encode_payload("\ud800", 65536)


_JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: both encoders must refuse them
    | st.text(st.characters(codec=None, exclude_categories=())),  # lone surrogates too
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_JSON_LIKE)
def test_the_orjson_shortcut_writes_what_json_writes(value: object) -> None:
    try:
        expected: str | None = payloads._COMPACT.encode(value)
    except ValueError:
        expected = None
    try:
        got: str | None = payloads._compact_text(value)
    except ValueError:
        got = None
    assert got == expected
