"""The suite's scenario machines at volume: random interleavings of sessions, clients, link
faults and publishes, judged by the whole-trace checkers (``conformance/scenarios``).

Two runs side by side, each a ``pytest conformance`` subprocess with the ``volume`` profile
(random seeds, no example database): one against the embedded reference (memory store), one
against three reference nodes on one ``redis-server`` (the machine's cluster rules then cut
and stall every client link of a node at once). Both run ``ReplayMachine`` until
``--examples`` each or the budget, whichever comes first; at the budget a run gets SIGINT and
the examples it finished count. Each run's pytest output and tally are kept in
``reports/reliability/`` (``scenarios-embedded.log`` and so on), so a finding can be read, with
its shrunk steps, while the other run goes on. The figures come from the machines' own tally
(``conformance.scenarios.tally``), so they are what was judged: examples, rules run, faults
injected, publishes and deliveries checked. A finding in any example, or a run that fails for
another reason, is an anomaly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bench.reliability.result import PartResult
from conformance.scenarios.tally import TALLY_ENV, total

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 10_000  # per run; the budget usually ends a run first
REPORTS = ROOT / "reports" / "reliability"
NODES = 3
START_TIMEOUT_S = 20.0


async def run(budget_s: float, examples: int = EXAMPLES) -> PartResult:
    """Both runs at once, for ``budget_s`` seconds at most."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reliability-scenarios-") as scratch:
        embedded, cluster = await asyncio.gather(
            _embedded(budget_s, examples), _three_nodes(Path(scratch), budget_s, examples)
        )
    anomalies = [f"{name}: {problem}" for name, run in (("embedded", embedded),
                 ("three nodes", cluster)) for problem in run[1]]  # fmt: skip
    a, b = embedded[0], cluster[0]
    summary = (
        f"{a.get('examples', 0):,} examples on the embedded reference and "
        f"{b.get('examples', 0):,} on three nodes over Redis in {budget_s:g} s; "
        f"{a.get('steps', 0) + b.get('steps', 0):,} rules run, "
        f"{a.get('faults', 0) + b.get('faults', 0):,} faults injected, "
        f"{a.get('publishes', 0) + b.get('publishes', 0):,} publishes and "
        f"{a.get('deliveries', 0) + b.get('deliveries', 0):,} deliveries checked"
    )
    counts = {f"embedded_{k}": v for k, v in a.items()}
    counts.update({f"cluster_{k}": v for k, v in b.items()})
    return PartResult("scenarios", summary, counts, anomalies)


async def _embedded(budget_s: float, examples: int) -> tuple[dict[str, int], list[str]]:
    command = "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key}"
    return await _suite("embedded", [f"--target-cmd={command}"], budget_s, examples)


async def _three_nodes(
    scratch: Path, budget_s: float, examples: int
) -> tuple[dict[str, int], list[str]]:
    api_key = secrets.token_hex(16)
    async with _redis(scratch) as store, contextlib.AsyncExitStack() as nodes:
        urls = [await nodes.enter_async_context(_node(store, api_key)) for _ in range(NODES)]
        targets = [option for url in urls for option in ("--target", url)]
        return await _suite("cluster", [*targets, f"--api-key={api_key}"], budget_s,
                            examples)  # fmt: skip


async def _suite(
    name: str, target: list[str], budget_s: float, examples: int
) -> tuple[dict[str, int], list[str]]:
    """One ``pytest conformance`` run of the scenario machine; its tally and its anomalies."""
    tally, log = REPORTS / f"scenarios-{name}.jsonl", REPORTS / f"scenarios-{name}.log"
    tally.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env.update({TALLY_ENV: str(tally), "REPLAY_SCENARIO_EXAMPLES": str(examples),
                "PYTHONPATH": str(ROOT)})  # fmt: skip
    argv = [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
            "-k", "test_random_interleavings", "--hypothesis-profile", "volume",
            "--hypothesis-show-statistics", *target]  # fmt: skip
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
        stopped = False
        try:
            await asyncio.wait_for(process.wait(), budget_s)
        except TimeoutError:
            stopped = True  # the budget ended the run: what it finished counts
        finally:  # also when the campaign itself is interrupted
            if process.returncode is None:
                process.send_signal(signal.SIGINT)  # pytest stops its target and reports
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    counts = await asyncio.to_thread(_tally, tally)
    problems: list[str] = []
    if counts.get("problems", 0):
        problems.append(f"{counts['problems']} findings; see {log}")
    elif not stopped and process.returncode != 0:
        problems.append(f"pytest exited {process.returncode}; see {log}")
    if counts["examples"] == 0:
        problems.append(f"no example finished; see {log}")
    return counts, problems


@contextlib.asynccontextmanager
async def _redis(directory: Path) -> AsyncIterator[str]:
    """A ``redis-server`` without persistence on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _until_listening(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        await _stop(process)


@contextlib.asynccontextmanager
async def _node(store: str, api_key: str) -> AsyncIterator[str]:
    """One ``python -m reference`` on ``store``; yields its URL once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reference", "--port", "0", "--api-key", api_key, "--store", store,
        "--log-level", "warning", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        if b"listening on http://" not in first:
            raise RuntimeError(f"the node did not start: {first!r}")
        yield first.decode().strip().rsplit(" ", 1)[1]
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def _tally(path: Path) -> dict[str, int]:
    return total(path) if path.is_file() else {"examples": 0}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until_listening(port: int) -> None:
    for _ in range(int(START_TIMEOUT_S / 0.05)):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"redis-server did not listen on {port}")
