"""A well-behaved subscriber that resumes: one python-socketio client that follows channels
and, after any disconnect, connects again and subscribes from its last offset + 1 with that
offset's epoch (RES-1), retrying ``rate_limited`` answers and refused connects with backoff.

It records what it received (offsets, and their arrival times when asked) and leaves judging
to the part: what counts as an anomaly (an epoch change, a ``lagging`` end) differs by part.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any

import socketio

CALL_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
RESUMABLE_REASONS = frozenset({"lagging"})  # LIF-4: nothing skipped, resume from next offset
# Answers that name a limit or a passing failure of the server, not of the request (EVT-11):
# the client retries them with backoff, and they are counted, not judged.
RETRIED_CODES = frozenset({"rate_limited", "unavailable"})


class FollowError(Exception):
    """The server answered a subscribe with an error a resume cannot get past."""


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter, so that retries of a storm spread out."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt) * rng.uniform(0.5, 1.0)


class Follower:
    """Follows ``channels`` from the beginning, resuming by offset and epoch."""

    def __init__(self, url: str, token: str, channels: list[str], *, stamp: bool = False,
                 seed: int = 0) -> None:  # fmt: skip
        self.url, self.token, self.channels = url, token, channels
        self.stamp = stamp  # keep each message's arrival time (for latency)
        self.rng = random.Random(seed)
        self.last = dict.fromkeys(channels, 0)
        self.epoch: dict[str, str] = {}
        self.offsets: dict[str, list[int]] = {ch: [] for ch in channels}
        self.arrived: dict[str, list[float]] = {ch: [] for ch in channels}
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.connected_at = 0.0  # of the latest connection
        self.caught_up_at = 0.0  # when it had every message up to the resume's head
        self._targets: dict[str, int] = {}  # the heads the latest resume still has to reach
        self._sio: socketio.AsyncClient | None = None
        self._gone = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- events ---------------------------------------------------------------------------

    def _on_messages(self, event: dict[str, Any]) -> None:
        channel, messages = event["channel"], event["messages"]
        if channel not in self.offsets or not messages:
            self.problems.append(f"replay:messages for {channel!r} with {len(messages)} messages")
            return
        now = time.monotonic()
        self.offsets[channel].extend(m["offset"] for m in messages)
        if self.stamp:
            self.arrived[channel].extend([now] * len(messages))
        self.last[channel] = messages[-1]["offset"]
        if channel in self._targets and self.last[channel] >= self._targets[channel]:
            del self._targets[channel]
            if not self._targets:
                self.caught_up_at = now
        self._progress.set()

    def _on_unsubscribed(self, event: dict[str, Any]) -> None:
        reason = str(event.get("reason"))
        self.counts[f"unsubscribed_{reason}"] += 1
        if reason not in RESUMABLE_REASONS:
            self.problems.append(f"replay:unsubscribed {event}")
            return
        task = asyncio.ensure_future(self._subscribe(event["channel"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_disconnect(self, *_: object) -> None:
        self._gone.set()

    # --- connecting and subscribing -------------------------------------------------------

    def _request(self, channel: str) -> dict[str, Any]:
        if channel not in self.epoch:
            return {"channel": channel, "from": "beginning"}
        return {"channel": channel, "from": self.last[channel] + 1, "epoch": self.epoch[channel]}

    async def _subscribe(self, channel: str) -> None:
        attempt = 0
        while self._sio is not None:
            request = self._request(channel)
            reply = await self._sio.call("replay:subscribe", request, timeout=CALL_TIMEOUT_S)
            if reply.get("ok"):
                break
            code = reply.get("error", {}).get("code")
            if code not in RETRIED_CODES:
                if code == "epoch_mismatch":
                    self.counts["epoch_changes"] += 1
                raise FollowError(f"subscribe {request} answered {reply}")
            self.counts[code] += 1
            await asyncio.sleep(backoff_s(attempt, self.rng))
            attempt += 1
        else:
            return
        if channel in self.epoch and reply["epoch"] != self.epoch[channel]:
            self.counts["epoch_changes"] += 1
            self.problems.append(f"{channel}: epoch {self.epoch[channel]} became {reply['epoch']}")
        self.epoch[channel] = reply["epoch"]
        if reply["head"] > self.last[channel]:
            self._targets[channel] = reply["head"]
        if not self._targets:
            self.caught_up_at = time.monotonic()

    async def connect(self) -> None:
        """Connect and subscribe every channel (from where it left off), once."""
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("replay:messages", self._on_messages)
        sio.on("replay:unsubscribed", self._on_unsubscribed)
        sio.on("disconnect", self._on_disconnect)
        self._gone.clear()
        self._targets.clear()
        self.caught_up_at = 0.0
        try:
            await sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                              wait_timeout=CONNECT_TIMEOUT_S, retry=False)  # fmt: skip
        except BaseException:
            await _release(sio)
            raise
        self._sio = sio
        self.connected_at = time.monotonic()
        for channel in self.channels:
            await self._subscribe(channel)

    async def follow(self, stop: asyncio.Event, *, connected: bool = False) -> None:
        """Stay connected until ``stop`` (``connected``: ``connect`` already succeeded): after
        a disconnect, connect again at once (the storm), then with backoff while it fails."""
        while not stop.is_set():
            if not connected and not await self._connect_until_done():
                return
            connected = False
            await _first_of(self._gone.wait(), stop.wait())
            await self._drop()
            if not stop.is_set():
                self.counts["reconnects"] += 1

    async def _connect_until_done(self) -> bool:
        attempt = 0
        while True:
            try:
                await self.connect()
                return True
            except (socketio.exceptions.SocketIOError, TimeoutError, OSError):
                self.counts["connect_retries"] += 1
                await self._drop()
                await asyncio.sleep(backoff_s(attempt, self.rng))
                attempt += 1
            except FollowError as exc:
                self.problems.append(str(exc))
                return False

    async def _drop(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            await _release(sio)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._drop()

    async def wait_for(self, heads: dict[str, int]) -> None:
        """Return once every channel has been received up to ``heads``."""
        while any(self.last[ch] < head for ch, head in heads.items()):
            self._progress.clear()
            await self._progress.wait()


async def _release(sio: socketio.AsyncClient) -> None:
    """Disconnect, and close the HTTP session python-engineio made for the client: it closes
    it only on a disconnect from a connected state, not after a connect that failed."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sio.disconnect(), CALL_TIMEOUT_S)
    http = getattr(sio.eio, "http", None)
    if http is not None and not http.closed:
        await http.close()


async def _first_of(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
