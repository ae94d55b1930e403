"""The MongoDB store on real MongoDB deployments, made to fail on purpose: a standalone
``mongod`` and a three-member replica set, in Docker (testcontainers); skipped, saying so,
where no Docker engine runs.

Failures are made repeatable with the server's ``failCommand`` fail point (``mongod
--setParameter enableTestCommands=1``): ``blockConnection`` holds one node's commit past the
idempotency takeover, ``closeConnection`` drops the copy-out after a commit, ``errorCode`` and
``writeConcernError`` answer as a stepping-down or lagging primary would. A paused container is
an outage, ``replSetStepDown`` an election, and a SIGKILL of ``mongod`` under load, restarted
by the loop that runs it, must lose no acknowledged publish (DUR-2) nor change an epoch.

Each ``mongod`` runs in a shell loop inside its container that starts it again when it dies,
with its pid in a file: a kill is ``kill -9`` of that pid, and the same data directory comes
back through crash recovery. The replica set's three members share one container on the host's
network, so that the names in its configuration (``127.0.0.1:<port>``) are the names the test
connects to (Linux only; elsewhere those tests skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import MONGO_IMAGE, NO_DOCKER
from harness import serve
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from reference.core.errors import Unavailable
from reference.core.model import Payload
from reference.core.payloads import encode_payload
from reference.store.mongo import MongoStore
from reference.store.mongo_deployment import CLIENT_OPTIONS, REPLICA_SET, STANDALONE

READY_S = 60.0  # how long a deployment may take to come up (the image may be pulled first)


def payload(value: object) -> Payload:
    return encode_payload(value, 1 << 16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mongod_loop(port: int, extra: str) -> str:
    """A shell loop running one ``mongod`` and starting it again whenever it dies."""
    data = f"/data/m{port}"
    command = (
        f"mongod --port {port} --dbpath {data} --pidfilepath /tmp/m{port}.pid "
        f"--setParameter enableTestCommands=1 {extra}"
    )
    return f"mkdir -p {data}; while true; do {command} >>/tmp/m{port}.log 2>&1; sleep 0.2; done"


@dataclass
class Deployment:
    """A running deployment: its container, the URL the store uses, its members' ports."""

    kind: str
    container: Any
    url: str
    members: list[str]  # host:port as the client reaches them
    ports: list[int] = field(default_factory=list)  # inside the container

    def admin(self, member: str | None = None) -> MongoClient[dict[str, Any]]:
        """A synchronous client to ``member``, or to the deployment's primary."""
        if member is None:
            return MongoClient(self.url, serverSelectionTimeoutMS=30_000)
        return MongoClient(f"mongodb://{member}/?directConnection=true")

    def primary(self) -> tuple[str, int]:
        """The member that is primary now, and its port inside the container."""
        with self.admin() as client:
            client.admin.command("ping")
            host, port = client.address or ("", 0)  # the standalone, or the set's primary
        member = f"{host}:{port}"
        return member, self.ports[self.members.index(member)]

    def kill(self, port: int) -> None:
        """SIGKILL the ``mongod`` on ``port``; its loop starts it again."""
        result = self.container.exec(["sh", "-c", f"kill -9 $(cat /tmp/m{port}.pid)"])
        assert result.exit_code == 0, result.output

    @contextlib.contextmanager
    def fail_point(self, mode: Any, **data: Any) -> Iterator[None]:
        """``failCommand`` on the primary, on for the block."""
        with self.admin(self.primary()[0]) as client:
            client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
            try:
                yield
            finally:
                client.admin.command("configureFailPoint", "failCommand", mode="off")


def _wait_ready(deployment: Deployment) -> None:
    deadline = time.monotonic() + READY_S
    while True:
        try:
            with deployment.admin() as client:
                if client.admin.command("hello").get("isWritablePrimary"):
                    return
        except PyMongoError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {deployment.kind} did not come up")
        time.sleep(0.5)


def _standalone() -> Deployment:
    from testcontainers.core.container import DockerContainer

    loop = _mongod_loop(27017, "--bind_ip_all")
    container = DockerContainer(MONGO_IMAGE).with_command(["bash", "-c", loop])
    container.with_exposed_ports(27017).start()
    member = f"{container.get_container_host_ip()}:{container.get_exposed_port(27017)}"
    return Deployment(STANDALONE, container, f"mongodb://{member}/", [member], [27017])


def _replica_set() -> Deployment:
    from testcontainers.core.container import DockerContainer

    ports = [_free_port() for _ in range(3)]
    loops = " & ".join(f"({_mongod_loop(p, '--replSet rs0 --bind_ip 127.0.0.1')})" for p in ports)
    container = DockerContainer(MONGO_IMAGE).with_command(["bash", "-c", f"{loops} & wait"])
    container.with_kwargs(network_mode="host").start()
    members = [f"127.0.0.1:{p}" for p in ports]
    config = {"_id": "rs0", "members": [{"_id": i, "host": m} for i, m in enumerate(members)]}
    deadline = time.monotonic() + READY_S
    while True:  # until every member listens and the set is initiated
        try:
            with MongoClient(f"mongodb://{members[0]}/?directConnection=true") as first:
                first.admin.command("replSetInitiate", config)
            break
        except PyMongoError as exc:
            if "already initialized" in str(exc):
                break
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    url = f"mongodb://{','.join(members)}/?replicaSet=rs0"
    return Deployment(REPLICA_SET, container, url, members, ports)


