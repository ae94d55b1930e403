"""What the store-facing parts share: reference nodes on a ``redis-server`` (the processes
come from ``processes``), with their JSON logs in files, and a backend client that times each
request and judges its answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.reliability.ledger import Ledger
from bench.reliability.processes import Guarded

START_TIMEOUT_S = 20.0
API_KEY = "reliability-" + secrets.token_hex(8)
ERROR_LEVELS = ("error", "critical")
ANSWER_BOUND_S = 10.0  # an answer slower than this is a hang
RETRY_PAUSE_S = 0.1
PUBLISH_PAUSE_S = 0.01


def campaign_seed() -> int:
    """``RELIABILITY_SEED`` when set (to replay a reported run's schedule), else a random one."""
    given = os.environ.get("RELIABILITY_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


class NodeProcess(Guarded):
    """``python -m reference --store URL`` on a free port; its JSON log goes to a file."""

    def __init__(self, store: str, log: Path) -> None:
        super().__init__()
        self.store, self.log = store, log
        self.url = ""

    async def start(self) -> str:
        """Start and return the node's URL once it listens."""
        argv = [sys.executable, "-m", "reference", "--port", "0", "--store", self.store,
                "--api-key", API_KEY, "--log-level", "info"]  # fmt: skip
        with self.log.open("w") as log:
            await self._spawn(argv, asyncio.subprocess.PIPE, log)
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            first = (await self.process.stdout.readline()).decode().strip()
            for _ in range(2):  # the store line and the API key line; nothing follows
                await self.process.stdout.readline()
        if " listening on " not in first:
            raise RuntimeError(f"node did not start: {first!r}, log: {self.log}")
        self.url = first.rsplit(" ", 1)[1]
        return self.url


def log_anomalies(log: Path) -> list[str]:
    """A traceback or an error line in a node's JSON log, each one an anomaly."""
    found = []
    for raw in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            found.append(f"{log.name}: log line that is not JSON: {raw[:200]!r}")
            continue
        if "exc" in entry or entry.get("level") in ERROR_LEVELS:
            exc = str(entry.get("exc", ""))[-300:]
            found.append(f"{log.name}: logged {entry.get('level')}: {entry.get('msg')!r} {exc}")
    return found


@dataclass
class Answer:
    """An HTTP answer with the time it took; ``status`` 0 is no answer (connection failed)."""

    status: int
    body: Any
    elapsed_s: float


class Backend:
    """The backend API of one node, with the API key; every call is timed, none raises."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.base = http, url + "/replay/v1"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    async def request(self, method: str, path: str, body: object = None) -> Answer:
        started = time.monotonic()
        try:
            async with self.http.request(
                method, self.base + path, json=body, headers=self.headers
            ) as response:
                text = await response.text()
                return Answer(response.status, json.loads(text) if text else None,
                              time.monotonic() - started)  # fmt: skip
        except (aiohttp.ClientError, OSError, ValueError):
            return Answer(0, None, time.monotonic() - started)

    async def publish(self, channel: str, message_id: str, data: object) -> Answer:
        body = {"id": message_id, "data": data}
        return await self.request("POST", f"/channels/{quote(channel, safe='')}/messages", body)

    async def register(self, session_id: str, grants: list[dict[str, Any]]) -> Answer:
        body = {"session_id": session_id, "client_id": "reliability", "grants": grants}
        return await self.request("POST", "/sessions", body)

    async def delete(self, session_id: str) -> Answer:
        return await self.request("DELETE", f"/sessions/{quote(session_id, safe='')}")

    async def history(self, channel: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """The whole retained history (HIS-8 paging), retrying while the node answers 503."""
        messages: list[dict[str, Any]] = []
        query = "from=beginning"
        path = f"/channels/{quote(channel, safe='')}/messages?limit=1000&"
        async with asyncio.timeout(timeout_s):
            while True:
                answer = await self.request("GET", path + query)
                if answer.status != 200:
                    await asyncio.sleep(0.1)
                    continue
                page = answer.body
                messages += page["messages"]
                if not page["messages"] or messages[-1]["offset"] >= page["head"]:
                    return {**page, "messages": messages}
                query = f"from={messages[-1]['offset'] + 1}&epoch={page['epoch']}"


def is_unavailable(answer: Answer) -> bool:
    """A typed ``unavailable``: HTTP 503 with the error body of API-4."""
    body = answer.body
    return (
        answer.status == 503
        and isinstance(body, dict)
        and isinstance(body.get("error"), dict)
        and body["error"].get("code") == "unavailable"
    )


def http_session() -> aiohttp.ClientSession:
    # A fresh connection per request: a pooled one could outlive the node it points at.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=60),
    )


@dataclass
class Answers:
    """The backend answers publishers got: each judged in time and typed (API-4, §4.1)."""

    seed: int
    requests: int = 0
    unavailable: int = 0
    slowest_s: float = 0.0
    publishes: int = 0
    unanswered: int = 0  # requests a node's death left without an answer, retried elsewhere
    anomalies: list[str] = field(default_factory=list)

    def judge(self, what: str, answer: Answer) -> None:
        """In time, and a success or a typed ``unavailable``; anything else is an anomaly."""
        self.requests += 1
        self.slowest_s = max(self.slowest_s, answer.elapsed_s)
        if answer.elapsed_s > ANSWER_BOUND_S:
            self.anomalies.append(f"{what} took {answer.elapsed_s:.1f} s")
        if is_unavailable(answer):
            self.unavailable += 1
        elif answer.status not in (200, 201):
            self.anomalies.append(f"{what} answered {answer.status}: {answer.body}")

    def counts(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "unavailable": self.unavailable,
            "slowest_ms": round(self.slowest_s * 1000),
            "publishes": self.publishes,
            "unanswered": self.unanswered,
        }


class Route:
    """Where a publisher sends: one node, for good. A request left without an answer is then
    an anomaly; a route that replaces its node (``crash_loop.Relay``) retries it elsewhere."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def unanswered(self, backend: Backend) -> bool:
        """Whether a publish that ``backend`` left unanswered may be retried (elsewhere)."""
        return False


async def publisher(
    name: str, route: Route, channels: tuple[str, ...], ledger: Ledger, answers: Answers,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    """Publish unique ids until ``stop``, each retried by its id until acknowledged."""
    n = 0
    while not stop.is_set():
        n += 1
        channel, message_id = channels[n % len(channels)], f"{answers.seed}-{name}-{n}"
        data = {"publisher": name, "n": n}
        ledger.send(channel, message_id, data)
        answers.publishes += 1
        while True:
            backend = route.backend
            answer = await backend.publish(channel, message_id, data)
            if answer.status == 0 and await route.unanswered(backend):
                answers.unanswered += 1
                continue
            answers.judge(f"publish {message_id} via {backend.base}", answer)
            if answer.status in (200, 201):
                ledger.acknowledge(channel, message_id, answer.body)
                break
            if answer.status not in (0, 503):
                break  # judged already; retrying would not change it
            await asyncio.sleep(RETRY_PAUSE_S)
        await asyncio.sleep(PUBLISH_PAUSE_S)
