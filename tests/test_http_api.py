"""The backend HTTP API of a served reference node (spec §4)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from harness import API_KEY, serve

SESSION = {"client_id": "u", "grants": [{"channels": "*", "actions": ["subscribe"]}]}


async def raw(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    key: str | None = API_KEY,
    data: Any = None,
    content_type: str | None = "application/json",
) -> tuple[int, Any]:
    """One request; ``data`` goes with ``content_type``, or with no Content-Type at all."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    if data is not None and content_type is not None:
        headers["Content-Type"] = content_type
    skip = ["Content-Type"] if content_type is None else []
    async with http.request(
        method, url, data=data, headers=headers, skip_auto_headers=skip
    ) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_info_needs_no_key_and_advertises_what_is_implemented() -> None:  # INF-1, INF-2
    async with serve() as served:
        status, body = await raw(served.http, "GET", served.url + "/replay/v1/info", key=None)
        assert status == 200 and body["protocol"] == "replay/1"
        assert body["durable"] is False and "cluster" not in body["features"]
        assert set(body["features"]) == {
            "sessions",
            "client-publish",
            "idempotency",
            "history",
            "cursors",
            "retention",
            "batch-publish",
        }


@pytest.mark.parametrize("key", [None, "wrong", ""])
async def test_every_other_route_needs_the_api_key(key: str | None) -> None:  # API-2
    async with serve() as served:
        for method, path in [
            ("POST", "/replay/v1/sessions"),
            ("DELETE", "/replay/v1/sessions/x"),
            ("POST", "/replay/v1/channels/c/messages"),
            ("GET", "/replay/v1/channels/c/messages"),
            ("PUT", "/replay/v1/channels/c/retention"),
            ("POST", "/replay/v1/channels/c/batches"),
        ]:
            status, body = await raw(served.http, method, served.url + path, key=key, data="{}")
            assert (status, body["error"]["code"]) == (401, "unauthorized"), path


async def test_errors_are_json_with_the_spec_status() -> None:  # API-1, API-4, API-6, API-7
    async with serve() as served:
        url = served.url + "/replay/v1"
        cases = [
            ("POST", "/sessions", "not json", 400, "bad_request"),
            ("POST", "/sessions", "NaN", 400, "bad_request"),
            ("POST", "/sessions", '{"client_id": "u"}', 400, "bad_request"),
            ("POST", "/channels/a%20b/messages", '{"data": 1}', 400, "bad_request"),
            ("POST", "/channels/room%0A/messages", '{"data": 1}', 400, "bad_request"),
            (
                "POST",
                "/channels/c/messages",
                '{"data": "' + "x" * 70_000 + '"}',
                413,
                "payload_too_large",
            ),
            (
                "POST",
                "/channels/c/messages",
                '{"data": "' + "x" * 400_000 + '"}',
                413,
                "payload_too_large",
            ),
            ("GET", "/channels/c/messages?from=0", None, 400, "bad_request"),
            ("GET", "/channels/c/messages?from=9", None, 400, "bad_request"),  # HIS-9
            ("GET", "/channels/c/messages?from=9&epoch=gone", None, 409, "epoch_mismatch"),
            ("DELETE", "/sessions/nobody", None, 404, "not_found"),
            ("GET", "/nowhere", None, 404, "not_found"),
            ("PATCH", "/info", None, 404, "not_found"),
            ("PUT", "/channels/c/retention", "{}", 400, "bad_request"),
        ]
        for method, path, body, status, code in cases:
            got_status, got = await raw(served.http, method, url + path, data=body)
            assert (got_status, got["error"]["code"]) == (status, code), (method, path)
            assert isinstance(got["error"]["message"], str)


