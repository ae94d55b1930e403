"""Self-checks of the replay/1 JSON Schemas (spec/schemas) and their examples (spec/examples).

Each schema must be a valid draft 2020-12 schema whose `$id` follows the file name, every
`$ref` must resolve inside the schema set, and every example must validate (valid/) or fail
(invalid/) against the schema its directory is named after: with Python's `jsonschema` here and
with ajv (ECMAScript, strict mode) through tests/node/check_schemas.mjs. Valid examples must also
keep the rules of the prose that no schema can say (they compare two values).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = ROOT / "spec" / "schemas"
EXAMPLES_DIR = ROOT / "spec" / "examples"
NODE_DIR = Path(__file__).parent / "node"

DRAFT_URI = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:socketio-replay:replay-1:"

# Every schema file (name without .json) -> the event, route or packet its description names.
EXPECTED_SCHEMAS: dict[str, str] = {
    "common": "$defs",
    "http-error": "/replay/v1/",
    "http-info-response": "`GET /replay/v1/info`",
    "http-session-request": "`POST /replay/v1/sessions`",
    "http-session-response": "`POST /replay/v1/sessions`",
    "http-publish-request": "`POST /replay/v1/channels/{channel}/messages`",
    "http-publish-response": "`POST /replay/v1/channels/{channel}/messages`",
    "http-batch-publish-request": "`POST /replay/v1/channels/{channel}/batches`",
    "http-batch-publish-response": "`POST /replay/v1/channels/{channel}/batches`",
    "http-history-response": "`GET /replay/v1/channels/{channel}/messages",
    "http-retention-request": "`PUT /replay/v1/channels/{channel}/retention`",
    "http-retention-response": "`PUT /replay/v1/channels/{channel}/retention`",
    "connect-auth": "CONNECT",
    "connect-error": "CONNECT_ERROR",
    "subscribe-request": "`replay:subscribe`",
    "subscribe-reply": "`replay:subscribe`",
    "unsubscribe-request": "`replay:unsubscribe`",
    "unsubscribe-reply": "`replay:unsubscribe`",
    "ack-request": "`replay:ack`",
    "ack-reply": "`replay:ack`",
    "publish-request": "`replay:publish`",
    "publish-reply": "`replay:publish`",
    "history-request": "`replay:history`",
    "history-reply": "`replay:history`",
    "error-reply": "`replay:subscribe`",
    "messages-event": "`replay:messages`",
    "subscribed-event": "`replay:subscribed`",
    "unsubscribed-event": "`replay:unsubscribed`",
}

COMMON_DEFS = {
    "channel",
    "offset",
    "head",
    "epoch",
    "message_id",
    "timestamp_ms",
    "message",
    "error",
    "error_code",
    "grant",
    "grant_pattern",
    "action",
    "truncated",
    "subscribe_from",
    "history_from",
}

# The 13 error codes of shared/protocol-brief.md, in its order.
BRIEF_ERROR_CODES = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "already_subscribed",
    "not_subscribed",
    "epoch_mismatch",
    "history_truncated",
    "offset_out_of_range",
    "payload_too_large",
    "rate_limited",
    "unavailable",
    "internal",
]

# Payloads a client or backend sends: strict (additionalProperties: false). `connect-auth` is
# the one exception: other Socket.IO middleware may read the auth object too.
STRICT_SCHEMAS = {name for name in EXPECTED_SCHEMAS if name.endswith("-request")}

# Line terminators before which some regex dialect's `$` also matches (Python's `re`, PCRE and
# .NET: "\n"; Java: all of them), so that a validator there accepts "room\n" by `pattern` alone.
LINE_TERMINATORS = ["\n", "\r", "\r\n", "\u0085", "\u2028", "\u2029"]

MIN_VALID_EXAMPLES = 2
MIN_INVALID_EXAMPLES = 3


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _schema_files() -> list[Path]:
    return sorted(SCHEMAS_DIR.glob("*.json"))


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Schema name (file name without .json) -> parsed schema."""
    return {path.stem: _load_json(path) for path in _schema_files()}


@cache
def _registry() -> Registry[Any]:
    resources = [
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in _schemas().values()
    ]
    return Registry().with_resources(resources)


