"""The batch publish route of a served reference node (spec §4.8)."""

from __future__ import annotations

import io
import json

from harness import serve
from test_http_api import raw

from reference.core.model import Limits

BATCH = "/replay/v1/channels/c/batches"


def _stream(body: str) -> io.BytesIO:
    return io.BytesIO(body.encode())  # aiohttp warns about large bytes bodies


async def test_a_batch_is_stored_and_answered_in_order() -> None:  # BAT-1, BAT-2
    async with serve() as served:
        body = json.dumps({"messages": [{"data": 1, "id": "k"}, {"data": 2}]})
        status, answer = await raw(served.http, "POST", served.url + BATCH, data=body)
        assert status == 201
        assert [r["offset"] for r in answer["results"]] == [1, 2]
        assert answer["results"][0]["id"] == "k" and answer["channel"] == "c"
        status, again = await raw(
            served.http,
            "POST",
            served.url + BATCH,
            data=json.dumps({"messages": [{"data": 3, "id": "k"}]}),
        )
        assert status == 200 and again["results"] == [{"offset": 1, "id": "k", "duplicate": True}]
        status, history = await raw(
            served.http, "GET", served.url + "/replay/v1/channels/c/messages"
        )
        assert [m["data"] for m in history["messages"]] == [1, 2]


async def test_the_batch_body_limit_is_its_own_and_advertised() -> None:  # BAT-10, INF-7
    limits = Limits(max_payload_bytes=1024, max_batch_publish=2000)
    async with serve(limits=limits) as served:
        _, info = await raw(served.http, "GET", served.url + "/replay/v1/info", key=None)
        advertised = info["limits"]["max_batch_publish_bytes"]
        assert advertised == limits.batch_publish_body_limit() >= 1024 * 1024
        assert info["limits"]["max_batch_publish"] == 2000
        # 1,500 entries of 1000 bytes: far above the single route's limit, within the batch's.
        entries = [{"data": "x" * 998} for _ in range(1500)]
        body = json.dumps({"messages": entries})
        assert 6 * 1024 + 16384 < len(body) < advertised
        status, answer = await raw(served.http, "POST", served.url + BATCH, data=_stream(body))
        assert status == 201 and answer["results"][-1]["offset"] == 1500
        huge = json.dumps({"messages": [{"data": "x" * 1000}] * 1}) + " " * advertised
        status, error = await raw(served.http, "POST", served.url + BATCH, data=_stream(huge))
        assert status == 413 and error["error"]["code"] == "payload_too_large"


async def test_errors_name_the_entry_and_store_nothing() -> None:  # BAT-3, BAT-5, BAT-7
    limits = Limits(max_payload_bytes=8)
    async with serve(limits=limits) as served:
        for entries, status, index in [
            ([{"data": 1}, {"data": 2, "extra": 1}], 400, 1),
            ([{"data": 1}, {"data": "a long string"}], 413, 1),
        ]:
            body = json.dumps({"messages": entries})
            got, error = await raw(served.http, "POST", served.url + BATCH, data=body)
            assert got == status and error["error"]["details"]["index"] == index
        got, error = await raw(served.http, "POST", served.url + BATCH, data=b'{"messages": []}')
        assert got == 400 and error["error"]["code"] == "bad_request"
        _, history = await raw(served.http, "GET", served.url + "/replay/v1/channels/c/messages")
        assert history["head"] == 0


async def test_too_many_entries_is_payload_too_large() -> None:  # BAT-6
    async with serve(limits=Limits(max_batch_publish=1000)) as served:
        body = json.dumps({"messages": [{"data": n} for n in range(1001)]})
        status, error = await raw(served.http, "POST", served.url + BATCH, data=body)
        assert status == 413 and error["error"]["details"] == {"count": 1001, "limit": 1000}
        status, _ = await raw(served.http, "GET", served.url + BATCH)
        assert status == 404  # API-10: a route is a method and a path
