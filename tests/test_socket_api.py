"""End to end: a real python-socketio client against a served reference node."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from harness import ALL_ACTIONS, Client, ConnectRefused, serve

from conformance.faults import FaultProxy
from reference.core.model import ChannelState, Limits
from reference.store.memory import MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


def grant(channels: str, *actions: str) -> dict[str, Any]:
    return {"channels": channels, "actions": list(actions or ALL_ACTIONS)}


async def test_late_join_from_offset_1_over_10000_messages() -> None:  # HND-1, ORD-1, ORD-2
    async with serve() as served:
        for n in range(10_000):
            await served.publish("big", n)
        client = await served.client()
        reply = await client.call("replay:subscribe", {"channel": "big", "from": "beginning"})
        assert reply["ok"] and reply["from"] == 1 and reply["head"] == 10_000
        await client.wait_for_offset("big", 10_000, timeout=30)
        assert client.offsets("big") == list(range(1, 10_001))
        assert [m["data"] for m in client.messages["big"]] == list(range(10_000))
        batches = [e for e in client.events if e[0] == "replay:messages"]
        assert all(len(b[1]["messages"]) <= 500 for b in batches)  # DLV-2
        assert client.events[0][0] == "reply:replay:subscribe"  # SUB-13


async def test_resume_after_an_abrupt_transport_drop() -> None:  # RES-1
    async with serve() as served:
        port = int(served.url.rsplit(":", 1)[1])
        async with FaultProxy("127.0.0.1", port) as proxy:
            token = (await served.register())["token"]
            client = Client()
            await client.connect(proxy.url, token)
            reply = await client.call("replay:subscribe", {"channel": "c", "from": "beginning"})
            epoch = reply["epoch"]
            for n in range(20):
                await served.publish("c", n)
            await client.wait_for_offset("c", 20)
            await proxy.cut()  # RST: no close frame, no Socket.IO DISCONNECT
            await asyncio.wait_for(client.disconnected.wait(), 5)
            for n in range(20, 35):
                await served.publish("c", n)
            last = client.offsets("c")[-1]
            again = await served.client(token=token)
            reply = await again.call(
                "replay:subscribe", {"channel": "c", "from": last + 1, "epoch": epoch}
            )
            assert reply["ok"] and reply["from"] == last + 1
            await again.wait_for_offset("c", 35)
            assert again.offsets("c") == list(range(last + 1, 36))


async def test_publishes_racing_a_subscribe_form_one_gapless_stream() -> None:  # HND-2
    async with serve() as served:
        for n in range(50):
            await served.publish("race", n)
        client = await served.client()

        async def publisher() -> None:
            for n in range(50, 250):
                await served.publish("race", n)

        racing = asyncio.create_task(publisher())
        await asyncio.sleep(0.005)
        reply = await client.call("replay:subscribe", {"channel": "race", "from": "beginning"})
        await racing
        await client.wait_for_offset("race", 250, timeout=10)
        assert reply["from"] == 1
        assert client.offsets("race") == list(range(1, 251))


async def test_live_only_subscription_starts_exactly_after_the_reply_head() -> None:  # HND-3
    async with serve() as served:
        for n in range(5):
            await served.publish("c", n)
        client = await served.client()
        reply = await client.call("replay:subscribe", {"channel": "c", "from": "latest"})
        assert reply["from"] == 6
        await served.publish("c", "after")
        await client.wait_for_offset("c", 6)
        assert client.offsets("c") == [6]


async def test_forbidden_channel() -> None:  # SUB-2, PUB-5, HIS-3, ACK-1, ACC-5
    async with serve() as served:
        client = await served.client(grants=[grant("room:*", "subscribe")])
        for event, payload in [
            ("replay:subscribe", {"channel": "secret"}),
            ("replay:publish", {"channel": "room:1", "data": 1}),
            ("replay:history", {"channel": "room:1"}),
            ("replay:ack", {"channel": "secret", "offset": 1, "epoch": "e"}),
        ]:
            reply = await client.call(event, payload)
            assert reply == {"ok": False, "error": reply["error"]}
            assert reply["error"]["code"] == "forbidden", event
        await served.publish("secret", "x")
        assert (await client.call("replay:subscribe", {"channel": "room:1"}))["ok"]
        await asyncio.sleep(0.1)
        assert "secret" not in client.messages
        status, body = await served.call("GET", "/replay/v1/channels/room%3A1/messages")
        assert status == 200 and body["head"] == 0  # the forbidden publish stored nothing


class StateReads(MemoryStore):
    """A memory store that records the channels whose state was read."""

    def __init__(self) -> None:
        super().__init__()
        self.states_read: list[str] = []

    async def state(self, channel: str) -> ChannelState:
        self.states_read.append(channel)
        return await super().state(channel)


async def test_a_subscribe_reads_the_channel_only_after_the_checks_that_need_no_read() -> None:
    """SUB-1's grant, existing-subscription and limit checks come before any store read, so a
    subscribe they refuse never touches (nor, on first use, creates) the channel (CHN-3)."""
    store = StateReads()
    async with serve(store, limits=Limits(max_subscriptions=1)) as served:
        client = await served.client(grants=[grant("room:*", "subscribe")])
        for channel, code in [
            ("secret", "forbidden"),
            ("room:1", None),
            ("room:1", "already_subscribed"),
            ("room:2", "rate_limited"),
        ]:
            reply = await client.call("replay:subscribe", {"channel": channel})
            assert reply.get("error", {}).get("code") == code, channel
        assert store.states_read == ["room:1"]


async def test_every_event_fails_with_its_first_failing_check() -> None:
    """EVT-10, UNS-7, ACK-10, PUB-8, HIS-11: each request below breaks two or more rules; the
    first in its event's order names the error, and a forbidden one reads no channel (ACC-8)."""
    store = StateReads()
    async with serve(store) as served:
        await served.publish("room:1", 0)
        await served.publish("room:1", 1, message_id="k")
        store.states_read.clear()
        client = await served.client(grants=[grant("room:*", "subscribe", "history")])
        too_big = "x" * (Limits().max_payload_bytes + 1)
        stale = {"epoch": "stale"}
        for event, payload, code in [
            ("replay:ack", {"channel": "secret", "offset": 0, **stale}, "bad_request"),
            ("replay:ack", {"channel": "secret", "offset": 1}, "bad_request"),  # no epoch
            ("replay:history", {"channel": "secret", "from": 9}, "bad_request"),
            ("replay:publish", {"channel": "room:1", "data": too_big, "x": 1}, "bad_request"),
            ("replay:publish", {"channel": "room:1", "data": [2**53, too_big]}, "bad_request"),
            ("replay:unsubscribe", {"channel": "secret", "x": 1}, "bad_request"),
            ("replay:publish", {"channel": "room:1", "data": too_big}, "payload_too_large"),
            (
                "replay:publish",
                {"channel": "room:1", "data": too_big, "id": "k"},
                "payload_too_large",
            ),
            ("replay:publish", {"channel": "room:1", "data": 2, "id": "k"}, "forbidden"),
            ("replay:ack", {"channel": "secret", "offset": 99, **stale}, "forbidden"),
            ("replay:history", {"channel": "secret", "from": 99, **stale}, "forbidden"),
            ("replay:unsubscribe", {"channel": "secret"}, "not_subscribed"),
        ]:
            reply = await client.call(event, payload)
            assert reply.get("error", {}).get("code") == code, (event, payload)
        assert store.states_read == []
        for event, payload, code in [
            ("replay:ack", {"channel": "room:1", "offset": 99, **stale}, "epoch_mismatch"),
            ("replay:history", {"channel": "room:1", "from": 99, **stale}, "epoch_mismatch"),
        ]:
            reply = await client.call(event, payload)
            assert reply.get("error", {}).get("code") == code, (event, payload)
        status, page = await served.call("GET", "/replay/v1/channels/room%3A1/messages")
        assert status == 200 and page["head"] == 2  # nothing was stored


