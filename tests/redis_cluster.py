"""A real local Redis Cluster for tests: three masters with one replica each, on free ports.

``running_cluster(directory)`` starts six ``redis-server --cluster-enabled yes`` processes
(``RedisServer`` from ``redis_server.py``, each with its own data directory, client port and
cluster-bus port), joins them with ``redis-cli --cluster create --cluster-replicas 1``, and
waits until every node reports ``cluster_state:ok`` and every replica has synced. A small
``cluster-node-timeout`` makes a failover take about two seconds. Everything is killed when the
block ends, on failure too. Without ``redis-server`` or ``redis-cli`` the test is skipped, or
fails when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redis.crc import key_slot
from redis_server import RedisServer, required_binary

MASTERS = 3
NODE_TIMEOUT_MS = 1000
SETTLE_TIMEOUT_S = 30.0


@dataclass
class RedisCluster:
    """The six processes of a running cluster."""

    servers: list[RedisServer]

    @property
    def seeds(self) -> str:
        """``HOST:PORT,...`` of every node (a store needs only one)."""
        return ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def url(self, seeds: int = 1) -> str:
        """The store URL, naming the first ``seeds`` nodes."""
        return "redis+cluster://" + ",".join(self.seeds.split(",")[:seeds])

    def by_port(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def masters(self) -> list[tuple[RedisServer, list[tuple[int, int]]]]:
        """Every live master with the slot ranges it owns, as a live node sees it now."""
        for server in self.servers:
            if server.process is None or server.process.poll() is not None:
                continue
            with contextlib.closing(server.admin()) as admin:
                shards = admin.execute_command("CLUSTER", "SLOTS")
            owners: dict[int, list[tuple[int, int]]] = {}
            for low, high, master, *_ in shards:
                owners.setdefault(int(master[1]), []).append((int(low), int(high)))
            return [(self.by_port(port), ranges) for port, ranges in owners.items()]
        raise RuntimeError("no node of the cluster is running")

    def wait_until_settled(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Every running node says the cluster is ok, sees every slot on a live master, and
        every replica is in sync."""
        deadline = time.monotonic() + timeout
        while not self._settled():
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not settle in time")
            time.sleep(0.1)

    def _settled(self) -> bool:
        live = [s for s in self.servers if s.process is not None and s.process.poll() is None]
        for server in live:
            with contextlib.closing(server.admin()) as admin:
                if "cluster_state:ok" not in admin.execute_command("CLUSTER", "INFO"):
                    return False
                replication = admin.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        masters = self.masters()
        return sum(high - low + 1 for _, r in masters for low, high in r) == 16384 and all(
            master.process is not None and master.process.poll() is None for master, _ in masters
        )

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for master, _ in self.masters():
            with contextlib.closing(master.admin()) as admin:
                admin.flushall()


def name_in(ranges: list[tuple[int, int]], prefix: str) -> str:
    """The first ``<prefix><n>`` whose slot (a channel's, or a session's) is in ``ranges``."""
    n = 0
    while not any(low <= key_slot(f"{prefix}{n}".encode()) <= high for low, high in ranges):
        n += 1
    return f"{prefix}{n}"


def distinct_free_ports(count: int) -> list[int]:
    """``count`` free ports, all different: each socket stays bound until all are picked."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def cluster_node(directory: Path, port: int, bus_port: int) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    extra = (
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(directory / "nodes.conf"),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--cluster-port", str(bus_port),
        "--cluster-replica-validity-factor", "0",  # a replica may always take over
    )  # fmt: skip
    return RedisServer(directory, aof=False, port=port, extra=extra)


@contextlib.contextmanager
def running_cluster(directory: Path) -> Iterator[RedisCluster]:
    """A settled three-master, three-replica cluster, killed when the block ends."""
    cli = required_binary("redis-cli", "redis-tools")
    ports = distinct_free_ports(4 * MASTERS)  # a client port and a cluster-bus port each
    servers = [
        cluster_node(directory / f"node-{n}", ports[2 * n], ports[2 * n + 1])
        for n in range(2 * MASTERS)
    ]
    cluster = RedisCluster(servers)
    try:
        for server in servers:
            server.start()
        subprocess.run(
            [cli, "--cluster", "create", *cluster.seeds.split(","),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cluster.wait_until_settled()
        yield cluster
    finally:
        for server in servers:
            server.kill()
