"""The target's nodes: the server processes under test, however they run.

A node is a :class:`UrlNode` for a server someone else runs, a :class:`CommandNode` for a
process the suite launches from a command line, or an :class:`ImageNode` for a container.
:mod:`conformance.launch` picks and starts them from the options.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Protocol

from conformance import watchdog
from conformance.errors import SuiteError
from conformance.protocol import INFO_PATH

__all__ = [
    "CommandNode",
    "ImageNode",
    "Node",
    "UrlNode",
    "answers",
    "docker_unreachable",
    "expand_command",
    "free_port",
]

READY_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
_OUTPUT_LINES: Final = 40


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def expand_command(template: str, *, port: int, api_key: str) -> list[str]:
    """Split a ``--target-cmd`` template into argv, filling ``{port}``, ``{api_key}``,
    ``{python}``. Plain replacement, not ``str.format``: commands may contain braces."""
    values = {"{port}": str(port), "{api_key}": api_key, "{python}": sys.executable}
    argv = []
    for word in shlex.split(template):
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        argv.append(word)
    return argv


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET <url>/replay/v1/info`` gets any HTTP answer."""
    try:
        with urllib.request.urlopen(url + INFO_PATH, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def docker_unreachable(timeout: float = 3.0) -> str | None:
    """Why no Docker engine answers at ``$DOCKER_HOST`` (None when one does).

    A raw ``GET /_ping`` rather than docker-py: its failed connections leak sockets, which
    ``-W error`` runs report as errors.
    """
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    parsed = urllib.parse.urlsplit(host)
    try:
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            with sock:
                sock.connect(parsed.path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = sock.recv(64)
        elif parsed.scheme in ("tcp", "http", "https"):
            address = (parsed.hostname or "localhost", parsed.port or 2375)
            with socket.create_connection(address, timeout) as sock:
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = sock.recv(64)
        else:
            return None  # ssh:// and the like: let testcontainers try
    except OSError as exc:
        return f"{host}: {exc.strerror or exc}"
    return None if answer.startswith(b"HTTP/") else f"{host}: not a Docker engine"


class Node(Protocol):
    """One server process of the target, however it runs."""

    @property
    def url(self) -> str: ...

    @property
    def restartable(self) -> bool: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class UrlNode:
    """A node someone else runs: the suite only knows its URL."""

    url: str
    restartable: bool = False

    def start(self) -> None:
        """Nothing to start."""

    def kill(self) -> None:
        """A node the suite did not launch cannot be killed by it."""
        raise SuiteError(f"{self.url} was not launched by the suite; use --target-cmd to restart")

    def stop(self) -> None:
        """Nothing to stop."""


class CommandNode:
    """A node the suite launches from a command line, in its own process group."""

    restartable = True

    def __init__(self, template: str, *, api_key: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.argv = expand_command(template, port=self.port, api_key=api_key)
        self.url = f"http://127.0.0.1:{self.port}"
        self._api_key = api_key
        self._process: subprocess.Popen[str] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._output: deque[str] = deque(maxlen=_OUTPUT_LINES)

    @property
    def command(self) -> str:
        """The command line, as a shell would show it, with the API key masked."""
        return shlex.join(self.argv).replace(self._api_key, "***")

    def output(self) -> str:
        """The last lines the process printed (stdout and stderr)."""
        return "\n".join(self._output)

    def start(self) -> None:
        """Start the process on :attr:`port` and wait until it answers (or fail clearly)."""
        if self._process is not None and self._process.poll() is None:
            return
        env = {**os.environ, "REPLAY_API_KEY": self._api_key}
        try:
            self._process = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                start_new_session=True,  # its own process group: kill() reaches its children
            )
        except OSError as exc:
            raise SuiteError(f"replay: cannot run target command {self.command}: {exc}") from exc
        self._watchdog = watchdog.guard(self._process.pid)  # no orphan if the suite dies
        reader = threading.Thread(target=self._pump, args=(self._process,), daemon=True)
        reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(self.url):
            code = self._process.poll()
            if code is not None or time.monotonic() > deadline:
                why = f"exited with code {code}" if code is not None else "did not answer"
                self.stop()
                reader.join(1)  # let the last lines of output arrive
                raise SuiteError(
                    f"replay: target command {why} (waited for {self.url}{INFO_PATH}, "
                    f"timeout {READY_TIMEOUT_S:g} s): {self.command}\n"
                    f"last output:\n{self.output() or '(none)'}"
                )
            time.sleep(0.1)

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self._output.append(line.rstrip("\n"))

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it exited since poll()
            os.killpg(self._process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process group and wait for it (a crash, as DUR-2 means it)."""
        self._signal(signal.SIGKILL)
        if self._process is not None:
            self._process.wait()
        watchdog.dismiss(self._watchdog)
        self._watchdog = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
        watchdog.dismiss(self._watchdog)
        self._watchdog = None


class ImageNode:
    """A node run from a container image with testcontainers (API key in ``REPLAY_API_KEY``)."""

    restartable = False

    def __init__(self, image: str, *, api_key: str, port: int) -> None:
        self.image = image
        self.url = ""
        self._api_key = api_key
        self._port = port
        self._container: Any = None

    def start(self) -> None:
        """Pull and start the container, then wait until it answers."""
        try:
            from testcontainers.core.container import DockerContainer
        except ImportError:
            raise SuiteError(
                "replay: --target-image needs testcontainers: pip install 'socketio-replay[docker]'"
            ) from None
        if (reason := docker_unreachable()) is not None:
            raise SuiteError(
                f"replay: --target-image {self.image} needs a Docker engine, and none is "
                f"reachable ({reason})"
            )
        container = DockerContainer(self.image).with_exposed_ports(self._port)
        self._container = container.with_env("REPLAY_API_KEY", self._api_key)
        self._container.start()
        host = self._container.get_container_host_ip()
        self.url = f"http://{host}:{self._container.get_exposed_port(self._port)}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(self.url):
            if time.monotonic() > deadline:
                logs = b"".join(self._container.get_logs()).decode(errors="replace")[-2000:]
                self.stop()
                raise SuiteError(f"replay: {self.image} did not answer {INFO_PATH}:\n{logs}")
            time.sleep(0.2)

    def kill(self) -> None:
        """Containers are not restartable by the suite (yet)."""
        raise SuiteError("a --target-image target cannot be restarted; use --target-cmd")

    def stop(self) -> None:
        """Stop and remove the container."""
        if self._container is not None:
            self._container.stop()
            self._container = None
