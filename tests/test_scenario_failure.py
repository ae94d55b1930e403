"""A broken target makes the Hypothesis scenarios fail with a shrunk, readable story.

The target stores a repeated idempotency id twice (a mutant from ``tests/mutants``); only the
scenarios run, so what catches it is the whole-trace checker, not a deterministic case.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVE = Path(__file__).parent / "mutants" / "serve.py"

pytestmark = pytest.mark.slow


def test_the_scenarios_name_the_anomaly_and_print_the_shrunk_steps() -> None:
    command = (
        f"{{python}} {SERVE} idempotent-stored-twice --host 127.0.0.1 --port {{port}} "
        "--api-key={api_key}"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "conformance/cases/test_scenarios.py",
            "-k",
            "random_interleavings",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-profile=ci",
            "-o",
            "timeout=600",
            f"--target-cmd={command}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 1, output[-3000:]
    # The anomaly, by name and clause ...
    assert "duplicate-id (IDM-6)" in output, output[-3000:]
    # ... and the steps that show it, shrunk to a short program.
    # pytest prefixes the exception's notes, where Hypothesis prints the steps, with "E".
    steps = [m[1] for m in re.finditer(r"^E?\s*(state\.\w+\(.*)$", output, re.MULTILINE)]
    assert steps, output[-3000:]
    publishes = ("state.publish(", "state.retry_publish(", "state.client_publish(")
    assert any(step.startswith(publishes) for step in steps), steps
    assert "state = ReplayMachine()" in output
    assert len(steps) <= 12, steps  # shrunk: a handful of steps, not the 30 it may start with