async def test_channel_is_one_percent_encoded_segment() -> None:  # API-5
    async with serve() as served:
        reply = await served.publish("a/b:c@d", "x")
        assert reply["channel"] == "a/b:c@d"
        status, body = await served.call("GET", "/replay/v1/channels/a%2Fb%3Ac%40d/messages")
        assert status == 200 and body["messages"][0]["data"] == "x"
        # A channel literally named ".../messages" still routes: the last segment decides.
        await served.publish("x/messages", 1)
        status, body = await served.call("GET", "/replay/v1/channels/x%2Fmessages/messages")
        assert status == 200 and body["channel"] == "x/messages" and body["head"] == 1


async def test_publish_and_history_paging() -> None:  # PUB-1, HIS-4, HIS-8
    async with serve() as served:
        for n in range(25):
            status, body = await served.call("POST", "/replay/v1/channels/c/messages", {"data": n})
            assert status == 201 and body["offset"] == n + 1 and body["duplicate"] is False
        seen: list[int] = []
        start, epoch = "beginning", ""
        while True:
            query = f"from={start}&limit=10" + (f"&epoch={epoch}" if epoch else "")
            status, page = await served.call("GET", f"/replay/v1/channels/c/messages?{query}")
            assert status == 200 and len(page["messages"]) <= 10
            if not page["messages"]:
                break
            seen += [m["data"] for m in page["messages"]]
            start, epoch = str(page["messages"][-1]["offset"] + 1), page["epoch"]  # HIS-8
        assert seen == list(range(25))
        status, body = await served.call(
            "GET", f"/replay/v1/channels/c/messages?from=27&epoch={epoch}"
        )
        assert (status, body["error"]["code"]) == (416, "offset_out_of_range")  # HIS-6


async def test_duplicate_publish_is_200_with_the_original_offset() -> None:  # IDM-7
    async with serve() as served:
        first = await served.call("POST", "/replay/v1/channels/c/messages", {"data": 1, "id": "k"})
        again = await served.call("POST", "/replay/v1/channels/c/messages", {"data": 2, "id": "k"})
        assert first[0] == 201 and again[0] == 200
        assert again[1]["offset"] == first[1]["offset"] and again[1]["duplicate"] is True


async def test_retention_update_and_truncated_history() -> None:  # RET-1, RET-12, HIS-7
    async with serve() as served:
        status, body = await served.call(
            "PUT", "/replay/v1/channels/c/retention", {"max_messages": 3, "max_age_s": 60}
        )
        assert (status, body) == (200, {"channel": "c", "max_messages": 3, "max_age_s": 60})
        status, body = await served.call(
            "PUT", "/replay/v1/channels/c/retention", {"max_age_s": None}
        )
        assert body == {"channel": "c", "max_messages": 3, "max_age_s": None}
        for n in range(10):
            await served.publish("c", n)
        status, body = await served.call("GET", "/replay/v1/channels/c/messages")
        assert body["first"] == 8 and [m["offset"] for m in body["messages"]] == [8, 9, 10]
        epoch = body["epoch"]
        status, body = await served.call(
            "GET", f"/replay/v1/channels/c/messages?from=2&epoch={epoch}"
        )
        assert (status, body["error"]["code"]) == (410, "history_truncated")


async def test_session_upsert_is_atomic_under_concurrency() -> None:  # SES-1, SES-2, SES-3
    async with serve() as served:
        body = SESSION | {"session_id": "user-1:tab-1"}
        results = await asyncio.gather(
            *(served.call("POST", "/replay/v1/sessions", body) for _ in range(20))
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] * 19 + [201]
        assert {reply["session_id"] for _, reply in results} == {"user-1:tab-1"}
        assert len({reply["token"] for _, reply in results}) == 20


async def test_delete_session_twice() -> None:  # SES-13, SES-16
    async with serve() as served:
        session = await served.register(session_id="s1")
        assert (await served.call("DELETE", "/replay/v1/sessions/s1"))[0] == 204
        assert (await served.call("DELETE", "/replay/v1/sessions/s1"))[0] == 404
        status, _ = await served.call("POST", "/replay/v1/sessions", SESSION | {"session_id": "s1"})
        assert status == 201 and session["session_id"] == "s1"