def _validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator(_schemas()[schema_name], registry=_registry())


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (JSON pointer, object) for every JSON object inside a schema document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _example_files(kind: str) -> list[Path]:
    return sorted(EXAMPLES_DIR.glob(f"*/{kind}/*.json"))


def _example_id(path: Path) -> str:
    return path.relative_to(EXAMPLES_DIR).with_suffix("").as_posix()


SCHEMA_NAMES = sorted(EXPECTED_SCHEMAS)
VALID_EXAMPLES = _example_files("valid")
INVALID_EXAMPLES = _example_files("invalid")


# ---------------------------------------------------------------------------- schema set


def test_schema_files_are_exactly_the_expected_set() -> None:
    assert {path.stem for path in _schema_files()} == set(EXPECTED_SCHEMAS)
    unexpected = [
        path.name
        for path in SCHEMAS_DIR.iterdir()
        if path.suffix != ".json" and path.name != "README.md"
    ]
    assert unexpected == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = _schemas()[name]
    assert schema.get("$schema") == DRAFT_URI
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_id_matches_file_name(name: str) -> None:
    assert _schemas()[name]["$id"] == f"{ID_PREFIX}{name}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_has_title_and_description_naming_its_subject(name: str) -> None:
    schema = _schemas()[name]
    assert isinstance(schema.get("title"), str)
    assert schema["title"]
    assert isinstance(schema.get("description"), str)
    assert EXPECTED_SCHEMAS[name] in schema["description"]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_ref_resolves(name: str) -> None:
    schema = _schemas()[name]
    resolver = _registry().resolver(base_uri=schema["$id"])
    refs = [(pointer, node["$ref"]) for pointer, node in _walk(schema) if "$ref" in node]
    for pointer, ref in refs:
        # Cross-file references are absolute URNs; only same-document ones may be "#/...".
        assert ref.startswith(("#/", f"{ID_PREFIX}common#/")), f"{pointer}: {ref}"
        resolved = resolver.lookup(ref)
        assert isinstance(resolved.contents, dict), f"{pointer}: {ref}"


def test_common_holds_only_the_shared_defs() -> None:
    common = _schemas()["common"]
    assert set(common) <= {"$schema", "$id", "title", "description", "$defs"}
    assert set(common["$defs"]) == COMMON_DEFS
    # A grant only ever appears inside a request body, so it is strict like one.
    assert common["$defs"]["grant"]["additionalProperties"] is False


def test_error_codes_are_exactly_the_thirteen_of_the_brief() -> None:
    codes = _schemas()["common"]["$defs"]["error_code"]["enum"]
    assert len(codes) == len(set(codes))
    assert sorted(codes) == sorted(BRIEF_ERROR_CODES)
    assert len(codes) == 13


@pytest.mark.parametrize("name", sorted(STRICT_SCHEMAS))
def test_request_schemas_are_strict(name: str) -> None:
    objects = [
        (pointer, node) for pointer, node in _walk(_schemas()[name]) if node.get("type") == "object"
    ]
    assert objects
    for pointer, node in objects:
        assert node.get("additionalProperties") is False, pointer


@pytest.mark.parametrize("name", sorted(set(SCHEMA_NAMES) - STRICT_SCHEMAS - {"common"}))
def test_response_schemas_are_open(name: str) -> None:
    for pointer, node in _walk(_schemas()[name]):
        assert node.get("additionalProperties", True) is not False, pointer


@pytest.mark.parametrize("terminator", LINE_TERMINATORS, ids=ascii)
@pytest.mark.parametrize(
    ("definition", "name"),
    [("channel", "room:lobby"), ("grant_pattern", "room:lobby"), ("grant_pattern", "room:*")],
)
def test_a_final_line_terminator_is_rejected_whatever_the_regex_dialect(
    definition: str, name: str, terminator: str
) -> None:
    # CHN-1: "room\n" is no channel name. Whether `pattern` rejects it depends on the dialect's
    # `$`, so the definition must reject it without `pattern` too (its `not`).
    schema = dict(_schemas()["common"]["$defs"][definition])
    assert Draft202012Validator(schema).is_valid(name)
    assert not Draft202012Validator(schema).is_valid(name + terminator)
    del schema["pattern"]
    assert not Draft202012Validator(schema).is_valid(name + terminator)


