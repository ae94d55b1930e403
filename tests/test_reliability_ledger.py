"""The store parts' judging (bench.reliability.ledger) on purpose-made histories and streams:
each counter fires on its own fault and stays at zero on a clean run."""

from __future__ import annotations

from typing import Any

from bench.reliability.ledger import Ledger, Stream, judge_channel, totals


def message(offset: int, message_id: str, data: object = None) -> dict[str, Any]:
    return {"offset": offset, "id": message_id, "data": data if data is not None else message_id}


def history(*messages: dict[str, Any], epoch: str = "e1", head: int | None = None) -> Any:
    top = head if head is not None else max((m["offset"] for m in messages), default=0)
    first = min((m["offset"] for m in messages), default=None)
    return {"epoch": epoch, "first": first, "head": top, "messages": list(messages)}


def acked(*ids: str, epoch: str = "e1") -> Ledger:
    """A ledger where id ``ids[i]`` was sent and acknowledged at offset ``i + 1``."""
    ledger = Ledger()
    for offset, message_id in enumerate(ids, 1):
        ledger.send("c", message_id, message_id)
        ledger.acknowledge("c", message_id, {"offset": offset, "epoch": epoch})
    return ledger


def test_a_clean_channel_has_nothing_to_report() -> None:
    verdict = judge_channel(acked("a", "b"), "c", history(message(1, "a"), message(2, "b")))
    assert (verdict.acknowledged, verdict.stored, verdict.anomalies) == (2, 2, [])


def test_an_acknowledged_message_missing_is_lost_and_its_offset_a_gap() -> None:
    verdict = judge_channel(acked("a", "b", "c"), "c", history(message(1, "a"), message(3, "c")))
    assert (verdict.lost, verdict.gaps) == (1, 1)
    assert any("id b" in a for a in verdict.anomalies)


def test_one_id_at_two_offsets_is_duplicated() -> None:
    verdict = judge_channel(acked("a"), "c", history(message(1, "a"), message(2, "a")))
    assert verdict.duplicated == 1 and verdict.lost == 0


def test_an_unsent_id_is_phantom_and_other_data_altered() -> None:
    ledger = acked("a")
    verdict = judge_channel(ledger, "c", history(message(1, "a", "x"), message(2, "zz")))
    assert (verdict.phantom, verdict.altered) == (1, 1)


def test_a_new_epoch_counts_as_a_change_and_loses_what_was_acknowledged() -> None:
    verdict = judge_channel(acked("a"), "c", history(message(1, "a"), epoch="e2"))
    assert (verdict.epoch_changes, verdict.lost) == (1, 1)


def test_one_id_acknowledged_at_two_places_is_an_anomaly() -> None:
    ledger = acked("a")
    ledger.acknowledge("c", "a", {"offset": 1, "epoch": "e1", "duplicate": True})
    assert ledger.anomalies == [] and ledger.duplicate_answers == 1
    ledger.acknowledge("c", "a", {"offset": 2, "epoch": "e1", "duplicate": True})
    assert len(ledger.anomalies) == 1


def test_totals_want_every_publish_acknowledged() -> None:
    verdict = judge_channel(acked("a"), "c", history(message(1, "a")))
    counts, anomalies = totals([verdict], publishes=1)
    assert counts["acknowledged"] == 1 and anomalies == []
    assert totals([verdict], publishes=2)[1] == ["2 publishes sent, 1 acknowledged"]


def test_a_stream_counts_gaps_duplicates_and_stale_deliveries() -> None:
    stream = Stream("s")
    stream.started({"epoch": "e1", "from": 1})
    stream.feed("e1", [1, 2, 4])
    assert (stream.received, stream.gaps, stream.duplicates) == (3, 1, 0)
    stream.feed("e1", [4])
    assert stream.duplicates == 1
    stream.ended()
    stream.feed("e1", [5])
    assert "no live subscription" in stream.anomalies[-1] and stream.stale == 1
    assert len(stream.anomalies) == 3


def test_a_resubscription_must_continue_where_the_stream_stopped() -> None:
    stream = Stream("s")
    stream.started({"epoch": "e1", "from": 1})
    stream.feed("e1", [1, 2])
    stream.ended()
    stream.started({"epoch": "e1", "from": 3})
    stream.feed("e1", [3])
    assert stream.anomalies == [] and stream.last == 3
    stream.ended()
    stream.started({"epoch": "e2", "from": 1})
    assert len(stream.anomalies) == 2  # another epoch, and not at 4