@pytest.fixture(scope="module", params=[STANDALONE, REPLICA_SET])
def deployment(request: pytest.FixtureRequest, docker_running: bool) -> Iterator[Deployment]:
    if not docker_running:
        pytest.skip(NO_DOCKER)
    if request.param == REPLICA_SET and sys.platform != "linux":
        pytest.skip("the replica set needs Docker's host networking, which only Linux has")
    started = _standalone() if request.param == STANDALONE else _replica_set()
    try:
        _wait_ready(started)
        yield started
    finally:
        started.container.stop()


@pytest.fixture
async def stores(deployment: Deployment) -> AsyncIterator[Any]:
    """``await make(appname)``: an opened store with its own client, on one fresh database."""
    name = f"replay_real_{secrets.token_hex(4)}"
    opened: list[MongoStore] = []

    async def make(appname: str = "replay-test") -> MongoStore:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            deployment.url, appname=appname, **CLIENT_OPTIONS
        )
        store = MongoStore(client[name], client=client)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    with deployment.admin() as client:
        client.drop_database(name)


# --- what the deployment promises ---------------------------------------------------------


async def test_a_journaled_deployment_is_durable(deployment: Deployment, stores: Any) -> None:
    store: MongoStore = await stores()
    assert store.durable is True  # INF-4
    assert store.deployment is not None and store.deployment.kind == deployment.kind


# --- races made repeatable with failCommand -------------------------------------------------


async def test_a_commit_blocked_past_the_takeover_does_not_store_its_id_twice(
    deployment: Deployment, stores: Any
) -> None:
    """IDM-2: node A's commit (``findAndModify``) is held by the server for 3 s, past a 1 s
    takeover; node B takes the claim over and stores the id; A's commit then runs, and the
    fence refuses it."""
    slow, fast = await stores("slow"), await stores("fast")
    for store in (slow, fast):
        store.claims.stale_ms = 1_000
    await fast.state("c")  # A's first findAndModify is then its commit
    block = {"blockConnection": True, "blockTimeMS": 3_000, "appName": "slow"}
    with deployment.fail_point({"times": 1}, failCommands=["findAndModify"], **block):
        late = asyncio.create_task(slow.append("c", payload("from a"), "k"))
        await asyncio.sleep(1.5)
        first = await fast.append("c", payload("from b"), "k")
        second = await late
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert first.offset == second.offset == 1
    assert [m.data for m in (await fast.read("c", 1, 10)).messages] == ["from b"]


async def test_a_connection_closed_after_the_commit_fails_no_publish(
    deployment: Deployment, stores: Any
) -> None:
    """The copy-out (``insert``) loses its connection: the publish still succeeds, readers
    get the message from the channel's document, and the next publisher completes it."""
    slow, other = await stores("slow"), await stores("other")
    slow.log.leftover_ms = other.log.leftover_ms = 100
    closed = {"closeConnection": True, "appName": "slow"}
    with deployment.fail_point({"times": 1}, failCommands=["insert"], **closed):
        stored = await slow.append("c", payload("kept"), None)
    assert [m.data for m in (await other.read("c", 1, 10)).messages] == ["kept"]
    await asyncio.sleep(0.2)
    await other.append("c", payload("next"), None)
    assert (await other.read("c", 1, 10)).state.head == stored.offset + 1
    with deployment.admin() as client:
        copied = client[other.database_name]["messages"].count_documents({"channel": "c"})
    assert copied == 2


@pytest.mark.parametrize("code", [10107, 91, 189])  # NotWritablePrimary, Shutdown, SteppedDown
async def test_a_stepping_down_primary_answers_unavailable(
    deployment: Deployment, stores: Any, code: int
) -> None:
    store = await stores("failing")
    await store.append("c", payload(1), None)
    failing = {"errorCode": code, "appName": "failing"}
    with (
        deployment.fail_point("alwaysOn", failCommands=["find"], **failing),
        pytest.raises(Unavailable),
    ):
        await store.read("c", 1, 10)
    assert len((await store.read("c", 1, 10)).messages) == 1


async def test_a_write_concern_error_answers_unavailable(
    deployment: Deployment, stores: Any
) -> None:
    store = await stores("lagging")
    concern = {"code": 64, "errmsg": "waiting for replication timed out"}
    failing = {"writeConcernError": concern, "appName": "lagging"}
    with (
        deployment.fail_point({"times": 1}, failCommands=["findAndModify"], **failing),
        pytest.raises(Unavailable),
    ):
        await store.append("c", payload("unsure"), None)  # applied, perhaps; not acknowledged