# A body above the reference's default body limit (6 x 65536 + 64 KiB), and data within that
# limit but above max_payload_bytes.
OVER_BODY_LIMIT = '{"data": 1}' + " " * 500_000
TOO_LARGE_DATA = '{"data": "' + "x" * 70_000 + '"}'


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_json_bodies_are_accepted_with_any_parameters(content_type: str) -> None:  # API-11
    async with serve() as served:
        url = served.url + "/replay/v1"
        body = '{"data": 1}'
        status, _ = await raw(
            served.http, "POST", url + "/channels/c/messages", data=body, content_type=content_type
        )
        assert status == 201
        status, _ = await raw(
            served.http,
            "PUT",
            url + "/channels/c/retention",
            data='{"max_messages": 5}',
            content_type=content_type,
        )
        assert status == 200
        status, _ = await raw(
            served.http,
            "POST",
            url + "/sessions",
            data='{"client_id": "u", "grants": []}',
            content_type=content_type,
        )
        assert status == 201


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "", "json"]
)
async def test_other_bodies_are_bad_requests_and_store_nothing(content_type: str | None) -> None:
    async with serve() as served:  # API-11
        url = served.url + "/replay/v1"
        for method, path, body in [
            ("POST", "/channels/c/messages", '{"data": 1}'),
            ("PUT", "/channels/c/retention", '{"max_messages": 5}'),
            ("POST", "/sessions", '{"client_id": "u", "grants": []}'),
        ]:
            status, reply = await raw(
                served.http, method, url + path, data=body, content_type=content_type
            )
            assert (status, reply["error"]["code"]) == (400, "bad_request"), (path, content_type)
        status, page = await served.call("GET", "/replay/v1/channels/c/messages")
        assert status == 200 and page["head"] == 0


async def test_routes_check_in_one_order() -> None:  # API-9, API-10, API-12, PUB-9
    async with serve() as served:
        url = served.url + "/replay/v1"
        cases: list[tuple[str, str, str | None, str | None, str | None, int]] = [
            # method, path, key, body, Content-Type, expected status
            ("POST", "/nowhere", None, "{", "text/plain", 404),  # route before key
            ("PUT", "/sessions", None, "{", None, 404),  # a wrong method is an unknown route
            ("DELETE", "/info", "wrong", None, None, 404),
            ("GET", "/info", "wrong", None, None, 200),  # info checks no key
            ("POST", "/channels/a%20b/messages", None, OVER_BODY_LIMIT, "text/plain", 401),
            ("DELETE", "/sessions/has%20space", None, None, None, 401),  # key before SES-13
            ("DELETE", "/sessions/has%20space", API_KEY, None, None, 404),
            ("POST", "/channels/c/messages", API_KEY, OVER_BODY_LIMIT, "text/plain", 400),
            ("POST", "/channels/a%20b/messages", API_KEY, OVER_BODY_LIMIT, None, 400),
            (
                "POST",
                "/channels/a%20b/messages",
                API_KEY,
                "{" + OVER_BODY_LIMIT,
                "application/json",
                413,
            ),
            ("PUT", "/channels/a%20b/retention", API_KEY, OVER_BODY_LIMIT, "application/json", 413),
            ("POST", "/sessions", API_KEY, "[" + OVER_BODY_LIMIT, "application/json", 413),
            ("POST", "/channels/a%20b/messages", API_KEY, TOO_LARGE_DATA, "application/json", 400),
            (
                "POST",
                "/channels/c/messages",
                API_KEY,
                TOO_LARGE_DATA[:-1] + ', "x": 1}',
                "application/json",
                400,
            ),
            ("POST", "/channels/c/messages", API_KEY, TOO_LARGE_DATA, "application/json", 413),
        ]
        for method, path, key, body, content_type, expected in cases:
            status, _ = await raw(
                served.http, method, url + path, key=key, data=body, content_type=content_type
            )
            assert status == expected, (method, path, key, (body or "")[:20], content_type)