def test_every_token_a_server_returns_is_a_token_a_client_may_present() -> None:
    # SES-4, CON-1: a session response's token always passes connect-auth.json.
    returned = _schemas()["http-session-response"]["properties"]["token"]
    presented = _schemas()["connect-auth"]["properties"]["token"]
    assert returned["type"] == presented["type"] == "string"
    assert returned["minLength"] >= presented["minLength"]
    assert returned["maxLength"] <= presented["maxLength"]


# ---------------------------------------------------------------------------- examples


def test_example_dirs_match_schemas() -> None:
    example_dirs = {path.name for path in EXAMPLES_DIR.iterdir() if path.is_dir()}
    assert example_dirs == set(EXPECTED_SCHEMAS) - {"common"}
    for name in sorted(example_dirs):
        example_dir = EXAMPLES_DIR / name
        assert {path.name for path in example_dir.iterdir()} == {"valid", "invalid"}, name
        for kind in ("valid", "invalid"):
            stray = [p.name for p in (example_dir / kind).iterdir() if p.suffix != ".json"]
            assert stray == [], f"{name}/{kind}"
        valid = list((example_dir / "valid").glob("*.json"))
        invalid = list((example_dir / "invalid").glob("*.json"))
        assert len(valid) >= MIN_VALID_EXAMPLES, name
        assert len(invalid) >= MIN_INVALID_EXAMPLES, name


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=_example_id)
def test_valid_example_validates(path: Path) -> None:
    schema_name = path.parents[1].name
    errors = [error.message for error in _validator(schema_name).iter_errors(_load_json(path))]
    assert errors == []


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=_example_id)
def test_invalid_example_fails(path: Path) -> None:
    schema_name = path.parents[1].name
    assert not _validator(schema_name).is_valid(_load_json(path))


# Rules of the prose that compare two values, which JSON Schema cannot say: a valid example
# must keep them too, or it shows a state no server may report.


def _consecutive(offsets: list[int]) -> bool:
    return offsets == list(range(offsets[0], offsets[0] + len(offsets))) if offsets else True


def _start_problems(example: dict[str, Any]) -> list[str]:
    problems = []
    if example["from"] > example["head"] + 1:
        problems.append("SUB-12: from > head + 1")
    truncated = example.get("truncated")
    if truncated is not None and truncated["first_available"] != example["from"]:
        problems.append("SUB-11: truncated.first_available != from")
    if truncated is not None and truncated["requested"] >= truncated["first_available"]:
        problems.append("SUB-11: truncated.requested >= first_available")
    return problems


def _history_problems(example: dict[str, Any]) -> list[str]:
    first, head = example["first"], example["head"]
    offsets = [message["offset"] for message in example["messages"]]
    problems = []
    if first is not None and first > head:
        problems.append("OFF-4: first > head")
    if not _consecutive(offsets):
        problems.append("HIS-4: messages are not consecutive")
    if offsets and (first is None or offsets[0] < first or offsets[-1] > head):
        problems.append("HIS-5: a message outside first..head")
    return problems


def _batch_problems(example: dict[str, Any]) -> list[str]:
    offsets = [message["offset"] for message in example["messages"]]
    return [] if _consecutive(offsets) else ["DLV-1: offsets are not consecutive"]


PROSE_RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "subscribe-reply": _start_problems,
    "subscribed-event": _start_problems,
    "history-reply": _history_problems,
    "http-history-response": _history_problems,
    "messages-event": _batch_problems,
}


@pytest.mark.parametrize(
    "path", [p for p in VALID_EXAMPLES if p.parents[1].name in PROSE_RULES], ids=_example_id
)
def test_valid_example_keeps_the_rules_a_schema_cannot_say(path: Path) -> None:
    assert PROSE_RULES[path.parents[1].name](_load_json(path)) == []


def test_ajv_in_strict_mode_compiles_every_schema_and_agrees_on_every_example() -> None:
    # The ECMAScript view (spec/schemas/README.md promises ajv's strict mode), next to Python's.
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ajv").is_dir():
        reason = "needs node and `npm ci` in tests/node (scripts/test runs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must check the schemas with ajv: {reason}")
        pytest.skip(reason)
    checker = NODE_DIR / "check_schemas.mjs"
    run = [node, str(checker), str(ROOT / "spec")]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