async def test_a_subscription_waits_out_a_failing_primary(
    deployment: Deployment, stores: Any
) -> None:
    store = await stores("subscriber")
    async with serve(store) as served:
        client = await served.client()
        await served.publish("c", "before")
        assert (await client.call("replay:subscribe", {"channel": "c", "from": "beginning"}))["ok"]
        await client.wait_for_offset("c", 1)
        failing = {"errorCode": 10107, "appName": "subscriber"}
        with deployment.fail_point("alwaysOn", failCommands=["find"], **failing):
            await served.publish("c", "during")  # commits; its reads fail, and so do ours
            await asyncio.sleep(1.5)  # the subscription reads, fails and retries meanwhile
            assert client.offsets("c") == [1]
        await client.wait_for_offset("c", 2, timeout=10)
        assert [name for name, _ in client.events if name == "replay:unsubscribed"] == []


async def test_an_outage_answers_within_seconds(deployment: Deployment, stores: Any) -> None:
    store = await stores()
    await store.append("c", payload(1), None)
    deployment.container.get_wrapped_container().pause()
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await store.read("c", 1, 10)
        assert time.monotonic() - started < 10  # OPERATION_TIMEOUT_S, not 30 s
    finally:
        deployment.container.get_wrapped_container().unpause()
    assert len((await store.read("c", 1, 10)).messages) == 1


# --- crashes and failovers ----------------------------------------------------------------


async def _publish_until(store: MongoStore, stop: asyncio.Event, tag: str) -> dict[int, str]:
    """Publish keyed messages until ``stop``; return the acknowledged ones, offset -> id."""
    acked: dict[int, str] = {}
    n = 0
    while not stop.is_set():
        message_id = f"{tag}-{n}"
        try:
            result = await store.append("c", payload(message_id), message_id)
        except Unavailable:
            await asyncio.sleep(0.05)  # and publish the same id again (IDM-6)
            continue
        acked[result.offset] = result.id
        n += 1
    return acked


async def _all_messages(store: MongoStore) -> dict[int, str]:
    state = await store.state("c")
    found: dict[int, str] = {}
    start = state.first or 1
    while start <= state.head:
        read = await store.read("c", start, 500)
        found |= {m.offset: m.id for m in read.messages}
        start += len(read.messages)
    return found


async def test_sigkill_of_mongod_under_load_loses_no_acknowledged_publish(
    deployment: Deployment, stores: Any
) -> None:
    """DUR-2: SIGKILL the (primary) ``mongod`` while four publishers run; it comes back by
    crash recovery (or a secondary is elected); every acknowledged publish is there, at its
    offset, in the same epoch, and the offsets are dense."""
    publishers = [await stores(f"publisher-{i}") for i in range(4)]
    epoch = (await publishers[0].state("c")).epoch
    stop = asyncio.Event()
    running = [
        asyncio.create_task(_publish_until(s, stop, f"p{i}")) for i, s in enumerate(publishers)
    ]
    await asyncio.sleep(1.0)
    deployment.kill(deployment.primary()[1])
    await asyncio.sleep(3.0)  # publishers meet the crash, then the deployment again
    await asyncio.to_thread(_wait_ready, deployment)
    await asyncio.sleep(1.0)
    stop.set()
    acked: dict[int, str] = {}
    for task in running:
        acked |= await task
    reader = await stores("reader")
    assert (await reader.state("c")).epoch == epoch  # EPO-2: no history lost
    stored = await _all_messages(reader)
    lost = {offset: i for offset, i in acked.items() if stored.get(offset) != i}
    assert lost == {}, f"{len(lost)} of {len(acked)} acknowledged publishes lost"
    assert sorted(stored) == list(range(1, max(stored) + 1))  # OFF-2: no hole


async def test_a_step_down_ends_no_subscription(deployment: Deployment, stores: Any) -> None:
    """One routine step-down ended every live subscription: now the subscription waits out
    the election and receives every acknowledged publish, in order."""
    if deployment.kind != REPLICA_SET:
        pytest.skip("a standalone has no election")
    store = await stores("node")
    async with serve(store) as served:
        client = await served.client()
        assert (await client.call("replay:subscribe", {"channel": "c", "from": "beginning"}))["ok"]
        offsets: list[int] = []
        for i in range(40):
            if i == 10:
                with (
                    deployment.admin(deployment.primary()[0]) as primary,
                    contextlib.suppress(PyMongoError),  # it drops our connection
                ):
                    primary.admin.command("replSetStepDown", 10, force=True)
            offsets.append(await _publish_retrying(served, i))
        await client.wait_for_offset("c", max(offsets), timeout=30)
        assert client.offsets("c") == list(range(1, max(offsets) + 1))
        assert [name for name, _ in client.events if name == "replay:unsubscribed"] == []


async def _publish_retrying(served: Any, i: int) -> int:
    """Publish through the node's HTTP API, retrying ``unavailable`` with the same id."""
    body = {"data": i, "id": f"m{i}"}
    for _ in range(100):
        status, reply = await served.call("POST", "/replay/v1/channels/c/messages", body)
        if status in (200, 201):
            return int(reply["offset"])
        assert status == 503, reply
        await asyncio.sleep(0.2)
    raise AssertionError(f"publish {i} never succeeded")
