"""``replay-reference`` / ``python -m reference``: start, announce, serve, stop gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def running(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reference", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3)]
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # reaps the process and closes its pipes


def url_of(lines: list[str]) -> str:
    assert lines[0].startswith("replay-reference ") and " listening on " in lines[0]
    return lines[0].rsplit(" ", 1)[1]


def test_serves_and_stops_gracefully_on_sigterm() -> None:
    with running("--api-key", "k1") as (process, lines):
        url = url_of(lines)
        assert lines[1] == "store: memory (durable: false)"
        assert lines[2] == "api key: k1"
        with urllib.request.urlopen(url + "/replay/v1/info", timeout=5) as response:
            assert json.load(response)["protocol"] == "replay/1"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        logs = [json.loads(line) for line in stderr.splitlines() if line]
        assert {"listening", "shutting down"} <= {entry["msg"] for entry in logs}


def test_sigint_also_stops_it() -> None:
    with running() as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


def test_api_key_from_environment_or_generated() -> None:
    with running(env={"REPLAY_API_KEY": "from-env"}) as (_, lines):
        assert lines[2] == "api key: from-env"
    environment = {k: v for k, v in os.environ.items() if k != "REPLAY_API_KEY"}
    with running(env=environment) as (_, lines):
        generated = lines[2].removeprefix("api key: ")
        assert len(generated) >= 32


@pytest.mark.parametrize("store", ["redis-but-wrong://x", "postgres://x", "memoryy"])
def test_bad_store_url_is_a_clear_error(store: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reference", "--port", "0", "--store", store],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unsupported store URL" in result.stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_each_event_loop_serves_and_says_which_it_runs(loop: str) -> None:
    with running("--event-loop", loop) as (process, lines):
        assert lines[0].startswith("replay-reference ")  # the stdout lines come first
        with urllib.request.urlopen(url_of(lines) + "/replay/v1/info", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        logs = [json.loads(line) for line in stderr.splitlines() if line]
        assert [e["loop"] for e in logs if e["msg"] == "listening"] == [loop]


def test_auto_picks_uvloop_where_installed() -> None:
    from reference import loops  # uvloop is in the test extra, so auto must find it

    assert loops.loop_factory("auto")[0] == "uvloop"
    assert loops.loop_factory("asyncio")[0] == "asyncio"
    with pytest.raises(ValueError, match="unknown event loop"):
        loops.loop_factory("trio")
