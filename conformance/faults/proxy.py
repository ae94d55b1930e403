"""Fault-injecting TCP proxy for one upstream ``host:port``, in pure asyncio.

Theory of operation
-------------------
Each accepted client connection gets its own upstream connection and two
independent *directions*: UP (client to server) and DOWN (server to client).
A direction is a reader task and a writer task joined by a small bounded queue:

* the reader reads chunks of at most 64 KiB from the source socket, stamps
  each with the time it may be released, and puts it on the queue;
* the writer takes chunks in FIFO order, waits until the direction is neither
  stalled nor early, writes the chunk to the destination and awaits ``drain()``.

Because the queue is bounded and the source reader's buffer is bounded too,
a slow or held destination makes the reader stop reading, so the source's
kernel buffers fill and TCP flow control pushes back on the sending peer.
The proxy never holds more than about 1 MiB per direction in memory.

How each fault maps to TCP behaviour:

* ``cut``: both sockets get ``SO_LINGER = (1, 0)`` and are aborted, so the
  kernel sends an RST instead of a FIN. Both peers see ``ECONNRESET``; no data
  still queued in the proxy is delivered.
* ``stall``: the writer stops releasing chunks (a black hole). Nothing is
  closed and nothing is dropped: the held bytes, and any FIN or RST queued
  behind them, are delivered in order after ``heal``, as TCP retransmission
  would once a partition ends. Peers only notice through their own timeouts.
* ``delay``: each chunk is released ``latency + uniform(0, jitter)`` seconds
  after it was read, but never before the previous chunk, since the single
  FIFO writer releases them one after the other (TCP does not reorder either).
  Delays are pipelined: latency does not cap throughput. Chunk boundaries are
  up to the kernel, so a seed makes delays reproducible per chunk, not per byte.
* ``refuse``: new connections are accepted by the kernel and reset at once,
  so a client sees a successful connect followed by ``ECONNRESET``, not
  ``ECONNREFUSED`` (that would require closing the listening socket, and then
  the port could be lost to another process).
* A clean EOF from a peer is forwarded as a half-close (``write_eof``), in
  order with the data; an RST from a peer is forwarded as an RST.

Faults are proxy-wide switches, consulted for every chunk, so they apply to
live and future connections alike until ``heal`` (``cut`` is one-shot).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
from typing import TYPE_CHECKING, Final

from conformance.faults.links import (
    Delay,
    Direction,
    Item,
    PeerReset,
    ProxiedConnection,
    Signal,
    expand,
    reset_socket,
)

if TYPE_CHECKING:
    from typing import Self

__all__ = ["Direction", "FaultProxy", "ProxiedConnection"]

log = logging.getLogger(__name__)

_CHUNK: Final = 64 * 1024
# Chunks a direction may hold between reader and writer; with the reader's own
# buffer (2 * _CHUNK before asyncio pauses the socket) this bounds memory.
_QUEUE_CHUNKS: Final = 8
# The kernel's receive buffer on the upstream socket, fixed: left to autotuning it grows to
# tens of MiB on loopback, and a stalled reader would not push back on the server for that long.
_RECEIVE_BUFFER: Final = 256 * 1024


class FaultProxy:
    """A TCP proxy in front of one upstream that can cut, stall, delay and refuse."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1"
    ) -> None:
        self._upstream_host = upstream_host
        self._upstream_port = upstream_port
        self._listen_host = listen_host
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._live: dict[int, ProxiedConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stalled = {Direction.UP: False, Direction.DOWN: False}
        self._delays: dict[Direction, Delay | None] = {Direction.UP: None, Direction.DOWN: None}
        self._refusing = False
        # Replaced (after being set) on every fault change, so that writers
        # waiting on a stall or a delay re-evaluate at once.
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it serves, once started

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Start listening on a free port of ``listen_host``."""
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._on_accept, self._listen_host, 0, limit=_CHUNK
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._debug("listening, upstream %s:%d", self._upstream_host, self._upstream_port)

    async def close(self) -> None:
        """Stop listening, reset every connection and wait for all proxy tasks."""
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close()
        for conn in self._live.values():
            conn.reset()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # abort() closes sockets in a loop callback; let it run before we return
        # so no transport outlives the proxy (or the event loop).
        await asyncio.sleep(0)
        await self._server.wait_closed()
        self._debug("closed")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after ``start``)."""
        if self._port is None:
            raise RuntimeError("FaultProxy not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy, to hand to a client."""
        wildcard = self._listen_host in ("", "0.0.0.0", "::")
        return f"http://{'127.0.0.1' if wildcard else self._listen_host}:{self.port}"

    @property
    def connections(self) -> list[ProxiedConnection]:
        """Live connections, oldest first."""
        return list(self._live.values())

    @property
    def held_bytes(self) -> int:
        """Bytes held inside the proxy across all live connections."""
        return sum(conn.held_bytes for conn in self._live.values())

    # -- faults ------------------------------------------------------------

    async def cut(self, conn_id: int | None = None) -> None:
        """Reset one connection (or all) on both sides; returns once they are gone."""
        tasks = []
        # An id that is no longer live is a no-op: the connection is gone anyway.
        for conn in [c for c in self._live.values() if conn_id in (None, c.id)]:
            self._debug("cut: resetting connection %d", conn.id)
            conn.reset()
            if conn._task is not None:
                conn._task.cancel()
                tasks.append(conn._task)
        await asyncio.gather(*tasks, return_exceptions=True)

    def stall(self, direction: Direction = Direction.BOTH) -> None:
        """Hold (without dropping) all bytes in ``direction`` until ``heal``."""
        for d in expand(direction):
            self._stalled[d] = True
        self._debug("fault: stall %s", direction.value)
        self._notify()

    def delay(
        self,
        latency_s: float,
        jitter_s: float = 0.0,
        direction: Direction = Direction.BOTH,
        seed: int | None = None,
    ) -> None:
        """Delay each chunk by ``latency_s + uniform(0, jitter_s)``, keeping byte order."""
        if latency_s < 0 or jitter_s < 0:
            raise ValueError("latency and jitter must be >= 0")
        for d in expand(direction):
            self._delays[d] = Delay(latency_s, jitter_s, seed)
        self._debug("fault: delay %s %.3fs + jitter %.3fs", direction.value, latency_s, jitter_s)
        self._notify()

    def refuse(self, on: bool = True) -> None:
        """Reset new connections as soon as they are accepted (or stop doing so)."""
        self._refusing = on
        self._debug("fault: refuse %s", "on" if on else "off")

    def heal(self) -> None:
        """Remove stall, delay and refuse; held bytes are released in order."""
        for d in (Direction.UP, Direction.DOWN):
            self._stalled[d] = False
            self._delays[d] = None
        self._refusing = False
        self._debug("fault: heal")
        self._notify()

    def _debug(self, msg: str, *args: object) -> None:
        # Prefix with the listening port: one proxy per client means many proxies.
        log.debug("proxy :%s " + msg, self._port, *args, stacklevel=2)

    def _notify(self) -> None:
        # Replace, then set: the current event is never one that is already set. The scenario
        # rules change faults from Hypothesis's thread while writers wait on the loop's, and a
        # writer that read a set event between a set and its replacement would spin without
        # ever yielding, freezing the loop (seen once: a whole run hung at 93% CPU).
        if self._loop is not None and not _running_on(self._loop):
            self._loop.call_soon_threadsafe(self._notify)  # Event.set is not thread-safe
            return
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    # -- forwarding --------------------------------------------------------

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing or self._closing:
            self._debug("refusing connection from %s", writer.get_extra_info("peername"))
            reset_socket(writer)
            return
        conn = ProxiedConnection(next(self._ids), _client=writer)
        self._live[conn.id] = conn
        self._debug("connection %d opened from %s", conn.id, writer.get_extra_info("peername"))
        task = asyncio.get_running_loop().create_task(
            self._serve(conn, reader), name=f"faultproxy-{self._port}-conn-{conn.id}"
        )
        conn._task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: ProxiedConnection, client_reader: asyncio.StreamReader) -> None:
        graceful = False
        try:
            # Hold the upstream handshake too while UP is stalled: in a black hole
            # the SYN would not get through either.
            await self._wait_release(Direction.UP, 0.0)
            try:
                up_reader, conn._upstream = await asyncio.open_connection(
                    self._upstream_host, self._upstream_port, limit=_CHUNK
                )
            except OSError as exc:
                self._debug("connection %d: upstream connect failed: %r", conn.id, exc)
                return
            assert conn._client is not None
            _bound_receive_buffer(conn._upstream)
            try:
                # A pump raising PeerReset cancels its siblings; a clean EOF in both
                # directions lets the group finish normally.
                async with asyncio.TaskGroup() as group:
                    for d, src, dst in (
                        (Direction.UP, client_reader, conn._upstream),
                        (Direction.DOWN, up_reader, conn._client),
                    ):
                        queue: asyncio.Queue[Item] = asyncio.Queue(_QUEUE_CHUNKS)
                        name = f"faultproxy-{self._port}-conn-{conn.id}-{d.value}"
                        group.create_task(self._read(conn, d, src, queue), name=f"{name}-read")
                        group.create_task(self._write(conn, d, dst, queue), name=f"{name}-write")
                graceful = True
            except* PeerReset:
                self._debug("connection %d: peer reset, resetting both sides", conn.id)
        finally:
            if graceful:
                # Both FINs have been forwarded already; just release the sockets.
                for writer in (conn._client, conn._upstream):
                    if writer is not None:
                        writer.close()
            else:
                conn.reset()
            conn.closed = True
            self._live.pop(conn.id, None)
            self._debug("connection %d closed (%s)", conn.id, "clean" if graceful else "reset")

    async def _read(
        self,
        conn: ProxiedConnection,
        direction: Direction,
        src: asyncio.StreamReader,
        queue: asyncio.Queue[Item],
    ) -> None:
        """Move chunks from ``src`` to ``queue`` with release times, until EOF or reset."""
        loop = asyncio.get_running_loop()
        rng = random.Random()
        rng_for: Delay | None = None
        while True:
            data: bytes | Signal
            try:
                data = await src.read(_CHUNK) or Signal.EOF
            except OSError:
                data = Signal.RESET
            due = loop.time()
            spec = self._delays[direction]
            if spec is not None:
                if spec is not rng_for:
                    # Seed per (connection, direction) so each stream's delays
                    # are reproducible however the streams interleave.
                    if spec.seed is not None:
                        rng = random.Random(f"{spec.seed}/{conn.id}/{direction.value}")
                    rng_for = spec
                due += spec.latency + (rng.uniform(0.0, spec.jitter) if spec.jitter else 0.0)
            if isinstance(data, bytes):
                conn.count(direction, read=len(data))
            await queue.put((data, due))
            if not isinstance(data, bytes):
                return

    async def _write(
        self,
        conn: ProxiedConnection,
        direction: Direction,
        dst: asyncio.StreamWriter,
        queue: asyncio.Queue[Item],
    ) -> None:
        """Release chunks from ``queue`` to ``dst`` as stall and delay allow."""
        while True:
            data, due = await queue.get()
            await self._wait_release(direction, due)
            if data is Signal.RESET:
                raise PeerReset
            if data is Signal.EOF:
                self._debug("connection %d: EOF %s", conn.id, direction.value)
                if dst.can_write_eof():
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                return
            try:
                dst.write(data)
                await dst.drain()
            except OSError as exc:
                raise PeerReset from exc
            conn.count(direction, delivered=len(data))

    async def _wait_release(self, direction: Direction, due: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            changed = self._changed
            if changed.is_set():  # never so by _notify; if ever, yield rather than spin
                await asyncio.sleep(0.001)
                continue
            if self._stalled[direction]:
                await changed.wait()
                continue
            # A healed delay releases queued chunks at once.
            remaining = due - loop.time()
            if self._delays[direction] is None or remaining <= 0:
                return
            # asyncio.timeout, unlike wait_for on 3.11, never swallows a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread
        return False


def _bound_receive_buffer(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
