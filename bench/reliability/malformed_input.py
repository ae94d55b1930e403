"""Part ``malformed-input``: payloads drawn from the spec's JSON Schemas (hypothesis-jsonschema),
sent as drawn or mutated, to every client event of §6 and every route of §4 of a real
reference, each answer judged against the check orders and the reply schemas.

It is built this way because Hypothesis draws only inside a test it drives and cannot bound a
run by wall-clock time across sockets: a worker process draws a seeded corpus per schema up
front, and seeded mutations (``fuzz_mutations``) and request shapes (``fuzz_requests``) turn it
into the 10,000 requests per target that are fired concurrently.

Anomalies: an answer the spec does not allow (``fuzz_judge``), a 5xx, no answer within 10 s, a
socket dropped or no longer answering a good event after a batch of bad ones, the server gone,
a traceback or error in its log, a head that counts anything but the successful publishes,
and a target that got fewer than 10 % valid or 10 % invalid payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import random
import secrets
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import socketio
import yarl

from bench.reliability import raw_protocol
from bench.reliability.fuzz_corpus import draw
from bench.reliability.fuzz_http_judge import HttpRequest, expect_http, judge_http, route_of
from bench.reliability.fuzz_judge import (
    OK,
    Expectation,
    Limits,
    deep_recursion,
    expect_event,
    judge_event,
)
from bench.reliability.fuzz_ledger import HeadLedger
from bench.reliability.fuzz_requests import (
    EVENT_SOURCES,
    PUBLISHING,
    ROUTE_SOURCES,
    EventCall,
    event_call,
    http_request,
)  # fmt: skip
from bench.reliability.result import PartResult

NAME = "malformed-input"
TARGET_COUNT = 10_000
EVENT_SOCKETS = 2  # per event
EVENT_BATCH = 16  # events in flight on one socket before the good one that proves it usable
HTTP_WORKERS = 2  # per route
REQUEST_TIMEOUT_S = 10
CORPUS_SIZE = 400
FIRST_DRAW = 30
MIN_SHARE = 0.10
LEDGER_SAMPLE = 200  # untracked channels read back at the end
GRANTS = [{"channels": "*", "actions": ["subscribe", "publish", "history"]}]


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


# -- the part -------------------------------------------------------------------------------


async def _setup(http: aiohttp.ClientSession, url: str, api_key: str) -> tuple[str, Limits]:
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"client_id": "fuzz", "grants": GRANTS}
    async with http.post(url + "/replay/v1/sessions", json=body, headers=headers) as r:
        token = str((await r.json())["token"])
    async with http.get(url + "/replay/v1/info") as r:
        advertised = (await r.json())["limits"]
    limits = Limits(advertised["max_payload_bytes"], advertised["max_batch_publish"],
                    advertised["max_batch_publish_bytes"])  # fmt: skip
    return token, limits


async def run(budget_s: float) -> PartResult:
    """Fire up to ``TARGET_COUNT`` payloads at each target for at most ``budget_s`` seconds."""
    seed = secrets.randbelow(2**32)
    with deep_recursion(10_000):  # python-socketio's encoder recurses into the deep payloads
        return await _run(budget_s, seed)


def _draw_corpora(pool: ProcessPoolExecutor, seed: int,
                  budget_s: float) -> dict[str, asyncio.Future[list[Any]]]:  # fmt: skip
    """Each source's corpus, drawn in ``pool``: first a few values of every source, so that
    every target starts soon, then more of each, appended to the same list as they come."""
    sources = sorted(
        {s for s in [*EVENT_SOURCES.values(), *ROUTE_SOURCES.values(), "channel"] if s},
        key=lambda s: (s == "session", s),  # its strategy takes seconds to build: last
    )
    first = {s: pool.submit(draw, s, FIRST_DRAW, seed + i, 0.5) for i, s in enumerate(sources)}
    time_limit = max(1.0, budget_s / 60)  # the drawing worker takes a core from the attack
    for i, source in enumerate(sources):
        more = pool.submit(draw, source, CORPUS_SIZE, seed + len(sources) + i, time_limit)
        more.add_done_callback(functools.partial(_extend, first[source]))
    return {s: asyncio.wrap_future(f) for s, f in first.items()}


def _extend(first: Future[list[Any]], more: Future[list[Any]]) -> None:
    ready = first.done() and not first.cancelled() and first.exception() is None
    if ready and not more.cancelled() and more.exception() is None:
        first.result().extend(more.result())  # the workers pick from this list as it grows


async def _run(budget_s: float, seed: int) -> PartResult:
    loop = asyncio.get_running_loop()
    started = loop.time()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    corpora = _draw_corpora(pool, seed, budget_s)
    api_key = secrets.token_hex(16)
    log = raw_protocol.Tally(seed=seed)
    process, url = await raw_protocol.start_server(api_key)
    assert process.stderr is not None
    log_task = asyncio.ensure_future(raw_protocol.read_log(process.stderr, log))
    targets = [*EVENT_SOURCES, *ROUTE_SOURCES]
    attack: Attack | None = None
    read_back = 0
    try:
        async with aiohttp.ClientSession() as http:
            token, limits = await _setup(http, url, api_key)
            attack = Attack(url, api_key, token, limits, started + budget_s, seed,
                            {t: TargetTally() for t in targets}, log)  # fmt: skip
            async with asyncio.TaskGroup() as group:  # one worker's crash stops them all
                for event, source in EVENT_SOURCES.items():
                    group.create_task(fire_events(attack, event, corpora[source]))
                for route, maybe in ROUTE_SOURCES.items():
                    corpus = corpora[maybe] if maybe else None
                    group.create_task(fire_http(attack, http, route, corpus, corpora["channel"]))
            if process.returncode is not None:
                attack.anomalies.append(f"the server exited with {process.returncode}")
            else:
                read_back = await check_ledger(http, attack)
                async with http.get(url + "/replay/v1/info") as r:
                    if r.status != 200:
                        attack.anomalies.append(f"GET /replay/v1/info answered {r.status}")
    finally:
        pool.shutdown(cancel_futures=True)
        await _stop(process, log_task, log)
    assert attack is not None
    return _result(attack, loop.time() - started, read_back)


async def _stop(process: asyncio.subprocess.Process, log_task: asyncio.Future[None],
                log: raw_protocol.Tally) -> None:  # fmt: skip
    if process.returncode is None:
        process.terminate()
    try:
        async with asyncio.timeout(raw_protocol.EXIT_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        log.anomaly(f"the server's exit after SIGTERM took over {raw_protocol.EXIT_TIMEOUT_S} s")
        process.kill()
        await process.wait()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(raw_protocol.STOP_TIMEOUT_S):
            await log_task
    log_task.cancel()


def share_problems(tallies: dict[str, TargetTally]) -> list[str]:
    """A target that got fewer than 10 % valid or 10 % invalid payloads was not fuzzed."""
    problems = []
    for target, tally in tallies.items():
        if tally.sent == 0:
            problems.append(f"{target}: nothing sent")
        elif not MIN_SHARE <= tally.valid / tally.sent <= 1 - MIN_SHARE:
            problems.append(f"{target}: {tally.valid} of {tally.sent} payloads valid")
    return problems


def _result(attack: Attack, elapsed: float, read_back: int) -> PartResult:
    tallies = attack.tallies
    anomalies = [*attack.anomalies, *attack.log.anomalies, *share_problems(tallies)]
    sent = sum(t.sent for t in tallies.values())
    valid = sum(t.valid for t in tallies.values())
    ok = sum(t.outcomes[OK] for t in tallies.values())
    fewest = min(t.sent for t in tallies.values())
    counts: dict[str, int] = {"seed": attack.seed, "sent": sent, "valid": valid, "ok": ok,
                              "channels_read_back": read_back,
                              "tracebacks": attack.log.tracebacks}  # fmt: skip
    counts |= {f"log_{level}": n for level, n in sorted(attack.log.levels.items())}
    for target, tally in tallies.items():
        key = target.replace("replay:", "").replace(" ", "_").lower()
        counts[f"{key}.sent"] = tally.sent
        counts[f"{key}.valid"] = tally.valid
        counts[f"{key}.invalid"] = tally.sent - tally.valid
        counts[f"{key}.distinct"] = len(tally.distinct)
        counts[f"{key}.anomalies"] = tally.anomalies
        counts |= {f"{key}.{outcome}": n for outcome, n in sorted(tally.outcomes.items())}
    summary = (f"{sent:,} payloads to {len(tallies)} events and routes (at least {fewest:,} "
               f"each, of {TARGET_COUNT:,}) in {elapsed:.0f} s: {valid:,} valid, "
               f"{sent - valid:,} invalid; {ok:,} ok, {sent - ok:,} typed errors; "
               f"{read_back:,} channels read back")  # fmt: skip
    return PartResult(NAME, summary, counts, anomalies)
