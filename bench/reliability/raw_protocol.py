"""Part ``raw-protocol``: hostile peers send hand-built Engine.IO and Socket.IO frames (bad
packet types and namespaces, binary placeholders, huge ack ids, invalid UTF-8, floods) over
WebSocket and long-polling, while one well-behaved subscriber must receive every message a
steady publisher stores, exactly once and in order.

Anomalies: a traceback or an error line in the server's log, a 5xx answer, the server gone or
not answering ``GET /replay/v1/info``, and a lost, duplicated or reordered message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import random
import secrets
import subprocess
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from bench.reliability.hostile_frames import NOISE_CHANNEL, Frame, FrameMaker, InvalidText
from bench.reliability.result import PartResult

NAME = "raw-protocol"
CHANNEL = "reliability"
PUBLISH_INTERVAL_S = 0.02  # 50 messages/s
HOSTILE_WORKERS = 6
POLLING_SHARE = 0.2
WS_PATH = "/socket.io/?EIO=4&transport=websocket"
POLL_PATH = "/socket.io/?EIO=4&transport=polling"
ERROR_LEVELS = ("error", "critical")
STOP_TIMEOUT_S = 10
# The reference answers every waiting long-polling GET when it shuts down (peer_guard), so
# aiohttp's graceful shutdown has no request to wait for: a server still running after this
# is stuck (the first runs found exits of over 30 s).
EXIT_TIMEOUT_S = 10
# Lines of the server's log are read up to READ_LIMIT bytes (asyncio's default, 64 KiB, ends
# the reader on a longer one); one longer than LONGEST_LOG_LINE is an anomaly.
READ_LIMIT = 64 * 2**20
LONGEST_LOG_LINE = 16 * 2**10


@dataclass
class Tally:
    """What the part counts, and what it found wrong."""

    seed: int
    frames: int = 0
    connections: int = 0
    polling_connections: int = 0
    published: int = 0
    server_5xx: int = 0
    tracebacks: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    recent: deque[list[Frame]] = field(default_factory=lambda: deque(maxlen=8))

    def anomaly(self, what: str) -> None:
        """Record an anomaly with the frames of the connections that ran just before it."""
        frames = [repr(f)[:120] for conn in self.recent for f in conn[:3]]
        self.anomalies.append(f"{what[:500]} (recent frames: {frames[:12]})")


class Subscriber:
    """The well-behaved client: python-socketio, subscribed to ``CHANNEL`` from the start."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.offsets: list[int] = []
        self._received = asyncio.Event()
        self.sio.on("replay:messages", self._on_messages)

    def _on_messages(self, event: dict[str, Any]) -> None:
        if event["channel"] == CHANNEL:
            self.offsets.extend(m["offset"] for m in event["messages"])
            self._received.set()

    async def wait_for(self, count: int) -> None:
        while len(self.offsets) < count:
            self._received.clear()
            await self._received.wait()

    async def start(self, url: str, token: str) -> None:
        await self.sio.connect(url, auth={"token": token}, transports=["websocket"])
        reply = await self.sio.call("replay:subscribe", {"channel": CHANNEL})
        if not reply.get("ok"):
            raise RuntimeError(f"subscribe failed: {reply}")


async def start_server(api_key: str) -> tuple[asyncio.subprocess.Process, str]:
    argv = [sys.executable, "-m", "reference", "--port", "0", "--api-key", api_key,
            "--log-level", "info"]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, limit=READ_LIMIT
    )
    assert process.stdout is not None
    first = (await process.stdout.readline()).decode()
    return process, first.strip().rsplit(" ", 1)[1]


async def read_log(stream: asyncio.StreamReader, tally: Tally) -> None:
    """Count the server's JSON log lines by level; a traceback or an error is an anomaly."""
    async for raw in stream:
        if len(raw) > LONGEST_LOG_LINE:  # a peer's payload echoed into the log, say
            tally.anomaly(f"a log line of {len(raw):,} bytes: {raw[:300]!r}")
        try:
            entry = json.loads(raw)
        except ValueError:
            tally.levels["unparsed"] += 1
            tally.anomaly(f"log line that is not JSON: {raw[:200]!r}")
            continue
        level = str(entry.get("level", "?"))
        tally.levels[level] += 1
        if "exc" in entry:
            tally.tracebacks += 1
        if "exc" in entry or level in ERROR_LEVELS:
            tally.anomaly(
                f"server logged {level}: {entry.get('msg')!r} {entry.get('exc', '')[-300:]}"
            )


