"""RedisClusterStore: the cluster URL, one seed discovering the rest, channels and sessions on
every shard, never ``durable``, and ``unavailable`` when no node answers. The store contract
itself runs on the cluster through the ``redis-cluster`` store kind (conftest.py)."""

from __future__ import annotations

import contextlib

import pytest
from redis_cluster import RedisCluster, name_in
from redis_server import free_port
from test_store_contract import session

from reference.core.errors import Unavailable
from reference.core.payloads import encode_payload
from reference.store import ACCEPTED_FORMS, open_store
from reference.store.redis import channel_keys, session_keys
from reference.store.redis_cluster import RedisClusterStore, cluster_client


def test_the_url_names_seeds_credentials_and_tls() -> None:
    url = "rediss+cluster://user:secret@10.0.0.1:7000,[::1]:7001,other?socket_timeout=2"
    client = cluster_client(url)
    seeds = [(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()]
    assert seeds == [("10.0.0.1", 7000), ("::1", 7001), ("other", 6379)]
    options = next(iter(client.nodes_manager.startup_nodes.values())).connection_kwargs
    assert (options["username"], options["password"]) == ("user", "secret")
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.0, 5.0)
    assert client.nodes_manager.connection_kwargs["connection_class"].__name__ == "SSLConnection"


@pytest.mark.parametrize(
    "url", ["redis+cluster://h:1/2", "redis+cluster://h:port", "redis+cluster://:1,h:2"]
)
def test_a_bad_cluster_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        cluster_client(url)


def test_open_store_knows_the_cluster_forms() -> None:
    assert "redis+cluster://HOST:PORT[,HOST:PORT...]" in ACCEPTED_FORMS
    assert isinstance(open_store("redis+cluster://127.0.0.1:1"), RedisClusterStore)
    assert isinstance(open_store("rediss+cluster://127.0.0.1:1"), RedisClusterStore)


async def test_no_reachable_node_is_unavailable() -> None:
    store = open_store(f"redis+cluster://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable):
        await store.open()
    await store.close()


async def test_one_seed_finds_every_node_and_every_shard_holds_data(
    redis_cluster: RedisCluster,
) -> None:
    redis_cluster.flush()
    store = RedisClusterStore.from_cluster_url(redis_cluster.url(seeds=1))
    await store.open()
    try:
        assert len(store.cluster.get_primaries()) == 3 and store.durable is False  # INF-4
        masters = redis_cluster.masters()
        for index, (master, ranges) in enumerate(masters):
            channel, session_id = name_in(ranges, "room:"), name_in(ranges, "session-")
            result = await store.append(channel, encode_payload(index, 100), None)
            await store.upsert_session(
                session(session_id, token_hash=f"h-{index}", expires_at=2**50)
            )
            await store.advance_cursor(session_id, channel, result.epoch, 1)
            with contextlib.closing(master.admin()) as admin:  # its keys live on its master
                keys = [*channel_keys(channel), *session_keys(session_id)]
                assert [admin.exists(key) for key in keys] == [1, 1, 1, 1]
            assert (await store.read(channel, 1, 10)).messages[0].data == index
    finally:
        await store.close()
        redis_cluster.flush()
