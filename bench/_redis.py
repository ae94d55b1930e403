"""Shared by the benchmarks that need Redis: a ``redis-server`` or a Redis Cluster of the
run's own, on free ports, without persistence, stopped afterwards."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

MASTERS = 3  # and one replica each


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (each socket stays bound until all are picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"this benchmark needs {name} on PATH")
    return found


@contextlib.contextmanager
def redis_server(directory: Path, port: int, *extra: str) -> Iterator[int]:
    """A ``redis-server`` on ``port`` with ``extra`` arguments; yields the port once it accepts."""
    argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), *extra]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # until it accepts connections
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``redis://`` of one server of this run's own."""
    with (
        tempfile.TemporaryDirectory() as directory,
        redis_server(Path(directory), free_ports(1)[0]) as port,
    ):
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def redis_cluster_url() -> Iterator[str]:
    """``redis+cluster://`` of a three-master, three-replica cluster of this run's own."""
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as servers:
        ports, picked = [], free_ports(4 * MASTERS)  # a client and a cluster-bus port each
        for n in range(2 * MASTERS):
            node = Path(directory) / f"node-{n}"
            node.mkdir()
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                     "--cluster-port", str(picked[2 * n + 1]))  # fmt: skip
            ports.append(servers.enter_context(redis_server(node, picked[2 * n], *extra)))
        seeds = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *seeds, "--cluster-replicas", "1",
             "--cluster-yes"], check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for port in ports:  # every node agrees the cluster is up
            with contextlib.closing(redis.Redis(port=port, decode_responses=True)) as admin:
                while "cluster_state:ok" not in admin.execute_command("CLUSTER", "INFO"):
                    if time.monotonic() > deadline:
                        raise SystemExit("the Redis Cluster did not come up")
                    time.sleep(0.1)
        yield "redis+cluster://" + seeds[0]