class Backend:
    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str) -> None:
        self.http, self.url = http, url + "/replay/v1"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def register(self, channels: str) -> str:
        grants = [{"channels": channels, "actions": ["subscribe", "publish", "history"]}]
        body = {"client_id": "reliability", "grants": grants}
        async with self.http.post(self.url + "/sessions", json=body, headers=self.headers) as r:
            return str((await r.json())["token"])

    async def publish(self, data: object) -> int:
        path = f"{self.url}/channels/{CHANNEL}/messages"
        async with self.http.post(path, json={"data": data}, headers=self.headers) as r:
            return r.status

    async def info_status(self) -> int:
        async with self.http.get(self.url + "/info") as r:
            return r.status


async def publisher(backend: Backend, deadline: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        status = await backend.publish({"n": tally.published + 1})
        if status >= 500:
            tally.server_5xx += 1
            tally.anomaly(f"publish answered {status}")
        elif status == 201:
            tally.published += 1
        await asyncio.sleep(PUBLISH_INTERVAL_S)


async def _send_ws(ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> None:
    if isinstance(frame, InvalidText):  # aiohttp's client will not build one from a str
        await ws._writer.send_frame(frame.payload, aiohttp.WSMsgType.TEXT)
    elif isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)


async def websocket_peer(http: aiohttp.ClientSession, url: str, token: str | None,
                         frames: list[Frame], tally: Tally) -> None:  # fmt: skip
    async with http.ws_connect(url + WS_PATH, max_msg_size=0) as ws:
        hello = await ws.receive(timeout=5)
        if hello.type != aiohttp.WSMsgType.TEXT or not str(hello.data).startswith("0{"):
            tally.anomaly(f"no Engine.IO OPEN on a new WebSocket: {hello.type} {hello.data!r}")
            return
        if token is not None:
            await ws.send_str("40" + json.dumps({"token": token}))
        for frame in frames:
            if ws.closed:
                break
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await _send_ws(ws, frame)
                tally.frames += 1
        with contextlib.suppress(TimeoutError):  # read what comes, briefly
            while not ws.closed:
                message = await ws.receive(timeout=0.3)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break


def _polling_text(frame: Frame) -> bytes:
    if isinstance(frame, InvalidText):
        return frame.payload
    if isinstance(frame, bytes):
        return b"b" + base64.b64encode(frame)
    return frame.encode("utf-8", "surrogatepass")


def _step(what: str) -> str:
    """A polling peer's request, stamped with the loop's clock to show which one waited."""
    return f"{asyncio.get_running_loop().time():.1f} {what}"


async def polling_peer(http: aiohttp.ClientSession, url: str, token: str | None,
                       frames: list[Frame], tally: Tally, rng: random.Random,
                       steps: list[str]) -> None:  # fmt: skip
    steps.append(_step("GET handshake"))
    async with http.get(url + POLL_PATH) as response:
        text = await response.text()
    if response.status != 200 or not text.startswith("0{"):
        tally.anomaly(f"polling handshake answered {response.status} {text[:100]!r}")
        return
    session = f"{url}{POLL_PATH}&sid={json.loads(text[1:])['sid']}"
    bodies = [] if token is None else [("40" + json.dumps({"token": token})).encode()]
    while frames:
        take = rng.randint(1, 20)
        bodies.append(b"\x1e".join(_polling_text(f) for f in frames[:take]))
        frames = frames[take:]
    # Reading as a real long-polling client does: one that never GETs is a slow consumer
    # (its sends block, FLW-2), another part's attack.
    reader = asyncio.ensure_future(_poll(http, session))
    try:
        for body in bodies:
            steps.append(_step(f"POST {body[:300]!r}"))
            async with http.post(session, data=body) as response:
                tally.frames += body.count(b"\x1e") + 1
                if response.status >= 500:
                    tally.server_5xx += 1
                    tally.anomaly(f"polling POST answered {response.status}")
                if response.status != 200:
                    return
        steps.append(_step("POST CLOSE"))
        async with http.post(session, data=b"1"):  # Engine.IO CLOSE: leave no session behind
            pass
    finally:
        reader.cancel()


async def _poll(http: aiohttp.ClientSession, session: str) -> None:
    while True:
        async with http.get(session) as response:
            await response.read()
            if response.status != 200:
                return


async def hostile(http: aiohttp.ClientSession, url: str, token: str, deadline: float,
                  tally: Tally, rng: random.Random, maker: FrameMaker) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        frames = maker.connection()
        tally.recent.append(frames)
        tally.connections += 1
        peer_token = token if rng.random() < 0.7 else None
        polling = False
        steps: list[str] = []  # a polling peer's requests, to name the one left unanswered
        try:
            async with asyncio.timeout(30):
                if polling := rng.random() < POLLING_SHARE:
                    tally.polling_connections += 1
                    await polling_peer(http, url, peer_token, frames, tally, rng, steps)
                else:
                    await websocket_peer(http, url, peer_token, frames, tally)
        except TimeoutError:
            kind = "long-polling" if polling else "WebSocket"
            tally.anomaly(
                f"a hostile {kind} connection got no answer for 30 s at "
                f"{_step('now')}, after {steps[-3:]}"
            )
        except (aiohttp.ClientError, ConnectionError):
            pass  # the server closed it: what a hostile peer should expect


def check_order(offsets: list[int], published: int) -> list[str]:
    """The subscriber got offsets 1..published, each exactly once, in order."""
    if offsets == list(range(1, published + 1)):
        return []
    seen = Counter(offsets)
    lost = [n for n in range(1, published + 1) if n not in seen]
    duplicated = [n for n, times in seen.items() if times > 1]
    reordered = any(a >= b for a, b in itertools.pairwise(offsets))
    return [f"subscriber: {len(lost)} lost (first {lost[:5]}), {len(duplicated)} duplicated "
            f"(first {duplicated[:5]}), reordered: {reordered}"]  # fmt: skip


async def run(budget_s: float) -> PartResult:
    """Attack a fresh reference for ``budget_s`` seconds; count and judge."""
    tally = Tally(seed=secrets.randbelow(2**32))
    rng = random.Random(tally.seed)
    maker = FrameMaker(tally.seed)
    api_key = secrets.token_hex(16)
    process, url = await start_server(api_key)
    assert process.stderr is not None
    log_task = asyncio.ensure_future(read_log(process.stderr, tally))
    subscriber = Subscriber()
    try:
        async with aiohttp.ClientSession() as http:
            backend = Backend(http, url, api_key)
            await subscriber.start(url, await backend.register(CHANNEL))
            token = await backend.register(NOISE_CHANNEL)
            deadline = asyncio.get_running_loop().time() + budget_s
            await asyncio.gather(
                publisher(backend, deadline, tally),
                *(hostile(http, url, token, deadline, tally, rng, maker)
                  for _ in range(HOSTILE_WORKERS)),
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await subscriber.wait_for(tally.published)
            if process.returncode is not None:
                tally.anomaly(f"the server exited with {process.returncode}")
            elif (status := await backend.info_status()) != 200:
                tally.anomaly(f"GET /replay/v1/info answered {status}")
            for problem in check_order(subscriber.offsets, tally.published):
                tally.anomaly(problem)
    finally:
        await _stop(subscriber, process, log_task, tally)
    return _result(tally, budget_s, len(subscriber.offsets))


async def _stop(subscriber: Subscriber, process: asyncio.subprocess.Process,
                log_task: asyncio.Future[None], tally: Tally) -> None:  # fmt: skip
    """Disconnect, stop the server, read its log to the end; each step bounded in time."""
    steps = [
        ("the subscriber's disconnect", subscriber.sio.disconnect, STOP_TIMEOUT_S),
        ("the server's exit after SIGTERM", lambda: _terminate(process), EXIT_TIMEOUT_S),
        ("the end of the server's log", lambda: log_task, STOP_TIMEOUT_S),
    ]
    for what, step, limit in steps:
        try:
            async with asyncio.timeout(limit):
                await step()
        except TimeoutError:
            tally.anomaly(f"{what} took over {limit} s")
    if process.returncode is None:
        process.kill()
        await process.wait()
    log_task.cancel()


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await process.wait()


def _result(tally: Tally, budget_s: float, received: int) -> PartResult:
    in_order = "in order" if not tally.anomalies else "checked"
    errors = tally.server_5xx + sum(tally.levels[level] for level in ERROR_LEVELS)
    summary = (
        f"{tally.frames:,} frames from {tally.connections:,} hostile connections "
        f"({tally.polling_connections:,} long-polling) in {budget_s:g} s; {errors:,} server "
        f"errors, {tally.tracebacks:,} tracebacks, {sum(tally.levels.values()):,} log lines; "
        f"well-behaved subscriber {received:,}/{tally.published:,} messages {in_order}"
    )
    counts = {
        "seed": tally.seed,
        "frames": tally.frames,
        "connections": tally.connections,
        "polling_connections": tally.polling_connections,
        "published": tally.published,
        "received": received,
        "server_5xx": tally.server_5xx,
        "tracebacks": tally.tracebacks,
        **{f"log_{level}": n for level, n in sorted(tally.levels.items())},
    }
    return PartResult(NAME, summary, counts, tally.anomalies)
