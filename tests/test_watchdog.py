"""A target the suite launched dies with the suite, even when the suite is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import watchdog
from conformance.nodes import DEFAULT_COMMAND, CommandNode

pytestmark = pytest.mark.slow

# A stand-in for pytest running the suite: it launches the reference as the suite does, says
# the target's pid, and waits to be killed.
SUITE = f"""
import sys, time
from conformance.nodes import CommandNode
node = CommandNode({DEFAULT_COMMAND!r}, api_key="watchdog-key")
node.start()
print(node._process.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie no one reaped counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def test_a_suite_killed_with_sigkill_takes_its_target_along() -> None:
    target_pid = 0
    with subprocess.Popen([sys.executable, "-c", SUITE], stdout=subprocess.PIPE) as suite:
        try:
            assert suite.stdout is not None
            target_pid = int(suite.stdout.readline())
            assert not gone(target_pid)
            suite.kill()  # no cleanup runs in the suite
            suite.wait()
            assert wait_gone(target_pid), "the target outlived the suite"
        finally:
            suite.kill()
            if target_pid and not gone(target_pid):
                os.killpg(target_pid, signal.SIGKILL)


def test_a_target_stopped_by_the_suite_dismisses_its_watchdog() -> None:
    node = CommandNode(DEFAULT_COMMAND, api_key="watchdog-key")
    node.start()
    dog = node._watchdog
    assert dog is not None and dog.poll() is None
    node.stop()
    assert dog.returncode == 0 and node._watchdog is None


def test_the_watchdog_spares_a_dismissed_group_and_kills_an_abandoned_one() -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        dog = subprocess.Popen(
            [sys.executable, watchdog.__file__, str(sleeper.pid)], stdin=subprocess.PIPE
        )
        dog.communicate(watchdog.DISMISS, timeout=10)
        assert dog.returncode == 0 and sleeper.poll() is None  # dismissed: the group lives
        dog = subprocess.Popen(
            [sys.executable, watchdog.__file__, str(sleeper.pid)], stdin=subprocess.PIPE
        )
        dog.communicate(b"", timeout=10)  # end of file without the word: the suite is gone
        assert sleeper.wait(10) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
