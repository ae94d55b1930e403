"""A batch publish's request and answer (spec §4.8, feature ``batch-publish``), as pure functions.

The checks run in BAT-10's order: the body's shape and each entry (400, BAT-5), the number of
entries (413, BAT-6), each entry's ``data`` size (413, BAT-7). An error about one entry names
it in ``details.index``, the lowest failing one, so a backend can find its bad line. Whether
an ``id`` repeats is the store's question, asked only after all of these passed (BAT-8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reference.core import ijson
from reference.core.errors import BadRequest, PayloadTooLarge, ReplayError
from reference.core.model import AppendResult, JsonValue, Payload
from reference.core.payloads import check_channel, encode_payload, validate


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One entry of a batch: a single publish's payload and optional ``id``."""

    payload: Payload
    id: str | None


@dataclass(frozen=True, slots=True)
class BatchPublishRequest:
    channel: str
    entries: tuple[BatchEntry, ...]


def _at(index: int, error: ReplayError) -> ReplayError:
    """``error`` about entry ``index``, named in its message and ``details.index`` (BAT-5)."""
    return type(error)(f"messages/{index}: {error.message}", **error.details, index=index)


def _entries(body: object) -> list[object]:
    """The body's ``messages``, once the body is an object with exactly that non-empty array."""
    if isinstance(body, ijson.RepeatedMembers):
        raise BadRequest("the request is not I-JSON: an object names a member more than once")
    if not isinstance(body, dict) or set(body) != {"messages"}:
        raise BadRequest("the body must be an object with exactly the member messages")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be an array of at least one entry")
    return messages


def _plainly_valid(entry: object) -> bool:
    """True for an entry ``http-publish-request.json`` certainly accepts: ``data`` and at most
    an ``id`` of 1 to 128 characters. A shortcut past the validator, which costs more than
    the rest of an entry's checks together; the schema still decides every other entry."""
    if type(entry) is not dict or "data" not in entry:
        return False
    if len(entry) == 1:
        return True
    message_id = entry.get("id")
    return len(entry) == 2 and type(message_id) is str and 1 <= len(message_id) <= 128


def _check_entry(entry: object, i_json: bool) -> None:
    """MSG-6 to MSG-8 (unless ``i_json`` says the whole body is) and the single publish's
    schema, for one entry."""
    problem = None if i_json else ijson.problem(entry)
    if problem is not None:
        raise BadRequest(f"the entry is not I-JSON: {problem}")
    if not _plainly_valid(entry):
        validate("http-publish-request", entry)


def parse_batch_publish(
    channel: str,
    body: object,
    *,
    max_payload_bytes: int,
    max_entries: int,
    i_json: bool = False,
) -> BatchPublishRequest:
    """The typed batch, or the first error of BAT-10's order (``BadRequest``,
    ``PayloadTooLarge``). ``i_json``: the decoder found the whole body I-JSON
    (``ijson.loads_noting``), so no entry needs its own walk."""
    messages = _entries(body)
    for index, entry in enumerate(messages):
        try:
            _check_entry(entry, i_json)
        except BadRequest as exc:
            raise _at(index, exc) from None
    name = check_channel(channel)  # step 5 as well: after the body's own checks, same code
    if len(messages) > max_entries:  # BAT-6
        raise PayloadTooLarge(
            f"{len(messages)} entries; the limit is {max_entries}",
            count=len(messages),
            limit=max_entries,
        )
    entries = []
    for index, entry in enumerate(messages):
        assert isinstance(entry, dict)
        try:
            payload = encode_payload(entry["data"], max_payload_bytes)  # BAT-7, LIM-3
        except PayloadTooLarge as exc:
            raise _at(index, exc) from None
        entries.append(BatchEntry(payload, entry.get("id")))
    return BatchPublishRequest(name, tuple(entries))


def earlier_repeats(ids: Sequence[str | None]) -> dict[int, int]:
    """For each entry whose ``id`` an earlier entry of the batch gave, that earlier entry's
    index: its duplicate's original (BAT-8). Entries without an ``id`` repeat nothing."""
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, message_id in enumerate(ids):
        if message_id is None:
            continue
        if message_id in first:
            repeats[index] = first[message_id]
        else:
            first[message_id] = index
    return repeats


def batch_stored_any(results: Sequence[AppendResult]) -> bool:
    """True when the batch stored a message: 201, else 200 (BAT-1)."""
    return any(not result.duplicate for result in results)


def batch_wire(channel: str, results: Sequence[AppendResult]) -> dict[str, JsonValue]:
    """The body of a batch's answer (BAT-1): every result is of one epoch, the batch's."""
    epochs = {result.epoch for result in results}
    assert len(epochs) == 1, f"a batch answered in {len(epochs)} epochs"
    return {
        "channel": channel,
        "epoch": epochs.pop(),
        "results": [{"offset": r.offset, "id": r.id, "duplicate": r.duplicate} for r in results],
    }
