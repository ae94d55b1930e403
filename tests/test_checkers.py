"""The whole-trace checkers name each anomaly on a hand-built log (conformance.checkers)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.checkers import Anomaly, check_log
from conformance.eventlog import EventLog

CH = "room:a"
ALL = [{"channels": "*", "actions": ["subscribe", "publish", "history"]}]


class Story:
    """Writes a log the way the suite's backend and clients do."""

    def __init__(self) -> None:
        self.log = EventLog()

    def register(
        self,
        session: str,
        token: str,
        grants: list[dict[str, Any]] = ALL,
        *,
        status: int = 201,
    ) -> None:
        op = self.log.invoke(
            "backend",
            "POST /replay/v1/sessions",
            channel=None,
            payload={"client_id": "c", "grants": grants},
        )
        self.log.record(
            "backend",
            "reply",
            "POST /replay/v1/sessions",
            op=op,
            outcome="ok",
            payload={"status": status, "body": {"session_id": session, "token": token}},
        )

    def delete(self, session: str) -> None:
        name = f"DELETE /replay/v1/sessions/{session}"
        op = self.log.invoke("backend", name, channel=None, payload=None)
        self.log.record(
            "backend", "reply", name, op=op, outcome="ok", payload={"status": 204, "body": None}
        )

    def connect(self, actor: str, token: str) -> None:
        op = self.log.invoke(actor, "connect", channel=None, payload={"token": token})
        self.log.record(actor, "connect", "connect", op=op, outcome="ok")

    def publish(
        self,
        data: object,
        offset: int | None,
        *,
        outcome: str = "ok",
        message_id: str | None = None,
        duplicate: bool = False,
    ) -> None:
        name = "POST /replay/v1/channels/room:a/messages"
        body: dict[str, Any] = {"data": data} | ({"id": message_id} if message_id else {})
        op = self.log.invoke("backend", name, channel=CH, payload=body)
        reply = {
            "channel": CH,
            "offset": offset,
            "epoch": "E",
            "id": message_id or f"s{offset}",
            "duplicate": duplicate,
        }
        self.log.record(
            "backend",
            "reply",
            name,
            channel=CH,
            op=op,
            outcome=outcome,
            payload={"status": 201, "body": reply} if outcome == "ok" else None,
        )

    def subscribe(self, actor: str, start: int, asked: object = None, **extra: Any) -> None:
        request = {"channel": CH} | ({"from": asked} if asked is not None else {})
        op = self.log.invoke(actor, "replay:subscribe", channel=CH, payload=request)
        self.log.record(
            actor,
            "reply",
            "replay:subscribe",
            channel=CH,
            op=op,
            outcome="ok",
            payload={"ok": True, "channel": CH, "epoch": "E", "from": start, "head": start - 1}
            | extra,
        )

    def unsubscribe(self, actor: str) -> None:
        op = self.log.invoke(actor, "replay:unsubscribe", channel=CH, payload={"channel": CH})
        self.log.record(
            actor,
            "reply",
            "replay:unsubscribe",
            channel=CH,
            op=op,
            outcome="ok",
            payload={"ok": True},
        )

    def deliver(
        self,
        actor: str,
        *messages: tuple[int, object],
        ids: dict[int, str] | None = None,
        ts: int = 0,
    ) -> None:
        batch = [
            {"offset": o, "id": (ids or {}).get(o, f"s{o}"), "ts": ts, "data": d}
            for o, d in messages
        ]
        self.log.record(
            actor,
            "event",
            "replay:messages",
            channel=CH,
            payload={"channel": CH, "epoch": "E", "messages": batch},
        )

    def ack(self, actor: str, offset: int, cursor: int) -> None:
        request = {"channel": CH, "epoch": "E", "offset": offset}
        op = self.log.invoke(actor, "replay:ack", channel=CH, payload=request)
        reply = {"ok": True, "channel": CH, "epoch": "E", "cursor": cursor}
        self.log.record(
            actor, "reply", "replay:ack", channel=CH, op=op, outcome="ok", payload=reply
        )

    def history(
        self, actor: str, *messages: tuple[int, object], first: int | None, head: int, ts: int = 0
    ) -> None:
        """A ``replay:history`` read (``backend``: the HTTP one) and its answer."""
        batch = [{"offset": o, "id": f"s{o}", "ts": ts, "data": d} for o, d in messages]
        answer = {"channel": CH, "epoch": "E", "first": first, "head": head, "messages": batch}
        if actor == "backend":
            name = "GET /replay/v1/channels/room:a/messages"
            op = self.log.invoke(actor, name, channel=CH, payload=None)
            payload: dict[str, Any] = {"status": 200, "body": answer}
        else:
            name = "replay:history"
            op = self.log.invoke(actor, name, channel=CH, payload={"channel": CH})
            payload = {"ok": True, **answer}
        self.log.record(actor, "reply", name, channel=CH, op=op, outcome="ok", payload=payload)

    def unsubscribed(self, actor: str, reason: str) -> None:
        payload = {"channel": CH, "reason": reason}
        self.log.record(actor, "event", "replay:unsubscribed", channel=CH, payload=payload)

    def later(self, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
        """From now on, the log's clock reads ``seconds`` past its last entry."""
        clock = self.log.entries[-1].t + seconds + self.log._t0
        monkeypatch.setattr("conformance.eventlog.time.monotonic", lambda: clock)

    def anomalies(self) -> list[Anomaly]:
        return check_log(self.log.entries)


@pytest.fixture
def story() -> Story:
    story = Story()
    story.register("s1", "t1")
    story.connect("c1", "t1")
    return story


def kinds(story: Story) -> list[str]:
    return [a.kind for a in story.anomalies()]


def test_a_clean_history_has_no_anomaly(story: Story) -> None:
    story.publish("a", 1)
    story.subscribe("c1", 1, asked=1)
    story.publish("b", 2)
    story.deliver("c1", (1, "a"), (2, "b"))
    assert story.anomalies() == []


def test_lost(story: Story) -> None:
    story.subscribe("c1", 1)
    story.publish("a", 1)
    story.publish("b", 2)
    story.deliver("c1", (1, "a"))
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("lost", "HND-2")
    assert "room:a#2" in anomaly.detail


def test_not_lost_once_the_subscription_ended(story: Story) -> None:
    story.subscribe("c1", 1)
    story.publish("a", 1)
    story.unsubscribe("c1")
    assert story.anomalies() == []


@pytest.mark.parametrize(
    ("offsets", "kind"),
    [([1, 1], "duplicate"), ([1, 3], "gap"), ([2], "gap"), ([1, 2, 1], "duplicate")],
)
def test_order_anomalies(story: Story, offsets: list[int], kind: str) -> None:
    for n in (1, 2, 3):
        story.publish(f"d{n}", n)
    story.subscribe("c1", 1)
    story.deliver("c1", *((o, f"d{o}") for o in offsets))
    assert kind in kinds(story)


def test_reorder(story: Story) -> None:
    for n in (1, 2, 3):
        story.publish(f"d{n}", n)
    story.subscribe("c1", 2, asked=2)
    story.deliver("c1", (2, "d2"), (3, "d3"))
    story.unsubscribe("c1")
    story.subscribe("c1", 3, asked=3)
    story.deliver("c1", (1, "d1"))
    assert "reorder" in kinds(story)


def test_divergence_between_observers_and_with_the_publish_reply(story: Story) -> None:
    story.register("s2", "t2")
    story.connect("c2", "t2")
    story.publish("a", 1)
    story.publish("b", 2)
    story.subscribe("c1", 1)
    story.subscribe("c2", 1)
    story.deliver("c1", (1, "a"), (2, "b"))
    story.deliver("c2", (1, "b"), (2, "b"))
    found = kinds(story)
    assert found.count("divergence") == 1


def test_phantom(story: Story) -> None:
    story.subscribe("c1", 1)
    story.deliver("c1", (1, "never published"))
    assert kinds(story) == ["phantom"]


def test_an_indeterminate_publish_may_appear_once_not_twice(story: Story) -> None:
    story.subscribe("c1", 1)
    story.publish("x", None, outcome="indeterminate")
    story.deliver("c1", (1, "x"))
    assert story.anomalies() == []
    story.deliver("c1", (2, "x"))
    assert "duplicated-publish" in kinds(story)


def test_an_idempotency_id_stored_twice(story: Story) -> None:
    story.subscribe("c1", 1)
    story.publish("x", 1, message_id="k")
    story.publish("y", 2, message_id="k")  # the server failed to recognise the duplicate
    story.deliver("c1", (1, "x"), (2, "y"), ids={1: "k", 2: "k"})
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("duplicate-id", "IDM-6")
    assert check_log(story.log.entries, idempotency=False) == []  # allowed without the feature


def test_an_id_answered_twice_with_new_offsets(story: Story) -> None:
    story.publish("x", 1, message_id="k")
    story.publish("x2", 2, message_id="k")  # no subscriber saw it: the answers show it
    assert kinds(story) == ["duplicate-id"]


def test_a_duplicate_must_answer_the_original_offset(story: Story) -> None:
    story.publish("x", 1, message_id="k")
    story.publish("y", 1, message_id="k", duplicate=True)
    assert story.anomalies() == []
    story.publish("z", 5, message_id="k", duplicate=True)
    assert kinds(story) == ["duplicate-id"]


def test_leak_outside_grants(story: Story) -> None:
    story.register("s2", "t2", grants=[{"channels": "room:b*", "actions": ["subscribe"]}])
    story.connect("c2", "t2")
    story.publish("a", 1)
    story.subscribe("c2", 1)
    story.deliver("c2", (1, "a"))
    assert kinds(story) == ["leak"]


def test_leak_after_deletion_only_after_the_grace(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    story.publish("a", 1)
    story.publish("b", 2)
    story.subscribe("c1", 1)
    story.deliver("c1", (1, "a"))
    story.delete("s1")
    story.deliver("c1", (2, "b"))  # within the grace: allowed
    assert story.anomalies() == []
    clock = [story.log.entries[-1].t + 1.5]
    monkeypatch.setattr("conformance.eventlog.time.monotonic", lambda: clock[0] + story.log._t0)
    story.publish("c", 3)
    story.deliver("c1", (3, "c"))
    # Both name it: the id has no grants any more (leak), and the socket's session is gone.
    assert sorted(kinds(story)) == ["after-delete", "leak"]


def test_unsignalled_loss(story: Story) -> None:
    story.publish("a", 1)
    story.subscribe("c1", 2, asked=1)
    story.deliver("c1")
    assert kinds(story) == ["unsignalled-loss"]
    story.subscribe("c1", 2, asked=1, truncated={"requested": 1, "first_available": 2})
    assert kinds(story) == ["unsignalled-loss"]  # the signalled one is fine


def test_deliveries_before_the_reply_belong_to_the_subscription(story: Story) -> None:
    story.publish("a", 1)
    op = story.log.invoke("c1", "replay:subscribe", channel=CH, payload={"channel": CH, "from": 1})
    story.deliver("c1", (1, "a"))
    story.log.record(
        "c1",
        "reply",
        "replay:subscribe",
        channel=CH,
        op=op,
        outcome="ok",
        payload={"ok": True, "channel": CH, "epoch": "E", "from": 1, "head": 1},
    )
    assert story.anomalies() == []


# --- conformance.composition: what two rules meeting break ----------------------------------


def test_two_publishes_answered_with_one_offset(story: Story) -> None:
    story.publish("a", 1)
    story.publish("b", 1)
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("reassigned", "OFF-3")


def test_one_offset_delivered_with_two_timestamps(story: Story) -> None:
    story.register("s2", "t2")
    story.connect("c2", "t2")
    story.publish("a", 1)
    story.subscribe("c1", 1)
    story.subscribe("c2", 1)
    story.deliver("c1", (1, "a"), ts=100)
    story.deliver("c2", (1, "a"), ts=100)
    assert story.anomalies() == []
    story.deliver("c2", (1, "a"), ts=101)  # and a duplicate, which ORD-3 names too
    assert "rewritten" in kinds(story)


def test_head_going_back_on_one_socket(story: Story) -> None:
    story.subscribe("c1", 6, head=5)
    story.unsubscribe("c1")
    story.subscribe("c1", 6, head=5)  # the same head again is fine
    assert story.anomalies() == []
    story.unsubscribe("c1")
    story.subscribe("c1", 4, head=3)
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("head-regressed", "OFF-4")


def test_head_below_an_acknowledged_publish_only_after_the_lag(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in (1, 2, 3):
        story.publish(f"d{n}", n)
    story.subscribe("c1", 2, head=1)  # another node may lag that long (spec §10.13)
    story.unsubscribe("c1")
    assert story.anomalies() == []
    story.later(monkeypatch, 1.5)
    story.subscribe("c1", 2, head=1)
    story.unsubscribe("c1")
    assert kinds(story) == ["head-regressed"]


def test_first_going_back(story: Story) -> None:
    story.subscribe("c1", 3, first=3, head=5)
    story.unsubscribe("c1")
    story.subscribe("c1", 4, first=4, head=5)  # retention trimmed more: first goes up
    assert story.anomalies() == []
    story.unsubscribe("c1")
    story.subscribe("c1", 2, first=2, head=5)
    # The first going back, and the start below the first reported before it.
    assert sorted(kinds(story)) == ["first-regressed", "resurrected"]


def test_a_start_below_a_reported_first(story: Story) -> None:
    """Retention removed offsets 1 to 3 (a history read said so); a later subscribe answered
    from 2 would deliver what is gone (SUB-6, RET-8)."""
    story.publish("x", 1)
    story.publish("y", 2)
    story.publish("z", 3)
    story.publish("w", 4)
    story.history("c1", (4, "w"), first=4, head=4)  # the same socket: it binds at once
    truncated = {"requested": 1, "first_available": 4}
    story.subscribe("c1", 4, 1, truncated=truncated, head=4)  # allow_truncation: fine (SUB-11)
    story.unsubscribe("c1")
    story.subscribe("c1", 5, "latest")
    assert story.anomalies() == []
    story.unsubscribe("c1")
    story.subscribe("c1", 2, "beginning", head=4)
    story.unsubscribe("c1")
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("resurrected", "SUB-6")


def test_history_reads_are_judged_with_the_deliveries(story: Story) -> None:
    story.publish("x", 1)
    story.publish("y", 2)
    story.history("c1", (1, "x"), (2, "y"), first=1, head=2)
    story.history("backend", (1, "x"), (2, "y"), first=1, head=2)
    assert story.anomalies() == []
    story.history("backend", (1, "y"), (2, "x"), first=1, head=2)  # rewritten history
    assert "divergence" in kinds(story)


def test_a_history_read_with_another_ts(story: Story) -> None:
    story.publish("x", 1)
    story.history("c1", (1, "x"), first=1, head=1, ts=5)
    story.history("backend", (1, "x"), first=1, head=1, ts=6)
    assert kinds(story) == ["rewritten"]


def test_cursor_going_back_and_surviving_reregistration(story: Story) -> None:
    story.ack("c1", 3, 3)
    story.ack("c1", 1, 3)  # an ack below the cursor leaves it (ACK-4)
    assert story.anomalies() == []
    story.register("s1", "t1b", status=200)  # cursors survive it (ACK-6)
    story.ack("c1", 2, 2)
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("cursor-regressed", "ACK-4")


def test_a_new_session_under_the_same_id_starts_without_the_cursor(story: Story) -> None:
    story.ack("c1", 3, 3)
    story.delete("s1")
    story.register("s1", "t1b")  # a new session (SES-16): no cursor to go back from
    story.connect("c2", "t1b")
    story.ack("c2", 1, 1)
    assert story.anomalies() == []


def test_delivery_after_revocation(story: Story) -> None:
    story.publish("a", 1)
    story.publish("b", 2)
    story.subscribe("c1", 1)
    story.deliver("c1", (1, "a"))
    story.unsubscribed("c1", "revoked")
    story.deliver("c1", (2, "b"))
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("after-revoke", "ACC-6")


def test_delivery_after_a_new_subscription_following_revocation(story: Story) -> None:
    story.publish("a", 1)
    story.subscribe("c1", 1)
    story.unsubscribed("c1", "revoked")
    story.subscribe("c1", 1)  # granted again and subscribed again
    story.deliver("c1", (1, "a"))
    assert story.anomalies() == []


def test_delivery_to_a_deleted_sessions_socket_after_the_id_returns(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    story.publish("a", 1)
    story.subscribe("c1", 1)
    story.deliver("c1", (1, "a"))
    story.delete("s1")
    story.register("s1", "t1b")  # same id, same grants: leak sees nothing wrong
    story.connect("c2", "t1b")
    story.subscribe("c2", 1)
    story.deliver("c2", (1, "a"))
    assert story.anomalies() == []
    story.later(monkeypatch, 1.5)
    story.publish("b", 2)
    story.deliver("c2", (2, "b"))  # the new session's socket: fine
    story.deliver("c1", (2, "b"))  # the deleted session's socket, past the grace
    [anomaly] = story.anomalies()
    assert (anomaly.kind, anomaly.clause) == ("after-delete", "SES-15")


def test_a_correct_composed_history_has_no_anomaly(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    story.publish("a", 1)
    story.subscribe("c1", 1, asked=1, first=1, head=1)
    story.publish("b", 2)
    story.deliver("c1", (1, "a"), (2, "b"))
    story.ack("c1", 2, 2)
    story.register("s1", "t1b", status=200)
    story.later(monkeypatch, 1.5)
    story.ack("c1", 1, 2)
    story.unsubscribe("c1")
    story.subscribe("c1", 3, first=2, head=2)
    story.publish("c", 3)
    story.deliver("c1", (3, "c"))
    assert story.anomalies() == []
