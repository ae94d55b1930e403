"""What the suite (or the tests) launch dies with them, even when they are SIGKILLed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import watchdog
from conformance.launch import DEFAULT_COMMAND
from conformance.nodes import CommandNode

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent

# Stand-ins for pytest: each launches a process as the suite (or the tests' Redis helper) does,
# says its pid, and waits to be killed.
SUITE = f"""
import sys, time
from conformance.nodes import CommandNode
node = CommandNode({DEFAULT_COMMAND!r}, api_key="watchdog-key")
node.start()
print(node._process.pid, flush=True)
time.sleep(600)
"""
REDIS_TESTS = f"""
import sys, tempfile, time
sys.path.insert(0, {str(TESTS)!r})
from pathlib import Path
from redis_server import RedisServer
server = RedisServer(Path(tempfile.mkdtemp()), aof=False)
server.start()
print(server.process.pid, flush=True)
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


@pytest.mark.parametrize("launcher", [SUITE, REDIS_TESTS], ids=["suite-target", "test-redis"])
def test_a_process_killed_with_sigkill_takes_what_it_launched_along(launcher: str) -> None:
    if launcher is REDIS_TESTS and shutil.which("redis-server") is None and not os.getenv("CI"):
        pytest.skip("redis-server is not installed")
    child = 0
    with subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert not gone(child)
            parent.kill()  # no cleanup runs in it
            parent.wait()
            assert wait_gone(child), "the launched process outlived its launcher"
        finally:
            parent.kill()
            if child and not gone(child):
                os.killpg(child, signal.SIGKILL)


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
