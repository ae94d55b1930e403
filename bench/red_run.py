"""A red run against a green one: how long the suite takes when much of it fails.

    python bench/red_run.py                        # the reference, then a server with 8 bugs
    python bench/red_run.py --red handoff-drop     # any '+'-joined names of tests/mutants

Adapter authors iterate on red runs, so a failing case must end when its outcome is decided,
not when its timeouts run out. This runs the whole suite (``ci`` profile, no ``-x``) against
the reference and then against the reference with several hand-written mutants applied at
once, in the same conditions, and prints both wall times, their ratio, the failed cases and
the slowest cases of the red run (from the suite's JSON report).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "tests" / "mutants" / "serve.py"
# Bugs of different kinds, so that failures spread over cases, features and the scenarios.
MANY_BUGS = "+".join(
    (
        "handoff-drop",
        "live-reorder",
        "stale-epoch-accepted",
        "cursor-redelivers",
        "prefix-grant-leak",
        "retention-refused",
        "malformed-closes-socket",
        "idempotent-stored-twice",
    )
)
SERVER_OPTIONS = "--host 127.0.0.1 --port {port} --api-key={api_key}"


Case = dict[str, Any]  # one entry of the JSON report's "cases"


def run(target_cmd: str, report: Path) -> tuple[float, list[Case]]:
    """One whole suite run: its wall time and its JSON report."""
    argv = [
        sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
        "--hypothesis-profile=ci", f"--replay-report={report}", f"--target-cmd={target_cmd}",
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)
    seconds = time.monotonic() - started
    cases: list[Case] = json.loads(report.with_suffix(".json").read_text())["cases"]
    return seconds, cases


def summary(name: str, seconds: float, cases: list[Case]) -> list[Case]:
    outcomes: dict[str, int] = {}
    for case in cases:
        outcomes[str(case["outcome"])] = outcomes.get(str(case["outcome"]), 0) + 1
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    print(f"{name:>6}: {seconds:6.1f} s  ({counts})")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--red", default=MANY_BUGS, help="'+'-joined mutant names")
    parser.add_argument("--slowest", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        green_s, green = run(f"{{python}} -m reference {SERVER_OPTIONS}", Path(scratch, "green"))
        red_s, red = run(f"{{python}} {SERVE} {args.red} {SERVER_OPTIONS}", Path(scratch, "red"))
    print(f"red target: the reference with {args.red.replace('+', ', ')}")
    summary("green", green_s, green)
    cases = summary("red", red_s, red)
    print(f" ratio: {red_s / green_s:.2f} (red / green)")
    failed = [c for c in cases if c["outcome"] in ("failed", "error")]
    clauses = sorted({clause for c in failed for clause in (c["failure"] or {}).get("clauses", [])})
    print(f"failed cases: {len(failed)}; clauses they name: {', '.join(clauses) or '-'}")
    print(f"slowest {args.slowest} cases of the red run:")
    for case in sorted(cases, key=lambda c: -float(c["duration_s"]))[: args.slowest]:
        print(f"  {float(case['duration_s']):5.1f} s  {case['outcome']:7}  {case['nodeid']}")


if __name__ == "__main__":
    main()