async def test_revocation_disconnects_within_one_second() -> None:  # SES-23, SES-15
    async with serve() as served:
        session = await served.register()
        client = await served.client(token=session["token"])
        await client.call("replay:subscribe", {"channel": "c"})
        started = asyncio.get_running_loop().time()
        status, _ = await served.call("DELETE", f"/replay/v1/sessions/{session['session_id']}")
        assert status == 204
        await asyncio.wait_for(client.disconnected.wait(), 1.0)
        assert asyncio.get_running_loop().time() - started < 1.0
        await served.publish("c", "after revocation")
        await asyncio.sleep(0.1)
        assert client.messages["c"] == []
        refused = Client()
        with pytest.raises(ConnectRefused, match=r"^unauthorized$"):
            await refused.connect(served.url, session["token"])


async def test_an_omitted_ttl_is_capped_by_a_lower_max_ttl() -> None:  # SES-5
    clock = FakeClock()
    async with serve(MemoryStore(clock=clock), limits=Limits(max_ttl_s=600)) as served:
        session = await served.register()
        assert session["expires_at"] == clock.now + 600_000


async def test_expired_token_is_refused_and_live_sockets_are_dropped() -> None:  # SES-10, SES-11
    clock = FakeClock()
    async with serve(MemoryStore(clock=clock)) as served:
        session = await served.register(ttl_s=60)
        assert session["expires_at"] == clock.now + 60_000  # SES-5
        client = await served.client(token=session["token"])
        clock.now += 61_000
        # The socket's expiry timer runs on the real loop clock; an operation checks at once.
        reply = await client.call("replay:subscribe", {"channel": "c"})
        assert reply["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectRefused, match=r"^unauthorized$"):
            await Client().connect(served.url, session["token"])


async def test_a_socket_of_a_deleted_session_never_acts_for_its_successor() -> None:  # SES-15
    store = MemoryStore()
    async with serve(store) as served:
        session = await served.register(session_id="s", grants=[grant("*")])
        client = await served.client(token=session["token"])
        # Deleted and registered again in the store behind the node's back, as another node
        # does while this one's bus is down: the old socket must not get the new grants.
        assert await store.delete_session("s")
        await served.register(session_id="s", grants=[grant("*")])
        reply = await client.call("replay:subscribe", {"channel": "c"})
        assert reply["error"]["code"] == "unauthorized"


async def test_expiry_timer_disconnects_the_socket() -> None:  # SES-11
    async with serve() as served:
        session = await served.register(ttl_s=1)
        client = await served.client(token=session["token"])
        await asyncio.wait_for(client.disconnected.wait(), 3)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("replay:subscribe", {"channel": 5}),
        ("replay:subscribe", {"channel": "c", "from": -1}),
        ("replay:subscribe", {"channel": "c", "extra": True}),
        ("replay:unsubscribe", {}),
        ("replay:unsubscribe", {"channel": ["c"]}),
        ("replay:ack", {"channel": "c"}),
        ("replay:ack", {"channel": "c", "offset": "1", "epoch": "e"}),
        ("replay:ack", {"channel": "c", "offset": 1}),  # ACK-8: an offset without its epoch
        ("replay:subscribe", {"channel": "c", "from": 1}),  # SUB-16
        ("replay:history", {"channel": "c", "from": 1}),  # HIS-9
        ("replay:publish", {"channel": "c"}),
        ("replay:publish", {"channel": "c", "data": 1, "id": ""}),
        ("replay:publish", {"channel": "c", "data": 1, "id": "x" * 129}),
        ("replay:publish", {"channel": "c c", "data": 1}),
        ("replay:publish", {"channel": "c", "data": 1, "unknown": 1}),
        ("replay:history", {"channel": "c", "limit": 0}),
        ("replay:history", {"channel": "c", "from": "latest"}),
        ("replay:history", "c"),
        ("replay:publish", None),
    ],
)
async def test_malformed_payloads_get_bad_request_and_store_nothing(
    event: str, payload: Any
) -> None:  # ROB-1, ROB-2, ROB-4, EVT-3
    async with serve() as served:
        client = await served.client()
        reply = await client.call(event, payload)
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
        status, body = await served.call("GET", "/replay/v1/channels/c/messages")
        assert status == 200 and body["head"] == 0
        assert (await client.call("replay:subscribe", {"channel": "c"}))["ok"]  # still usable


