"""The conformance suite as adapter authors run it: ``python -m pytest conformance ...`` in a
subprocess, from the repository root, against the reference server.

Marked ``slow`` (each run takes seconds): select them with ``-m slow``, skip with
``-m "not slow"``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conformance.nodes import docker_unreachable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "conformance-runs-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    # The runs must see only the options a test passes, not the caller's REPLAY_* settings.
    return {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}


def _suite(*args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the suite; returns the finished process and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - started


def _lines_with(done: subprocess.CompletedProcess[str], text: str) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if text in line]


@pytest.fixture(scope="module")
def reference() -> Iterator[str]:
    """A reference server started by the test, as an adapter author's CI would run theirs."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "reference", "--port", str(port), "--api-key", API_KEY],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on http://" in first, first
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_default_run_launches_the_reference_and_writes_the_report(tmp_path: Path) -> None:
    done, _ = _suite("--replay-report", str(tmp_path / "report"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "replay/1 conformance: clauses" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["failed_must"] == []
    assert report["target"]["info"]["protocol"] == "replay/1"
    assert {c["status"] for c in report["clauses"]} >= {"passed", "not covered"}
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# replay/1 conformance report") and "| SUB-7 | MUST |" in markdown


def test_run_against_a_given_target(reference: str) -> None:
    done, _ = _suite("--target", reference, "--api-key", API_KEY)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f" at {reference}" in done.stdout  # the summary names the target it judged


def test_unreachable_target_fails_fast_with_one_line() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    done, took = _suite("--target", url, "--api-key", "k", timeout=60)
    assert done.returncode not in (0, 1), done.stdout + done.stderr
    assert len(_lines_with(done, f"replay: cannot reach target {url}/replay/v1/info")) == 1
    assert took < 15


def test_wrong_api_key_fails_with_one_line(reference: str) -> None:
    done, _ = _suite("--target", reference, "--api-key", "not-the-key", timeout=60)
    assert done.returncode not in (0, 1), done.stdout + done.stderr
    assert len(_lines_with(done, f"replay: target {reference} rejected the API key")) == 1


def test_target_image_without_docker_says_so() -> None:
    if docker_unreachable() is None:
        pytest.skip("a Docker engine answers here; the no-engine message cannot be observed")
    done, _ = _suite("--target-image", "whatever", timeout=60)
    assert done.returncode not in (0, 1), done.stdout + done.stderr
    assert len(_lines_with(done, "needs a Docker engine, and none is reachable")) == 1
