"""A session as the durable stores write it down: one record for MongoDB and Redis alike.

A record holds a session's members as JSON values, grants and auto-subscriptions in their wire
form. It leaves out the session id, which each store keeps as the key, and the incarnation,
which a store writes only when it creates the session: a re-registration keeps the old one
(SES-2), so writing the record must not replace it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reference.core.model import AutoSubscription, Grant, JsonValue, Session


def session_record(session: Session) -> dict[str, JsonValue]:
    """The members a registration writes, replacing the stored ones."""
    return {
        "client_id": session.client_id,
        "grants": [g.to_wire() for g in session.grants],
        "subscribe": [a.to_wire() for a in session.subscribe],
        "token_hash": session.token_hash,
        "expires_at": session.expires_at,
    }


def session_from_record(session_id: str, record: Mapping[str, Any]) -> Session:
    """The session a stored record (with its ``incarnation``, if any) describes."""
    return Session(
        session_id=session_id,
        client_id=record["client_id"],
        grants=tuple(Grant.from_wire(g) for g in record["grants"]),
        subscribe=tuple(AutoSubscription.from_wire(e) for e in record["subscribe"]),
        token_hash=record["token_hash"],
        expires_at=record["expires_at"],
        incarnation=record.get("incarnation", ""),  # sessions stored before incarnations: all one
    )
