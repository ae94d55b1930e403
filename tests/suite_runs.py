"""Running the conformance suite in a subprocess, as CI judges a target: the shared part of
``test_conformance_redis.py`` and ``test_node_adapter.py``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """This environment without ``REPLAY_*`` variables, so only the options given choose the
    target."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}


def checkout_env() -> dict[str, str]:
    """:func:`clean_env`, importing this checkout first, for a run from another directory."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**clean_env(), "PYTHONPATH": path}


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


async def run_judged(argv: Sequence[str], timeout: float) -> tuple[int, bytes, float]:
    """``argv`` (a pytest run) from the repository root without ``REPLAY_*`` variables:
    (exit code, output, seconds). Past ``timeout`` it gets SIGINT, so pytest stops its target
    cleanly and still writes its report."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.send_signal(signal.SIGINT)
        output, _ = await process.communicate()
    return process.returncode or 0, output, time.monotonic() - started


T = TypeVar("T")
# How a checker names its anomaly in a finding: "lost (HND-2)".
ANOMALY = re.compile(r"\b([a-z]+(?:-[a-z]+)*) \(([A-Z]{3}-\d+)\)")


def received_and_anomaly(first: dict[str, object]) -> tuple[str, str | None]:
    """A first failure's received text (cut to a line of a table) and the anomaly it names."""
    detail = str(first.get("received", ""))[:160]
    found = ANOMALY.search(detail)
    return detail, found.group(1) if found else None


def judge_all(
    judge: Callable[[str, Path, asyncio.Semaphore], Awaitable[T]],
    names: Sequence[str],
    reports: Path,
    parallel: int,
) -> list[T]:
    """Run ``judge`` for every name, ``parallel`` at a time, in the order given."""

    async def all_runs() -> list[T]:
        slots = asyncio.Semaphore(parallel)
        return list(await asyncio.gather(*(judge(name, reports, slots) for name in names)))

    return asyncio.run(all_runs())


def publish_matrix(filename: str, table: str) -> None:
    """Write a gate's matrix to ``reports/`` and print it past pytest's capture."""
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / filename).write_text(table + "\n")
    print("\n" + table, file=sys.__stdout__, flush=True)


def first_failure(report: Path) -> dict[str, object] | None:
    """The first failure a ``--replay-report`` run wrote, if any."""
    document = report.with_suffix(".json")
    if not document.is_file():
        return None
    failures = json.loads(document.read_text())["failures"]
    return dict(failures[0]) if failures else None


def verdicts(document: dict[str, object]) -> dict[str, str]:
    """Each clause's status in a report."""
    clauses = document["clauses"]
    assert isinstance(clauses, list)
    return {entry["id"]: entry["status"] for entry in clauses}


@contextmanager
def serving(argv: Sequence[str]) -> Iterator[str]:
    """A server started from ``argv`` plus ``--port N`` on a free port, once it prints its
    "listening on http://" line; yields its URL and stops it (SIGTERM, then SIGKILL)."""
    port = free_port()
    process = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://" in first, first + process.stdout.read()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
