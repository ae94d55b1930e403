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
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from bench.reliability.processes import RedisProcess, ReferenceNode
from bench.reliability.result import PartResult
from conformance.scenarios.tally import TALLY_ENV, total

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 10_000  # per run; the budget usually ends a run first
REPORTS = ROOT / "reports" / "reliability"
# The teardown's drain: the suite's 3 s assumes a quiet machine; two suites and three nodes
# share two cores here, and a drain cut short reads as a lost message.
DRAIN_S = 10.0
NODES = 3


async def run(budget_s: float, examples: int = EXAMPLES) -> PartResult:
    """Both runs at once, for ``budget_s`` seconds at most."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    started = asyncio.get_running_loop().time()
    with tempfile.TemporaryDirectory(prefix="reliability-scenarios-") as scratch:
        embedded, cluster = await asyncio.gather(
            _embedded(budget_s, examples), _three_nodes(Path(scratch), budget_s, examples)
        )
    anomalies = [f"{name}: {problem}" for name, run in (("embedded", embedded),
                 ("three nodes", cluster)) for problem in run[1]]  # fmt: skip
    a, b = embedded[0], cluster[0]
    summary = (
        f"{a.get('examples', 0):,} examples on the embedded reference and "
        f"{b.get('examples', 0):,} on three nodes over Redis in "
        f"{asyncio.get_running_loop().time() - started:.0f} s; "
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
    redis = RedisProcess(scratch / "redis")
    nodes: list[ReferenceNode] = []
    try:
        await redis.start()
        for _ in range(NODES):
            nodes.append(ReferenceNode(api_key, store=redis.url))
            await nodes[-1].start()
        targets = [option for node in nodes for option in ("--target", node.url)]
        counts, problems = await _suite("cluster", [*targets, f"--api-key={api_key}"],
                                        budget_s, examples)  # fmt: skip
    finally:
        for node in nodes:
            await node.stop(signal.SIGTERM)
        await redis.kill()
    return counts, [*problems, *(p for node in nodes for p in node.problems)]


async def _suite(
    name: str, target: list[str], budget_s: float, examples: int
) -> tuple[dict[str, int], list[str]]:
    """One ``pytest conformance`` run of the scenario machine; its tally and its anomalies."""
    tally, log = REPORTS / f"scenarios-{name}.jsonl", REPORTS / f"scenarios-{name}.log"
    tally.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env.update({TALLY_ENV: str(tally), "REPLAY_SCENARIO_EXAMPLES": str(examples),
                "REPLAY_SCENARIO_DRAIN_S": str(DRAIN_S), "PYTHONPATH": str(ROOT)})  # fmt: skip
    argv = [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
            "-k", "test_random_interleavings", "--hypothesis-profile", "volume",
            "--hypothesis-show-statistics", f"--timeout={budget_s + 300:.0f}",  # the budget ends it
            *target]  # fmt: skip
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


def _tally(path: Path) -> dict[str, int]:
    return total(path) if path.is_file() else {"examples": 0}
