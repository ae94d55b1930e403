"""The backend HTTP API as the campaign's parts use it: sessions, single and batch publishes
that answer (status, body) instead of raising, so that a part counts each failure."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

REQUEST_TIMEOUT_S = 30.0


class Backend:
    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str) -> None:
        self.http, self.url = http, url + "/replay/v1"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=body, headers=self.headers,
                                  timeout=self.timeout) as r:  # fmt: skip
            return r.status, await r.json(content_type=None)

    async def register(self, channels: str, client_id: str = "reliability") -> str:
        grants = [{"channels": channels, "actions": ["subscribe", "history"]}]
        status, body = await self._post("/sessions", {"client_id": client_id, "grants": grants})
        if status != 201:
            raise RuntimeError(f"registering a session answered {status} {body}")
        return str(body["token"])

    async def publish(self, channel: str, data: Any, id: str | None = None) -> tuple[int, Any]:
        body = {"data": data} if id is None else {"data": data, "id": id}
        return await self._post(f"/channels/{quote(channel, safe='')}/messages", body)

    async def batch(self, channel: str, entries: list[dict[str, Any]]) -> tuple[int, Any]:
        path = f"/channels/{quote(channel, safe='')}/batches"
        return await self._post(path, {"messages": entries})

    async def info_status(self, timeout_s: float) -> int:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.http.get(self.url + "/info", timeout=timeout) as r:
            return r.status
