"""A real ``redis-server`` for tests: started on a free port, killed afterwards. No Docker.

``running_redis(directory, aof=...)`` starts one with no RDB snapshots (``--save ''``) and,
with ``aof=True``, an append-only file fsynced on every write (``appendfsync always``). The
returned ``RedisServer`` can be SIGKILLed and started again on the same port and directory,
which is how the durability tests simulate a crash. Without ``redis-server`` on the PATH the
test is skipped, or fails when the ``CI`` environment variable is set (CI must run them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conformance import watchdog

START_TIMEOUT_S = 15.0


def required_binary(name: str, package: str) -> str:
    """The path of ``name``; skips the test (fails it on CI) when there is none."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def redis_server_binary() -> str:
    return required_binary("redis-server", "redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on a fixed port and data directory."""

    def __init__(
        self, directory: Path, *, aof: bool, port: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.aof = aof
        self.port = port or free_port()
        self.extra = extra  # more redis-server arguments, e.g. ("--rename-command", "CONFIG", "")
        self.process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def admin(self) -> redis.Redis:
        """A synchronous client for setting things up and looking inside."""
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until PING answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._watchdog = watchdog.guard(self.process.pid)  # no orphan if pytest is SIGKILLed
        deadline = time.monotonic() + START_TIMEOUT_S
        with contextlib.closing(self.admin()) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:  # not listening yet, or LOADING
                    pass
                if self.process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited at start:\n{log}")
                if time.monotonic() > deadline:
                    raise TimeoutError("redis-server did not answer PING in time")
                time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process abruptly (a crash) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        watchdog.dismiss(self._watchdog)
        self._watchdog = None

    def restart(self) -> None:
        """SIGKILL, then start again on the same port and directory."""
        self.kill()
        self.start()


@contextlib.contextmanager
def running_redis(
    directory: Path, *, aof: bool, extra: tuple[str, ...] = ()
) -> Iterator[RedisServer]:
    """A started ``RedisServer``, killed when the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory, aof=aof, extra=extra)
    server.start()
    try:
        yield server
    finally:
        server.kill()
