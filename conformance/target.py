"""The target: the server (or cluster) under test, how the suite reaches, launches and restarts it.

A :class:`Target` has one or more nodes (:class:`UrlNode` for a server someone else runs,
:class:`CommandNode` for a process the suite launches from a command line, :class:`ImageNode`
for a container). It is also what a case receives as its ``target`` fixture: inside a running
case, ``target.channel()``, ``target.client()``, ``target.register()`` and ``target.backend``
work on that case's event log, and everything they create is cleaned up when the case ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
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
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp

from conformance.backend import Backend, Session
from conformance.case import CaseHost, CaseSpec, current, current_or_none, run_case
from conformance.client import REPLY_TIMEOUT_S, ReplayClient
from conformance.faults import FaultProxy
from conformance.findings import ConnectRefused, EventLog, SuiteError, fail

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from conformance.driver import Driver

__all__ = [
    "DEFAULT_COMMAND",
    "CommandNode",
    "ImageNode",
    "LaunchSpec",
    "Node",
    "Target",
    "UrlNode",
    "docker_unreachable",
    "expand_command",
    "free_port",
    "launch",
]

DEFAULT_COMMAND: Final = "{python} -m reference --host 127.0.0.1 --port {port} --api-key={api_key}"
READY_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
INFO_PATH: Final = "/replay/v1/info"
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

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()


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


@dataclass(frozen=True)
class LaunchSpec:
    """How to reach or launch the target (from the ``replay`` options)."""

    urls: tuple[str, ...] = ()
    command: str | None = None
    image: str | None = None
    image_port: int = 8080
    api_key: str | None = None

    @property
    def mode(self) -> str:
        """``url``, ``command``, ``image`` or ``reference`` (the default command)."""
        if self.urls:
            return "url"
        return "command" if self.command else "image" if self.image else "reference"


def launch(spec: LaunchSpec, driver: Driver, default_timeout: float) -> Target:
    """Build the target of ``spec`` and start what the suite launches (raises SuiteError)."""
    if spec.mode == "url":
        if not spec.api_key:
            raise SuiteError(
                "replay: no API key for the target; pass --api-key or set REPLAY_API_KEY"
            )
        nodes: list[Node] = [UrlNode(url.rstrip("/")) for url in spec.urls]
        return Target(nodes, spec.api_key, driver, default_timeout)
    # Hex, not base64url: a generated key must never start with "-", which a command line
    # would read as an option.
    api_key = spec.api_key or secrets.token_hex(24)
    if spec.mode == "image":
        assert spec.image is not None
        nodes = [ImageNode(spec.image, api_key=api_key, port=spec.image_port)]
    else:
        template = spec.command or DEFAULT_COMMAND
        nodes = [CommandNode(template, api_key=api_key)]
    target = Target(
        nodes, api_key, driver, default_timeout, command=spec.command or DEFAULT_COMMAND
    )
    try:
        for node in nodes:
            node.start()
    except BaseException:
        target.stop_nodes()
        raise
    return target


class Target(CaseHost):
    """The server under test, and what a case uses to drive it."""

    def __init__(
        self,
        nodes: Sequence[Node],
        api_key: str,
        driver: Driver,
        default_timeout: float,
        *,
        command: str | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.api_key = api_key
        self.driver = driver
        self.default_timeout = default_timeout
        self.command_template = command  # kept so cluster/durability work can add nodes
        self.info: dict[str, Any] = {}
        self._http: aiohttp.ClientSession | None = None
        self._spare_log = EventLog()  # for backend calls made outside a case

    # --- what the target is and claims -----------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """One base URL per node."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The first node's base URL."""
        return self.nodes[0].url

    @property
    def restartable(self) -> bool:
        """True when the suite launched every node and can kill and start it again."""
        return all(node.restartable for node in self.nodes)

    @property
    def features(self) -> frozenset[str]:
        """``info.features``."""
        return frozenset(self.info.get("features", ()))

    @property
    def durable(self) -> bool:
        """``info.durable``."""
        return bool(self.info.get("durable"))

    @property
    def limits(self) -> dict[str, int]:
        """``info.limits``."""
        limits: dict[str, int] = self.info.get("limits", {})
        return limits

    def describe(self) -> str:
        """One line for report headers: the URLs, and the command or image when launched."""
        how = [getattr(n, "command", None) or getattr(n, "image", None) for n in self.nodes]
        launched = [h for h in how if h]
        return ", ".join(self.urls) + (f" (launched: {launched[0]})" if launched else "")

    # --- session lifetime (called by the plugin) -----------------------------------------------

    def open(self) -> None:
        """Create the HTTP session every backend and client of the run shares."""

        async def create() -> aiohttp.ClientSession:
            # No cookie jar: a cookie one client receives (a sticky-session cookie, say) must
            # not leak into another; no connection limit: each WebSocket holds a connection.
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
            )

        self._http = self.driver.run(create(), timeout=10)

    def close(self) -> None:
        """Close the HTTP session and stop the nodes the suite launched."""
        if self._http is not None and not self.driver.closed:
            self.driver.run(self._http.close(), timeout=10)
        self._http = None
        self.stop_nodes()

    def stop_nodes(self) -> None:
        """Stop every node the suite launched (never raises)."""
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # stopping is best effort; the run's outcome is already known
                continue

    def run_case(self, spec: CaseSpec, body: Callable[[], Awaitable[None]]) -> None:
        """Run one case body on the driver (``@case`` calls this)."""
        timeout = spec.timeout or self.default_timeout
        # The case times itself out (with its log); the driver's limit is only a backstop.
        self.driver.run(run_case(spec, body, timeout), timeout=timeout + 30)

    # --- helpers for cases ---------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared aiohttp session."""
        if self._http is None:
            raise SuiteError("the target is not open")
        return self._http

    @property
    def log(self) -> EventLog:
        """The running case's event log."""
        return current().log

    @property
    def backend(self) -> Backend:
        """The backend API of the first node, logging to the running case."""
        return self.backend_at(0)

    def backend_at(self, node: int) -> Backend:
        """The backend API of node ``node``."""
        context = current_or_none()
        log = context.log if context is not None else self._spare_log
        actor = "backend" if node == 0 else f"backend@{node}"
        return Backend(self.http, self.urls[node], self.api_key, log, actor)

    def channel(self, label: str = "") -> str:
        """A fresh channel name for this case: ``room:<case>[-<label>]-<random>``."""
        context = current_or_none()
        slug = context.spec.slug if context is not None else "adhoc"
        return f"room:{slug}{'-' + label if label else ''}-{secrets.token_hex(4)}"

    async def register(
        self,
        grants: Sequence[Mapping[str, Any]] = (),
        *,
        subscribe: Sequence[Mapping[str, Any]] | None = None,
        session_id: str | None = None,
        ttl_s: int | None = None,
        client_id: str | None = None,
        node: int = 0,
    ) -> Session:
        """Register a session (deleted when the case ends); fails the case unless 200/201."""
        backend = self.backend_at(node)
        session = await backend.register(client_id, grants, subscribe, session_id, ttl_s)
        current().defer(lambda: backend.delete_session(session.session_id))
        return session

    async def client(
        self,
        grants: Sequence[Mapping[str, Any]] | None = None,
        *,
        session: Session | None = None,
        subscribe: Sequence[Mapping[str, Any]] | None = None,
        ttl_s: int | None = None,
        connect: bool = True,
        node: int = 0,
        proxy: FaultProxy | None = None,
        name: str | None = None,
        timeout: float = REPLY_TIMEOUT_S,
    ) -> ReplayClient:
        """A client of node ``node`` (through ``proxy`` if given), disconnected at case end.

        With ``grants`` a session is registered first; with a session (given or registered)
        and ``connect``, the client connects and a refusal fails the case (CON-1).
        """
        context = current()
        if session is None and grants is not None:
            session = await self.register(grants, subscribe=subscribe, ttl_s=ttl_s, node=node)
        client = ReplayClient(
            proxy.url if proxy is not None else self.urls[node],
            name=name or context.next_name("c"),
            log=context.log,
            session=session,
            max_batch=self.limits.get("max_batch"),
            timeout=timeout,
        )
        context.defer(client.close, early=True)
        if connect and session is not None:
            try:
                await client.connect()
            except ConnectRefused as refused:
                fail(
                    "CON-1",
                    "the connection of a live session accepted",
                    str(refused),
                    actor=client.name,
                )
        return client

    async def proxy(self, node: int = 0) -> FaultProxy:
        """A started :class:`FaultProxy` in front of node ``node``, closed at case end."""
        host, _, port = self.urls[node].removeprefix("http://").partition(":")
        proxy = FaultProxy(host, int(port or 80))
        await proxy.start()
        current().defer(proxy.close)
        return proxy

    def _picked(self, node: int | None) -> list[Node]:
        if not self.restartable:
            raise SuiteError("this target was not launched by the suite and cannot be restarted")
        return self.nodes if node is None else [self.nodes[node]]

    async def kill(self, node: int | None = None) -> None:
        """SIGKILL node ``node`` (all when None); it is started again when the case ends."""
        for picked in self._picked(node):
            await asyncio.to_thread(picked.kill)
            # A case that fails between kill and start must not leave later cases without
            # a target; start() returns at once if the node already runs.
            current().defer(functools.partial(asyncio.to_thread, picked.start))

    async def start(self, node: int | None = None) -> None:
        """Start node ``node`` (all when None) on its port again; waits until it answers."""
        for picked in self._picked(node):
            await asyncio.to_thread(picked.start)

    async def restart(self, node: int | None = None) -> None:
        """Kill then start node ``node`` (all when None)."""
        await self.kill(node)
        await self.start(node)
