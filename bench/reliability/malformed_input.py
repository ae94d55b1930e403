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
import multiprocessing
import secrets
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import aiohttp

from bench.reliability import raw_protocol
from bench.reliability.fuzz_corpus import draw
from bench.reliability.fuzz_fire import (
    TARGET_COUNT,
    Attack,
    TargetTally,
    check_ledger,
    fire_events,
    fire_http,
)  # fmt: skip
from bench.reliability.fuzz_judge import OK, Limits, deep_recursion
from bench.reliability.fuzz_requests import EVENT_SOURCES, ROUTE_SOURCES
from bench.reliability.result import PartResult

NAME = "malformed-input"
CORPUS_SIZE = 400
FIRST_DRAW = 30
MIN_SHARE = 0.10
GRANTS = [{"channels": "*", "actions": ["subscribe", "publish", "history"]}]


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
