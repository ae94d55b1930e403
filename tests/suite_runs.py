"""Running the conformance suite in a subprocess, as CI judges a target: the shared part of
``test_conformance_redis.py`` and ``test_node_adapter.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """This environment without ``REPLAY_*`` variables, so only the options given choose the
    target."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}


def run_suite(report: Path, *options: str) -> dict[str, object]:
    """``pytest conformance`` with ``options``; asserts it passed, returns its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
         f"--replay-report={report}", *options],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    document: dict[str, object] = json.loads(report.with_suffix(".json").read_text())
    return document


def verdicts(document: dict[str, object]) -> dict[str, str]:
    """Each clause's status in a report."""
    clauses = document["clauses"]
    assert isinstance(clauses, list)
    return {entry["id"]: entry["status"] for entry in clauses}
