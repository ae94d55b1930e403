"""The mutant gate: the conformance suite must catch every deliberately broken server.

Each mutant of ``tests/mutants/mutants.py`` is served with ``--target-cmd`` and judged by the
whole suite with the ``ci`` Hypothesis profile, stopping at the first failure (``-x``); the
first failure must name one of the clauses or anomalies the mutant is expected to break. The
unmutated reference must pass the same run. Runs go two at a time (the machine has 2 cores and
each run is mostly waiting on sockets). The kill matrix is printed and written to
``reports/kill-matrix.md``; the README shows it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from suite_runs import first_failure, judge_all, publish_matrix, received_and_anomaly, run_judged

sys.path.insert(0, str(Path(__file__).parent / "mutants"))
from mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[1]
SERVE = Path(__file__).parent / "mutants" / "serve.py"
REFERENCE = "reference (unmutated)"
RUN_TIMEOUT_S = 900
PARALLEL = 2

# The module's fixture runs every mutant; 300 s (the default) is about what that takes on an
# idle machine, so a busy one timed it out. Each run has its own bound (RUN_TIMEOUT_S).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@dataclass
class Verdict:
    """What one run of the suite against one server said."""

    name: str
    exit_code: int
    seconds: float
    clause: str | None = None  # the clause the first failure names
    anomaly: str | None = None  # the checker's anomaly, when a scenario caught it
    case: str | None = None
    detail: str = ""

    def caught_by(self) -> set[str]:
        return {found for found in (self.clause, self.anomaly) if found}


def command(name: str) -> str:
    serve = f"{{python}} {SERVE}" + (f" {name}" if name != REFERENCE else "")
    if name == REFERENCE:
        serve = "{python} -m reference"
    return f"{serve} --host 127.0.0.1 --port {{port}} --api-key={{api_key}}"


async def judge(name: str, reports: Path, slots: asyncio.Semaphore) -> Verdict:
    report = reports / name.split(" ")[0]
    argv = [
        sys.executable, "-m", "pytest", "conformance", "-x", "-q", "-p", "no:cacheprovider",
        "--hypothesis-profile=ci", "-o", f"timeout={RUN_TIMEOUT_S}",
        f"--replay-report={report}", f"--target-cmd={command(name)}",
    ]  # fmt: skip
    async with slots:
        exit_code, output, seconds = await run_judged(argv, RUN_TIMEOUT_S)
    verdict = Verdict(name, exit_code, seconds)
    first = first_failure(report)
    if first is not None:
        verdict.case = str(first.get("case", "")).split("::")[-1]
        clause = first.get("clause")
        verdict.clause = clause if isinstance(clause, str) else None
        verdict.detail, verdict.anomaly = received_and_anomaly(first)
    if verdict.exit_code not in (0, 1):
        verdict.detail = output.decode(errors="replace")[-600:]
    return verdict


def matrix(verdicts: list[Verdict]) -> str:
    lines = [
        "| mutant | the bug | caught by | first failing case | time |",
        "|---|---|---|---|---|",
    ]
    for verdict in verdicts:
        if verdict.name == REFERENCE:
            outcome = "passes" if verdict.exit_code == 0 else f"FAILS ({verdict.clause})"
            lines.append(f"| {REFERENCE} | none | {outcome} | | {verdict.seconds:.0f} s |")
            continue
        found = verdict.clause or "?"
        if verdict.anomaly:
            found = f"{verdict.anomaly} ({found})"
        bug = MUTANTS[verdict.name].bug
        lines.append(
            f"| `{verdict.name}` | {bug} | {found} | `{verdict.case}` | {verdict.seconds:.0f} s |"
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    names = [REFERENCE, *MUTANTS]
    found = judge_all(judge, names, tmp_path_factory.mktemp("mutant-reports"), PARALLEL)
    publish_matrix("kill-matrix.md", matrix(found))
    return {verdict.name: verdict for verdict in found}


def test_the_reference_passes(verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts[REFERENCE]
    assert verdict.exit_code == 0, (verdict.clause, verdict.case, verdict.detail)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_the_suite_catches(verdicts: dict[str, Verdict], name: str) -> None:
    verdict = verdicts[name]
    expected = MUTANTS[name].caught_by
    assert verdict.exit_code == 1, f"{name} survived the suite: {verdict.detail}"
    assert verdict.caught_by() & expected, (
        f"{name} was caught by {verdict.caught_by() or 'an unexpected error'} in {verdict.case}, "
        f"not by one of {sorted(expected)}: {verdict.detail}"
    )


def test_a_refused_setup_step_fails_only_its_own_clause(tmp_path: Path) -> None:
    """Every retention case starts with a retention PUT; refused, it fails RET-1, the clause
    of that step, and the clauses the cases judge (RET-3 to RET-5, RET-12) are not reached, never
    failed. (Before the fix the report marked RET-2 to RET-5 failed as well.)"""
    report = tmp_path / "report"
    argv = [
        sys.executable, "-m", "pytest", "conformance/cases/test_retention.py", "-q",
        "-p", "no:cacheprovider", f"--replay-report={report}",
        f"--target-cmd={command('retention-refused')}",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    document = json.loads(report.with_suffix(".json").read_text())
    assert document["summary"]["failed_must"] == ["RET-1"], document["summary"]
    verdicts = {c["id"]: c for c in document["clauses"]}
    for clause in ("RET-3", "RET-4", "RET-5", "RET-12"):
        assert verdicts[clause]["status"] == "not covered", verdicts[clause]
        assert verdicts[clause]["note"] == "not reached: failed first on RET-1", verdicts[clause]
    assert {f["clauses"][0] for f in document["failures"]} == {"RET-1"}


def test_mutants_stay_out_of_the_shipped_packages() -> None:
    """The reference has no mutant hooks at all; the suite only mentions them in prose."""
    reference = list(ROOT.joinpath("reference").rglob("*.py"))
    assert not [path for path in reference if "mutant" in path.read_text().lower()]
    shipped = [*reference, *ROOT.joinpath("conformance").rglob("*.py")]
    imports = re.compile(r"^\s*(from|import)\s+(tests\.)?mutants\b", re.MULTILINE)
    assert not [path for path in shipped if imports.search(path.read_text())]
    assert os.path.relpath(SERVE, ROOT).startswith("tests")
