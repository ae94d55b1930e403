"""Tests for the fault-injecting TCP proxy (conformance.faults)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

import pytest
import socketio
from aiohttp import web

from conformance.faults import Direction, FaultProxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    """A test server on port 0: echoes, or hands each accepted stream to the test."""

    def __init__(self, *, echo: bool) -> None:
        self.echo = echo
        self.accepted: asyncio.Queue[Stream] = asyncio.Queue()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        try:
            if not self.echo:
                self.accepted.put_nowait((reader, writer))
                await self._stop.wait()  # the test drives this stream
                return
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        # Let handlers end by themselves: asyncio (3.11) reports a cancelled
        # client_connected_cb task through the loop's exception handler.
        self._stop.set()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
async def no_loop_errors() -> AsyncIterator[None]:
    """Fail on anything sent to the loop's exception handler (e.g. lost task errors)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert not errors, errors


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    upstream = Upstream(echo=True)
    port = await upstream.start()
    yield port
    await upstream.close()


@pytest.fixture
async def manual() -> AsyncIterator[tuple[Upstream, int]]:
    upstream = Upstream(echo=False)
    port = await upstream.start()
    yield upstream, port
    await upstream.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[asyncio.StreamWriter]]:
    """Writers of client connections, aborted at teardown."""
    writers: list[asyncio.StreamWriter] = []
    yield writers
    for writer in writers:
        writer.transport.abort()
    await asyncio.sleep(0)


async def connect(proxy: FaultProxy, clients: list[asyncio.StreamWriter]) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    clients.append(writer)
    return reader, writer


async def within(awaitable: Awaitable[Any], limit_s: float = 5.0) -> Any:
    return await asyncio.wait_for(awaitable, limit_s)


async def connect_and_read(proxy: FaultProxy, clients: list[asyncio.StreamWriter]) -> bytes:
    reader, _ = await connect(proxy, clients)
    return await reader.read(1)


async def round_trip(stream: Stream, payload: bytes) -> bytes:
    reader, writer = stream
    writer.write(payload)
    await writer.drain()
    return await within(reader.readexactly(len(payload)))


def record(i: int) -> bytes:
    return b"%08d\n" % i


async def test_bytes_flow_both_ways_unchanged(
    echo: int, clients: list[asyncio.StreamWriter]
) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        stream = await connect(proxy, clients)
        assert await round_trip(stream, b"hello") == b"hello"

        reader, writer = stream
        payload = os.urandom(5 * 1024 * 1024)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sender = asyncio.create_task(send())
        assert await within(reader.readexactly(len(payload)), 10) == payload
        await sender
        [conn] = proxy.connections
        assert conn.bytes_up == conn.bytes_down == len(payload) + 5
        assert conn.held_bytes == 0

        # A half-close travels through as a FIN: the echo server answers EOF.
        writer.write_eof()
        assert await within(reader.read()) == b""


