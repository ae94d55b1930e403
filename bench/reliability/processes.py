"""Real processes for the campaign's parts: a ``redis-server`` with an fsynced append-only
file, a ``python -m reference`` node that can be SIGKILLed and started again on its port, and
a sampler of a process's resident memory.

Each process runs in its own process group with a ``conformance.watchdog`` guard, so that a
campaign killed without cleanup (SIGKILL, a CI timeout) leaves no server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from conformance import watchdog

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
ERROR_LEVELS = ("error", "critical")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """The resident set size of ``pid`` (Linux ``/proc``), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used (Linux ``/proc``), 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Guarded:
    """A child process in its own group, with a watchdog, stopped by signal and reaped."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self._dog: subprocess.Popen[bytes] | None = None

    async def _spawn(self, argv: list[str], stdout: int, stderr: int | IO[Any]) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdout=stdout, stderr=stderr, start_new_session=True
        )
        self._dog = watchdog.guard(self.process.pid)

    @property
    def pid(self) -> int:
        return 0 if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` (SIGKILL escalates after ``STOP_TIMEOUT_S``); the exit status."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(sig)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        watchdog.dismiss(self._dog)
        self._dog = None
        return process.returncode

    async def kill(self) -> None:
        """SIGKILL (a crash: no shutdown code runs) and reap."""
        await self.stop(signal.SIGKILL)


class RedisProcess(Guarded):
    """``redis-server`` on ``port`` with an append-only file fsynced on every write."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start (again, on the same port and directory) and wait until PING answers, which
        it does once the append-only file is loaded."""
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log")]  # fmt: skip
        await self._spawn(argv, subprocess.DEVNULL, subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                answer = await reader.readline()
                writer.close()
                if answer.startswith(b"+PONG"):
                    return
            if not self.running():
                raise RuntimeError(f"redis-server exited at start (see {self.directory})")
            await asyncio.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING in time")


class ReferenceNode(Guarded):
    """``python -m reference`` on a fixed port, so clients find it again after a restart.

    Its JSON log (stderr) is read to the end; ``problems`` collects each traceback or error
    line, which every part counts as an anomaly.
    """

    def __init__(self, api_key: str, store: str = "memory", port: int | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.store = store
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.durable = False
        self.problems: list[str] = []
        self.log_lines = 0
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        argv = [sys.executable, "-m", "reference", "--port", str(self.port), "--store",
                self.store, "--api-key", self.api_key, "--log-level", "warning"]  # fmt: skip
        await self._spawn(argv, subprocess.PIPE, subprocess.PIPE)
        assert self.process is not None and self.process.stdout and self.process.stderr
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                listening = (await self.process.stdout.readline()).decode()
                store_line = (await self.process.stdout.readline()).decode()
        except TimeoutError:
            await self.stop()
            raise
        if "listening on" not in listening:
            await self.stop()
            raise RuntimeError(f"the reference did not start: {listening!r}")
        self.durable = "durable: true" in store_line
        self._readers = [
            asyncio.ensure_future(self._drain(self.process.stdout, None)),
            asyncio.ensure_future(self._drain(self.process.stderr, self._judge)),
        ]

    async def _drain(
        self, stream: asyncio.StreamReader, judge: Callable[[bytes], None] | None
    ) -> None:
        async for raw in stream:
            if judge is not None:
                judge(raw)

    def _judge(self, raw: bytes) -> None:
        self.log_lines += 1
        try:
            entry = json.loads(raw)
        except ValueError:
            self.problems.append(f"server log line that is not JSON: {raw[:200]!r}")
            return
        level = str(entry.get("level", "?"))
        if "exc" in entry or level in ERROR_LEVELS:
            what = f"{entry.get('msg')!r} {str(entry.get('exc', ''))[-300:]}"
            self.problems.append(f"server logged {level}: {what}")

    async def stop(self, sig: int = signal.SIGKILL) -> int | None:
        status = await super().stop(sig)
        for reader in self._readers:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, STOP_TIMEOUT_S)
        self._readers = []
        return status


class RssSampler:
    """Samples a process's resident memory every ``interval_s`` while running."""

    def __init__(self, pid: Callable[[], int], interval_s: float = 0.2) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self.peak = 0
        self.cpu: list[tuple[float, float]] = []  # (time.monotonic(), CPU seconds used)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def reset(self) -> None:
        """Forget what was sampled: the process was replaced."""
        self.peak, self.cpu = 0, []

    def busy(self, start: float, end: float) -> float:
        """The share of one core the process used between two ``time.monotonic()`` times."""
        inside = [(t, used) for t, used in self.cpu if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    async def _run(self) -> None:
        while True:
            pid = self._pid()
            if rss := rss_bytes(pid):
                self.peak = max(self.peak, rss)
                self.cpu.append((time.monotonic(), cpu_seconds(pid)))
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
