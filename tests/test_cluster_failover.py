"""A master of a real Redis Cluster SIGKILLed while three reference nodes publish to one
channel on each shard: its replica takes over, the nodes follow by themselves, and nothing
acknowledged is lost in an epoch that is still current.

A cluster store is not ``durable`` (see ``reference.store.redis_cluster``): a channel of the
killed master's shard gets a new epoch after the failover (EPO-3, DUR-3), and its acknowledged
messages of the old epoch go with it, which a client sees as ``epoch_changed`` (SIG-3). The
channels of the other shards keep their epoch and every acknowledged message (DUR-3, EPO-2).
The test prints what it measured: acknowledged publishes, lost ones, epoch changes and the
time from the kill to the first publish acknowledged on the killed shard again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import Client, Served
from redis_cluster import name_in, running_cluster
from test_cluster import processes, remote
from test_durability import Publisher, history, http_session

pytestmark = pytest.mark.slow

BEFORE = 40  # acknowledged publishes per channel before the kill, and again after recovery


def epochs_in_order(acked: list[tuple[int, str, int]]) -> list[str]:
    return [epoch for i, (_, epoch, _) in enumerate(acked) if i == 0 or acked[i - 1][1] != epoch]


async def test_a_sigkilled_master_under_load(tmp_path: Path) -> None:
    with (
        running_cluster(tmp_path / "cluster") as cluster,
        processes(cluster.url(), tmp_path) as urls,
    ):
        masters = cluster.masters()
        channels = [name_in(ranges, "load:") for _, ranges in masters]  # one on each shard
        victim = masters[0][0]
        async with http_session() as http:
            publishers = [Publisher(http, urls[i], channel) for i, channel in enumerate(channels)]
            running = [asyncio.create_task(p.run(until_error=False)) for p in publishers]
            await asyncio.gather(*(p.wait_for(BEFORE) for p in publishers))
            watcher = await remote(urls[2], http).client()
            reply = await watcher.call(
                "replay:subscribe", {"channel": channels[0], "from": "latest"}
            )
            assert reply["ok"], reply

            killed = time.monotonic()
            victim.kill()  # SIGKILL, publishes in flight
            first_epoch = publishers[0].acked[-1][1]
            async with asyncio.timeout(30):
                while publishers[0].acked[-1][1] == first_epoch:
                    publishers[0].progress.clear()
                    await publishers[0].progress.wait()
            recovered_s = time.monotonic() - killed
            await asyncio.gather(*(p.wait_for(len(p.acked) + BEFORE) for p in publishers))
            for publisher in publishers:
                publisher.stopping = True
            await asyncio.gather(*running)

            # SIG-3 on another node than the publisher's: the bus followed the new topology
            await watcher.wait_until(lambda: bool(ended(watcher)), timeout=10)
            assert ended(watcher) == ["epoch_changed"]
            await resubscribed_gets_new_messages(watcher, remote(urls[0], http), channels[0])

            figures = []
            for publisher in publishers:
                after = await history(http, urls[1], publisher.channel)
                stored = {m["offset"]: m["data"] for m in after["messages"]}
                current = [(o, n) for o, epoch, n in publisher.acked if epoch == after["epoch"]]
                lost = [(o, n) for o, n in current if stored.get(o) != n]
                gone = len(publisher.acked) - len(current)  # with an epoch the failover ended
                epochs = epochs_in_order(publisher.acked)
                assert epochs[-1] == after["epoch"] and not lost, (publisher.channel, lost)
                assert publisher.statuses <= {201, 503}, publisher.statuses  # never internal
                figures.append((publisher.channel, len(publisher.acked), gone, len(epochs) - 1))
            await watcher.close()
    print(f"\nfailover: first publish acknowledged on the killed shard {recovered_s:.2f} s "
          "after the SIGKILL")  # fmt: skip
    for channel, acked, gone, changes in figures:
        print(f"  {channel}: {acked} acknowledged, 0 lost in the current epoch, "
              f"{gone} in an ended epoch, {changes} epoch change(s)")  # fmt: skip
    assert figures[0][3] >= 1  # the killed shard's channel: a new epoch (EPO-3)
    assert all(changes == 0 and gone == 0 for _, _, gone, changes in figures[1:])


def ended(client: Client) -> list[str]:
    return [data["reason"] for name, data in client.events if name == "replay:unsubscribed"]


async def resubscribed_gets_new_messages(
    client: Client, publisher_node: Served, channel: str
) -> None:
    """After ``epoch_changed`` a fresh subscription on the same node gets live messages."""
    reply = await client.call("replay:subscribe", {"channel": channel, "from": "latest"})
    assert reply["ok"], reply
    sent = await publisher_node.publish(channel, "live")
    await client.wait_for_offset(channel, sent["offset"], timeout=10)