async def test_cut_resets_both_sides(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        client_reader, client_writer = await connect(proxy, clients)
        client_writer.write(b"x")
        server_reader, _ = await within(upstream.accepted.get())
        assert await within(server_reader.readexactly(1)) == b"x"
        [conn] = proxy.connections

        await proxy.cut()

        assert conn.closed
        assert proxy.connections == []
        with pytest.raises(ConnectionResetError):
            await within(client_reader.read(1))
        with pytest.raises(ConnectionResetError):
            await within(server_reader.read(1))


async def test_cut_one_connection_leaves_others(
    echo: int, clients: list[asyncio.StreamWriter]
) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        first = await connect(proxy, clients)
        second = await connect(proxy, clients)
        assert await round_trip(first, b"1") == b"1"
        assert await round_trip(second, b"2") == b"2"
        first_id, second_id = (c.id for c in proxy.connections)
        assert second_id > first_id

        await proxy.cut(first_id)

        with pytest.raises(ConnectionResetError):
            await within(first[0].read(1))
        assert [c.id for c in proxy.connections] == [second_id]
        assert await round_trip(second, b"still here") == b"still here"
        await proxy.cut(first_id)  # already gone: a no-op


async def test_peer_reset_is_forwarded_as_reset(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        client_reader, _ = await connect(proxy, clients)
        _, server_writer = await within(upstream.accepted.get())
        server_writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        server_writer.transport.abort()
        with pytest.raises(ConnectionResetError):
            await within(client_reader.read(1))


async def test_stall_up_holds_bytes_until_heal(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        client_reader, client_writer = await connect(proxy, clients)
        server_reader, server_writer = await within(upstream.accepted.get())

        proxy.stall(Direction.UP)
        sent = b"".join(record(i) for i in range(100))
        for i in range(100):
            client_writer.write(record(i))
            await client_writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server_reader.read(1), 0.3)
        assert proxy.held_bytes == len(sent)

        server_writer.write(b"down still flows")
        assert await within(client_reader.readexactly(16)) == b"down still flows"

        proxy.heal()
        assert await within(server_reader.readexactly(len(sent))) == sent
        assert proxy.held_bytes == 0


async def test_stall_applies_to_new_connections(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        proxy.stall()
        _, client_writer = await connect(proxy, clients)
        client_writer.write(b"held")
        # Even the upstream handshake is held, as a black hole would hold the SYN.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(upstream.accepted.get(), 0.3)
        proxy.heal()
        server_reader, _ = await within(upstream.accepted.get())
        assert await within(server_reader.readexactly(4)) == b"held"


async def test_stall_does_not_buffer_unboundedly(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    total = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    async with FaultProxy("127.0.0.1", port) as proxy:
        _, client_writer = await connect(proxy, clients)
        server_reader, _ = await within(upstream.accepted.get())
        proxy.stall(Direction.UP)

        async def send() -> None:
            for _ in range(total // len(block)):
                client_writer.write(block)
                await client_writer.drain()

        sender = asyncio.create_task(send())
        peak = 0
        for _ in range(10):
            await asyncio.sleep(0.05)
            peak = max(peak, proxy.held_bytes)
        assert not sender.done(), "backpressure should block the sender"
        assert 0 < peak < 2 * 1024 * 1024

        proxy.heal()
        received, digest = 0, hashlib.sha256()
        while received < total:
            chunk = await within(server_reader.read(1024 * 1024))
            assert chunk
            received += len(chunk)
            digest.update(chunk)
        await within(sender)
        assert received == total
        assert digest.digest() == hashlib.sha256(block * (total // len(block))).digest()


async def test_delay_is_a_lower_bound_on_round_trip(
    echo: int, clients: list[asyncio.StreamWriter]
) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        stream = await connect(proxy, clients)
        assert await round_trip(stream, b"warm") == b"warm"
        proxy.delay(0.2, direction=Direction.UP)
        start = time.monotonic()
        assert await round_trip(stream, b"up") == b"up"
        assert time.monotonic() - start >= 0.2 - 0.01
        proxy.delay(0.2)  # both ways: at least twice the latency
        start = time.monotonic()
        assert await round_trip(stream, b"both") == b"both"
        assert time.monotonic() - start >= 0.4 - 0.01


async def test_heal_releases_delayed_bytes(echo: int, clients: list[asyncio.StreamWriter]) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        reader, writer = await connect(proxy, clients)
        proxy.delay(60.0)
        writer.write(b"late")
        await asyncio.sleep(0.1)
        proxy.heal()
        assert await within(reader.readexactly(4)) == b"late"


async def test_jitter_preserves_order(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        _, client_writer = await connect(proxy, clients)
        server_reader, _ = await within(upstream.accepted.get())
        proxy.delay(0.005, jitter_s=0.05, direction=Direction.UP, seed=7)
        for i in range(200):
            client_writer.write(record(i))
            await client_writer.drain()
            await asyncio.sleep(0.001)  # separate reads, so chunks get distinct delays
        expected = b"".join(record(i) for i in range(200))
        assert await within(server_reader.readexactly(len(expected))) == expected


async def test_refuse_resets_new_connections_only(
    echo: int, clients: list[asyncio.StreamWriter]
) -> None:
    async with FaultProxy("127.0.0.1", echo) as proxy:
        existing = await connect(proxy, clients)
        assert await round_trip(existing, b"a") == b"a"

        proxy.refuse()
        # The kernel completes the handshake, so connect succeeds; then the RST.
        with pytest.raises(ConnectionResetError):
            await within(connect_and_read(proxy, clients))
        assert await round_trip(existing, b"b") == b"b"
        assert len(proxy.connections) == 1

        proxy.refuse(False)
        assert await round_trip(await connect(proxy, clients), b"c") == b"c"


async def test_upstream_down_resets_client(clients: list[asyncio.StreamWriter]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    async with FaultProxy("127.0.0.1", dead_port) as proxy:
        reader, _ = await connect(proxy, clients)
        with pytest.raises(ConnectionResetError):
            await within(reader.read(1))


async def test_close_leaves_no_pending_tasks(
    echo: int, clients: list[asyncio.StreamWriter]
) -> None:
    proxy = FaultProxy("127.0.0.1", echo)
    await proxy.start()
    streams = [await connect(proxy, clients) for _ in range(3)]
    for stream in streams:
        assert await round_trip(stream, b"x") == b"x"
    proxy.stall(Direction.DOWN)
    proxy.delay(1.0, direction=Direction.UP)
    streams[0][1].write(b"in flight")
    await asyncio.sleep(0.05)

    await proxy.close()

    leftovers = [
        t for t in asyncio.all_tasks() if t.get_name().startswith("faultproxy") and not t.done()
    ]
    assert leftovers == []
    assert proxy.connections == []
    for reader, _ in streams:
        with pytest.raises(ConnectionResetError):
            await within(reader.read(1))
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    await proxy.close()  # idempotent


async def test_socketio_client_and_server_notice_cut() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    server_gone = asyncio.Event()

    @sio.on("echo")
    async def on_echo(sid: str, data: Any) -> Any:
        return data

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        server_gone.set()

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = socketio.AsyncClient(reconnection=False)
    client_gone = asyncio.Event()

    @client.event
    async def disconnect_handler(reason: Any = None) -> None:
        client_gone.set()

    client.on("disconnect", disconnect_handler)
    try:
        async with FaultProxy("127.0.0.1", port) as proxy:
            await within(client.connect(proxy.url, transports=["websocket"]))
            assert await client.call("echo", {"n": 1}, timeout=5) == {"n": 1}

            await proxy.cut()

            await within(client_gone.wait())
            await within(server_gone.wait())
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        await runner.cleanup()


async def test_faults_changed_from_another_thread_reach_the_loop(
    manual: tuple[Upstream, int], clients: list[asyncio.StreamWriter]
) -> None:
    """The scenario rules stall and heal from Hypothesis's thread, not the proxy's loop: the
    writer waiting on the stall must wake on the loop and release what it held, and the loop
    must stay free meanwhile (a writer spinning on a set event once froze a whole run)."""
    upstream, port = manual
    async with FaultProxy("127.0.0.1", port) as proxy:
        _, client_writer = await connect(proxy, clients)
        server_reader, _ = await within(upstream.accepted.get())
        await asyncio.to_thread(proxy.stall, Direction.UP)
        client_writer.write(record(1))
        await client_writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server_reader.read(1), 0.3)
        ticks = 0
        for _ in range(20):  # the loop keeps running while the writer waits
            await asyncio.sleep(0.005)
            ticks += 1
        await asyncio.to_thread(proxy.heal)
        assert await within(server_reader.readexactly(len(record(1)))) == record(1)
        assert ticks == 20