async def test_oversized_data_gets_payload_too_large_and_the_socket_survives() -> None:
    async with serve() as served:  # ROB-3, TRN-7
        client = await served.client()
        reply = await client.call("replay:publish", {"channel": "c", "data": "x" * 131_072})
        assert reply["error"]["code"] == "payload_too_large"
        reply = await client.call("replay:publish", {"channel": "c", "data": "x" * 65_534})
        assert reply["ok"] and reply["offset"] == 1  # exactly max_payload_bytes encoded


async def test_idempotent_publish() -> None:  # IDM-6, IDM-4
    async with serve() as served:
        client = await served.client()
        first = await client.call("replay:publish", {"channel": "c", "data": 1, "id": "k"})
        again = await served.publish("c", 2, message_id="k")
        assert first["duplicate"] is False and again["duplicate"] is True
        assert again["offset"] == first["offset"] == 1
        status, body = await served.call("GET", "/replay/v1/channels/c/messages")
        assert status == 200
        assert [m["data"] for m in body["messages"]] == [1]


async def test_auto_subscriptions_announce_before_messages() -> None:  # AUT-1, AUT-2, AUT-4
    async with serve() as served:
        for n in range(3):
            await served.publish("a", n)
        session = await served.register(
            grants=[grant("a", "subscribe")],
            subscribe=[{"channel": "a", "from": "beginning"}, {"channel": "b"}],
        )
        client = await served.client(token=session["token"])
        await client.wait_for_offset("a", 3)
        await client.wait_until(lambda: any(e[0] == "replay:unsubscribed" for e in client.events))
        names = [name for name, _ in client.events]
        assert names.index("replay:subscribed") < names.index("replay:messages")
        subscribed = next(data for name, data in client.events if name == "replay:subscribed")
        assert subscribed["from"] == 1 and subscribed["head"] == 3
        unsubscribed = next(d for n, d in client.events if n == "replay:unsubscribed")
        assert unsubscribed["channel"] == "b" and unsubscribed["reason"] == "forbidden"
        again = await client.call("replay:subscribe", {"channel": "a"})
        assert again["error"]["code"] == "already_subscribed"  # AUT-5


