"""The attack of part ``malformed-input``: workers that fire generated client events and HTTP
requests at the target, judge each answer, and record it; then the read-back of the channels
the publishes wrote. ``malformed_input`` starts the target and runs these."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import socketio
import yarl

from bench.reliability import raw_protocol
from bench.reliability.fuzz_http_judge import HttpRequest, expect_http, judge_http, route_of
from bench.reliability.fuzz_judge import OK, Expectation, Limits, expect_event, judge_event
from bench.reliability.fuzz_ledger import HeadLedger
from bench.reliability.fuzz_requests import PUBLISHING, EventCall, event_call, http_request

TARGET_COUNT = 10_000
EVENT_SOCKETS = 2  # per event
EVENT_BATCH = 16  # events in flight on one socket before the good one that proves it usable
HTTP_WORKERS = 2  # per route
REQUEST_TIMEOUT_S = 10
LEDGER_SAMPLE = 200  # untracked channels read back at the end


@dataclass
class TargetTally:
    sent: int = 0
    reserved: int = 0
    valid: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    anomalies: int = 0
    distinct: set[int] = field(default_factory=set)


@dataclass
class Attack:
    """What every worker shares: the target, the limits, the tallies, the ledger."""

    url: str
    api_key: str
    token: str
    limits: Limits
    deadline: float
    seed: int
    tallies: dict[str, TargetTally]
    log: raw_protocol.Tally
    ledger: HeadLedger = field(default_factory=HeadLedger)
    anomalies: list[str] = field(default_factory=list)

    def reserve(self, target: str, wanted: int) -> int:
        """How many more requests ``target`` may send now (0: its count or time is up)."""
        tally = self.tallies[target]
        if asyncio.get_running_loop().time() >= self.deadline:
            return 0
        granted = max(0, min(wanted, TARGET_COUNT - tally.reserved))
        tally.reserved += granted
        return granted

    def record(self, target: str, expectation: Expectation, outcome: str, sent: object,
               problem: str | None, detail: str) -> None:  # fmt: skip
        tally = self.tallies[target]
        tally.sent += 1
        tally.valid += expectation.valid
        tally.outcomes[outcome] += 1
        tally.distinct.add(hash(repr(sent)))
        if problem is not None:
            tally.anomalies += 1
            self.anomalies.append(f"{target}: {problem}; sent {detail[:600]} (seed {self.seed})")


def _channel_of(payload: object) -> str | None:
    channel = payload.get("channel") if isinstance(payload, dict) else None
    return channel if isinstance(channel, str) else None


# -- client events ------------------------------------------------------------------------


async def _connect(attack: Attack) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(attack.url, auth={"token": attack.token}, transports=["websocket"])
    return sio


async def _one_event(attack: Attack, sio: socketio.AsyncClient, call: EventCall) -> None:
    expectation = expect_event(call.event, call.args, attack.limits)
    detail = f"{call.event} {call.args!r:.400} after {call.mutations}"
    channel = _channel_of(call.args[0]) if call.args else None
    try:
        reply = await sio.call(call.event, call.args, timeout=REQUEST_TIMEOUT_S)
    except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as exc:
        timed_out = isinstance(exc, socketio.exceptions.TimeoutError)
        what = "no reply in 10 s" if timed_out else "the socket was dropped"
        attack.record(call.event, expectation, "no reply", call.args, what, detail)
        attack.ledger.unknown.add(channel or "")
        return
    outcome, problem = judge_event(call.event, expectation, reply)
    attack.record(call.event, expectation, outcome, call.args, problem, detail)
    if call.event == "replay:publish" and channel is not None:
        if outcome == OK:
            attack.ledger.success(channel, reply["offset"], reply["id"], reply["duplicate"])
        else:
            attack.ledger.failure(channel)
    if call.event == "replay:subscribe" and outcome == OK:  # leave room for the next ones
        try:
            reply = await sio.call("replay:unsubscribe", {"channel": channel}, timeout=10)
        except socketio.exceptions.SocketIOError as exc:
            reply = repr(exc)
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            attack.anomalies.append(f"unsubscribe after an ok subscribe answered {reply!r:.200}")


async def _usable(attack: Attack, sio: socketio.AsyncClient, event: str) -> bool:
    """A good event still gets an ok reply after a batch of bad ones (ROB-2)."""
    try:
        reply = await sio.call("replay:history", {"channel": "fuzz.probe"}, timeout=10)
    except socketio.exceptions.SocketIOError as exc:
        reply = repr(exc)
    if isinstance(reply, dict) and reply.get("ok") is True:
        return True
    attack.anomalies.append(f"{event}: the socket no longer answers a good event: {reply!r:.200}"
                            f" (seed {attack.seed})")  # fmt: skip
    return False


async def _event_socket(attack: Attack, event: str, corpus: list[Any], rng: random.Random) -> None:
    bound = 6 * attack.limits.max_payload_bytes + 16384  # TRN-7: larger packets may be cut
    sio = await _connect(attack)
    try:
        while granted := attack.reserve(event, EVENT_BATCH):
            calls: list[EventCall] = []
            while len(calls) < granted:
                call = event_call(event, rng.choice(corpus), rng)
                if len(json.dumps(call.args, default=repr)) < bound - 1024:
                    calls.append(call)
            await asyncio.gather(*(_one_event(attack, sio, call) for call in calls))
            if not await _usable(attack, sio, event):
                await sio.disconnect()
                sio = await _connect(attack)
    finally:
        await sio.disconnect()


async def fire_events(attack: Attack, event: str, corpus: asyncio.Future[list[Any]]) -> None:
    drawn = await corpus
    rng = random.Random(f"{attack.seed}:{event}")
    await asyncio.gather(*(_event_socket(attack, event, drawn, rng) for _ in range(EVENT_SOCKETS)))


# -- backend HTTP routes ------------------------------------------------------------------


async def _send(http: aiohttp.ClientSession, url: str, request: HttpRequest) -> tuple[int, bytes]:
    target = yarl.URL(url + request.target(), encoded=True)
    async with http.request(request.method, target, headers=request.headers, data=request.body,
                            skip_auto_headers=["Content-Type"]) as response:  # fmt: skip
        return response.status, await response.read()


def _ledger_http(attack: Attack, request: HttpRequest, outcome: str, body: bytes) -> None:
    route, segment = route_of(request.method, request.path)
    if route not in PUBLISHING or segment is None:
        return
    try:
        channel = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return
    if outcome != OK:
        attack.ledger.failure(channel)
        return
    reply = json.loads(body)
    for result in reply["results"] if route == "POST batches" else [reply]:
        attack.ledger.success(channel, result["offset"], result["id"], result["duplicate"])


async def _live_session(http: aiohttp.ClientSession, attack: Attack, n: int) -> str:
    session_id = f"fuzz-delete-{attack.seed}-{n}"
    body = {"session_id": session_id, "client_id": "fuzz", "grants": []}
    headers = {"Authorization": f"Bearer {attack.api_key}"}
    async with http.post(attack.url + "/replay/v1/sessions", json=body, headers=headers) as r:
        if r.status != 201:
            attack.anomalies.append(f"registering {session_id} answered {r.status}")
    return session_id


async def _http_worker(attack: Attack, http: aiohttp.ClientSession, route: str,
                       corpus: list[Any], channels: list[str],
                       rng: random.Random) -> None:  # fmt: skip
    limit = attack.limits.body_limit
    while attack.reserve(route, 1):
        base = rng.choice(corpus) if corpus else None
        live = route == "DELETE sessions" and rng.random() < 0.3
        if live:
            base = await _live_session(http, attack, attack.tallies[route].reserved)
        request, mutations = http_request(route, base, channels, attack.api_key, rng, limit)
        named_live = live and request.method == "DELETE" and request.path.endswith(f"/{base}")
        expectation = expect_http(request, attack.api_key, attack.limits, named_live)
        detail = (f"{request.method} {request.path[:200]} {request.query} {request.headers} "
                  f"{(request.body or b'')[:300]!r} after {mutations}")  # fmt: skip
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, body = await _send(http, attack.url, request)
        except (TimeoutError, aiohttp.ClientError) as exc:
            attack.record(route, expectation, "no answer", detail, f"no answer: {exc!r}", detail)
            _, segment = route_of(request.method, request.path)
            attack.ledger.unknown.add(unquote(segment or ""))
            continue
        outcome, problem = judge_http(request, expectation, status, body)
        attack.record(route, expectation, outcome, detail, problem, detail)
        if problem is None:
            _ledger_http(attack, request, outcome, body)


async def fire_http(attack: Attack, http: aiohttp.ClientSession, route: str,
                    corpus: asyncio.Future[list[Any]] | None,
                    channels: asyncio.Future[list[Any]]) -> None:  # fmt: skip
    drawn = await corpus if corpus is not None else []
    names = await channels
    rng = random.Random(f"{attack.seed}:{route}")
    await asyncio.gather(*(_http_worker(attack, http, route, drawn, names, rng)
                           for _ in range(HTTP_WORKERS)))  # fmt: skip


# -- reading back what was stored -----------------------------------------------------------


async def _read_channel(http: aiohttp.ClientSession, attack: Attack,
                        channel: str) -> tuple[int, list[dict[str, Any]]]:  # fmt: skip
    messages: list[dict[str, Any]] = []
    query = "from=beginning&limit=1000"
    path = f"{attack.url}/replay/v1/channels/{quote(channel, safe='')}/messages"
    headers = {"Authorization": f"Bearer {attack.api_key}"}
    while True:
        async with http.get(yarl.URL(f"{path}?{query}", encoded=True), headers=headers) as r:
            page = await r.json()
        messages.extend(page["messages"])
        if not page["messages"] or page["messages"][-1]["offset"] >= page["head"]:
            return int(page["head"]), messages
        query = f"from={page['messages'][-1]['offset'] + 1}&epoch={quote(page['epoch'])}&limit=1000"


async def check_ledger(http: aiohttp.ClientSession, attack: Attack) -> int:
    """Read back the tracked channels and a sample of the others; returns how many."""
    channels = attack.ledger.channels()
    tracked = [c for c in channels if c.startswith("fuzz.")]
    others = [c for c in channels if not c.startswith("fuzz.")]
    sample = random.Random(attack.seed).sample(others, min(LEDGER_SAMPLE, len(others)))
    for channel in tracked + sample:
        head, messages = await _read_channel(http, attack, channel)
        attack.anomalies.extend(attack.ledger.check(channel, head, messages))
    attack.anomalies.extend(attack.ledger.problems)
    return len(tracked) + len(sample)
