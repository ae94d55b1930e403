"""The session record that the MongoDB and Redis stores both write."""

from __future__ import annotations

from reference.core.model import Action, AutoSubscription, Grant, Session
from reference.store.records import session_from_record, session_record

SESSION = Session(
    session_id="s1",
    client_id="user-17",
    grants=(Grant("orders:*", frozenset({Action.SUBSCRIBE, Action.HISTORY})),),
    subscribe=(AutoSubscription("orders:17", 4, allow_truncation=True, epoch="e1"),),
    token_hash="h1",
    expires_at=1_800_000_000_000,
    incarnation="i1",
)


def test_a_record_is_json_and_leaves_out_the_id_and_incarnation() -> None:  # SES-2
    assert session_record(SESSION) == {
        "client_id": "user-17",
        "grants": [{"channels": "orders:*", "actions": ["history", "subscribe"]}],
        "subscribe": [{"channel": "orders:17", "from": 4, "allow_truncation": True, "epoch": "e1"}],
        "token_hash": "h1",
        "expires_at": 1_800_000_000_000,
    }


def test_a_record_round_trips_with_its_incarnation() -> None:
    stored = {**session_record(SESSION), "incarnation": "i1"}
    assert session_from_record("s1", stored) == SESSION


def test_a_record_stored_before_incarnations_reads_as_incarnation_empty() -> None:
    assert session_from_record("s1", session_record(SESSION)).incarnation == ""


def test_an_entry_stored_before_1_1_reads_without_an_epoch() -> None:  # AUT-7
    stored = session_record(SESSION)
    stored["subscribe"] = [{"channel": "orders:17", "from": 4, "allow_truncation": True}]
    assert session_from_record("s1", stored).subscribe[0].epoch is None