async def test_cursor_resume_redelivers_only_unacknowledged() -> None:  # CUR-1, CUR-2
    async with serve() as served:
        for n in range(10):
            await served.publish("c", n)
        session = await served.register(subscribe=[{"channel": "c", "from": "beginning"}])
        client = await served.client(token=session["token"])
        await client.wait_for_offset("c", 10)
        epoch = next(d["epoch"] for n, d in client.events if n == "replay:subscribed")
        acked = await client.call("replay:ack", {"channel": "c", "offset": 6, "epoch": epoch})
        assert acked == {"ok": True, "epoch": epoch, "cursor": 6}  # ACK-4, ACK-9
        again = await client.call("replay:ack", {"channel": "c", "offset": 2, "epoch": epoch})
        assert again["cursor"] == 6
        await client.close()
        again = await served.register(
            session_id=session["session_id"], subscribe=[{"channel": "c"}]
        )
        resumed = await served.client(token=again["token"])
        await resumed.wait_for_offset("c", 10)
        assert resumed.offsets("c") == [7, 8, 9, 10]


async def test_narrowed_grants_end_subscriptions_with_revoked() -> None:  # ACC-6, SES-4
    async with serve() as served:
        session = await served.register(grants=[grant("*", "subscribe")])
        client = await served.client(token=session["token"])
        await client.call("replay:subscribe", {"channel": "keep"})
        await client.call("replay:subscribe", {"channel": "drop"})
        await served.register(session_id=session["session_id"], grants=[grant("keep", "subscribe")])
        await client.wait_until(
            lambda: any(e[0] == "replay:unsubscribed" for e in client.events), 1
        )
        assert ("replay:unsubscribed", {"channel": "drop", "reason": "revoked"}) in client.events
        await served.publish("drop", 1)
        await served.publish("keep", 1)
        await client.wait_for_offset("keep", 1)
        assert client.messages["drop"] == []
        with pytest.raises(
            ConnectRefused, match=r"^unauthorized$"
        ):  # SES-4: the old token is replaced
            await Client().connect(served.url, session["token"])


async def test_retention_overtaking_a_paused_subscriber_ends_it_truncated() -> None:  # SIG-2
    async with serve() as served:
        port = int(served.url.rsplit(":", 1)[1])
        async with FaultProxy("127.0.0.1", port) as proxy:
            token = (await served.register())["token"]
            client = Client()
            await client.connect(proxy.url, token)
            await served.call("PUT", "/replay/v1/channels/c/retention", {"max_messages": 50})
            await client.call("replay:subscribe", {"channel": "c", "from": "beginning"})
            proxy.stall()  # the subscriber stops reading; its queue fills, delivery pauses
            payload = "x" * 60_000
            for n in range(400):
                await served.publish("c", {"n": n, "pad": payload})
            proxy.heal()
            await client.wait_until(
                lambda: any(e[0] == "replay:unsubscribed" for e in client.events), 10
            )
            offsets = client.offsets("c")
            assert offsets == list(range(1, len(offsets) + 1))  # never a gap (SIG-1)
            assert ("replay:unsubscribed", {"channel": "c", "reason": "truncated"}) in client.events


async def test_unsubscribe_stops_deliveries_before_its_reply() -> None:  # UNS-3
    async with serve() as served:
        client = await served.client()
        await client.call("replay:subscribe", {"channel": "c"})

        async def publish_many() -> None:
            for n in range(200):
                await served.publish("c", n)

        publishing = asyncio.create_task(publish_many())
        await asyncio.sleep(0.01)
        await client.call("replay:unsubscribe", {"channel": "c"})
        position = len(client.events)
        await publishing
        await asyncio.sleep(0.1)
        assert all(name != "replay:messages" for name, _ in client.events[position:])


