"""The mutation campaign's CI sample: a fixed handful of program-made mutants, run through the
same tool path as a full campaign (``tests/mutation/campaign.py run --ids ...``), must each be
killed, after the unmutated reference passes the same run.

The sample: the first mutant of each of six operators that the seed-15 campaign killed, each
within half a minute, so the sample stays under 4 minutes on 2 cores. An edit that moves one of them
changes its id, and the run then fails with "no such mutant": pick its successor from a new
campaign's report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "tests" / "mutation" / "campaign.py"
SAMPLE = (
    "reference/core/subscribe_order.py:SwapArguments:2:354eeb19",
    "reference/server/wire.py:ReplaceComparisonOperator_IsNot_Is:0:a36bf18c",
    "reference/store/memory.py:AddNot:10:f465b059",
    "reference/core/positions.py:RemoveCheck:5:123ffc2a",
    "reference/store/memory.py:RemoveStatement:8:e92477f9",
    "reference/server/node.py:DropAwait:13:0a393a9c",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("mutation")
    done = subprocess.run(
        [sys.executable, str(CAMPAIGN), "run", "--out", str(out), "--ids", *SAMPLE],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "baseline: passed" in done.stdout
    document: dict[str, object] = json.loads((out / "report.json").read_text())
    return document


def test_the_sample_covers_several_operators() -> None:
    assert len({mutant_id.split(":")[1] for mutant_id in SAMPLE}) >= 5


@pytest.mark.parametrize("mutant_id", SAMPLE)
def test_the_suite_kills(report: dict[str, object], mutant_id: str) -> None:
    mutants = report["mutants"]
    assert isinstance(mutants, list)
    (found,) = [m for m in mutants if m["id"] == mutant_id]
    assert found["status"] == "killed", found
    assert found["clause"], found  # killed by a failure the replay report names
