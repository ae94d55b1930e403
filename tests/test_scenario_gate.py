"""The scenario gate: the random scenarios alone must catch every deliberately broken server.

The mutant gate (``test_mutants.py``) runs the whole suite, so a mutant that only a
deterministic case catches passes it; here ``conformance/cases/test_scenarios.py`` runs
alone (``ci`` profile, ``-x``) against each mutant of ``tests/mutants/mutants.py``, two at a
time, and must fail on one of the clauses or anomalies the mutant is expected to break. The
profile is ``ci-unshrunk``: the ``ci`` search without shrinking, as only the verdict counts. The
matrix (mutant, caught by, seconds) is printed and written to ``reports/scenario-gate.md``.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from suite_runs import first_failure, judge_all, publish_matrix, received_and_anomaly, run_judged

sys.path.insert(0, str(Path(__file__).parent / "mutants"))
from mutants import MUTANTS

SERVE = Path(__file__).parent / "mutants" / "serve.py"
SCENARIOS = "conformance/cases/test_scenarios.py"
RUN_TIMEOUT_S = 300
PARALLEL = 2

# The runs share one module fixture: the timeout is the whole matrix's, not one run's.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@dataclass
class Caught:
    """What the scenarios said about one mutant."""

    name: str
    exit_code: int
    seconds: float
    clauses: tuple[str, ...] = ()  # those the first failure names
    anomaly: str | None = None
    detail: str = ""

    def caught_by(self) -> set[str]:
        return {*self.clauses, *([self.anomaly] if self.anomaly else [])}


async def judge(name: str, reports: Path, slots: asyncio.Semaphore) -> Caught:
    """Run the scenario test alone against mutant ``name``."""
    report = reports / name
    serve = f"{{python}} {SERVE} {name} --host 127.0.0.1 --port {{port}} --api-key={{api_key}}"
    argv = [
        sys.executable, "-m", "pytest", SCENARIOS, "-x", "-q", "-p", "no:cacheprovider",
        "--hypothesis-profile=ci-unshrunk", "-o", f"timeout={RUN_TIMEOUT_S}",
        f"--replay-report={report}", f"--target-cmd={serve}",
    ]  # fmt: skip
    async with slots:
        exit_code, output, seconds = await run_judged(argv, RUN_TIMEOUT_S)
    caught = Caught(name, exit_code, seconds)
    first = first_failure(report)
    if first is not None:
        caught.clauses = tuple(map(str, first.get("clauses") or [first.get("clause")]))
        caught.detail, caught.anomaly = received_and_anomaly(first)
    if caught.exit_code not in (0, 1):
        caught.detail = output.decode(errors="replace")[-600:]
    return caught


def matrix(found: list[Caught]) -> str:
    lines = ["| mutant | caught by | time |", "|---|---|---|"]
    for caught in found:
        by = ", ".join(caught.clauses) or ("survived" if caught.exit_code == 0 else "?")
        if caught.anomaly:
            by = f"{caught.anomaly} ({by})"
        lines.append(f"| `{caught.name}` | {by} | {caught.seconds:.0f} s |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Caught]:
    found = judge_all(judge, list(MUTANTS), tmp_path_factory.mktemp("scenario-gate"), PARALLEL)
    publish_matrix("scenario-gate.md", matrix(found))
    return {caught.name: caught for caught in found}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_the_scenarios_catch(gate: dict[str, Caught], name: str) -> None:
    caught = gate[name]
    expected = MUTANTS[name].caught_by
    assert caught.exit_code == 1, f"{name} survived the scenarios: {caught.detail}"
    assert caught.caught_by() & expected, (
        f"{name} was caught by {caught.caught_by() or 'an unexpected error'}, "
        f"not by one of {sorted(expected)}: {caught.detail}"
    )