async def test_events_of_one_socket_are_processed_in_order() -> None:  # EVT-2
    async with serve() as served:
        client = await served.client()
        subscribe = asyncio.create_task(client.call("replay:subscribe", {"channel": "c"}))
        unsubscribe = asyncio.create_task(client.call("replay:unsubscribe", {"channel": "c"}))
        assert (await subscribe)["ok"] and (await unsubscribe)["ok"]


async def test_a_payload_nested_too_deeply_to_decode_gets_bad_request() -> None:  # ROB-1, EVT-1
    async with serve() as served:
        client = await served.client()
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ack_id = client.sio._generate_ack_id("/", lambda *args: reply.set_result(args[0]))
        nested = "[" * 5000 + "]" * 5000
        # Written by hand: python-socketio's own encoder cannot produce this either.
        await client.sio.eio.send(f'2{ack_id}["replay:subscribe",{{"channel":{nested}}}]')
        answer = await asyncio.wait_for(reply, 5)
        assert answer["error"]["code"] == "bad_request"
        assert (await client.call("replay:subscribe", {"channel": "c"}))["ok"]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


async def _send_with_ack(client: Client, body: str) -> list[Any]:
    """Send ``2<id><body>`` by hand; the list the ack's arguments land in, if one ever comes."""
    replies: list[Any] = []
    ack_id = client.sio._generate_ack_id("/", lambda *args: replies.append(args))
    await client.sio.eio.send(f"2{ack_id}{body}")
    return replies


async def test_an_event_without_an_ack_is_processed_all_the_same() -> None:  # EVT-7
    async with serve() as served:
        await served.publish("c", "one")
        client = await served.client()
        await client.sio.emit("replay:subscribe", {"channel": "c", "from": "beginning"})
        await client.wait_for_offset("c", 1)
        await client.sio.emit("replay:unsubscribe", {"channel": "c"})
        reply = await client.call("replay:unsubscribe", {"channel": "c"})
        assert reply["error"]["code"] == "not_subscribed"  # the ackless one ended it (EVT-2)
        await client.sio.emit("replay:subscribe", {"channel": "d", "from": 0})  # bad_request
        assert (await client.call("replay:subscribe", {"channel": "d"}))["ok"]


RESERVED = ["disconnect", "connect", "connect_error", "disconnecting", "newListener"]


async def test_reserved_event_names_leave_the_connection_alone(  # EVT-8
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        session = await served.register()
        other = await served.register()
        client = await served.client(token=session["token"])
        assert (await client.call("replay:subscribe", {"channel": "c"}))["ok"]
        replies = []
        for name in RESERVED:
            await client.sio.eio.send(f"2{json.dumps([name])}")
            replies.append(await _send_with_ack(client, json.dumps([name])))
        # A CONNECT in disguise must not re-authenticate the socket as another session.
        await client.sio.eio.send(f'2["connect",{{}},{json.dumps({"token": other["token"]})}]')
        assert (await client.call("replay:subscribe", {"channel": "d"}))["ok"]
        await served.publish("c", "still delivered")
        await client.wait_for_offset("c", 1)
        assert replies == [[]] * len(RESERVED)  # no reply, even when one was asked for
        # Not a zombie: the socket still belongs to its session and goes when it is deleted.
        status, _ = await served.call("DELETE", f"/replay/v1/sessions/{session['session_id']}")
        assert status == 204
        await asyncio.wait_for(client.disconnected.wait(), 1.0)
    _no_traceback(caplog)


async def test_event_names_that_are_not_strings_are_dropped(  # EVT-9
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve() as served:
        client = await served.client()
        assert (await client.call("replay:subscribe", {"channel": "c"}))["ok"]
        bodies = ["[5]", "[null]", "[]", '[{"a":1}]', '[["replay:subscribe"]]', '[true,{"x":1}]']
        replies = [await _send_with_ack(client, body) for body in bodies]
        for body in bodies:
            await client.sio.eio.send(f"2{body}")
        assert (await client.call("replay:subscribe", {"channel": "d"}))["ok"]
        await served.publish("c", "still delivered")
        await client.wait_for_offset("c", 1)
        assert replies == [[]] * len(bodies) and client.sio.connected
    _no_traceback(caplog)
