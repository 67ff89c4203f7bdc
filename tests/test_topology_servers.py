"""The local Redis Cluster and Sentinel launchers work: what the scale-out tests stand on.

Each test that kills, fails over or reshards takes its own fresh_* instance, so the shared
session `cluster` and `sentinel` stay healthy for every test after it.
"""

from __future__ import annotations

import threading

import pytest
from redis.cluster import RedisCluster

from feast_lua.cluster_server import SLOTS, LocalCluster
from feast_lua.sentinel_server import LocalSentinel

KEYS = [f"topology:{i}" for i in range(300)]


def write_keys(client: RedisCluster) -> None:
    for i, key in enumerate(KEYS):
        client.set(key, i)


def assert_keys(client: RedisCluster) -> None:
    assert [int(client.get(key)) for key in KEYS] == list(range(len(KEYS)))


@pytest.mark.cluster
def test_cluster_has_three_synced_primaries_and_answers_across_slots(cluster: LocalCluster):
    cluster.flushall()
    nodes = cluster.nodes
    assert sorted(n.role for n in nodes) == ["primary"] * 3 + ["replica"] * 3
    assert sum(end - start + 1 for n in nodes for start, end in n.slots) == SLOTS
    assert all(len(cluster.replicas_of(port)) == 1 for port in cluster.primaries)

    client = RedisCluster.from_url(cluster.url)
    write_keys(client)
    assert_keys(client)
    owners = {cluster.primary_for_slot(client.keyslot(key)) for key in KEYS}
    assert owners == set(cluster.primaries)
    for key in KEYS[:20]:
        assert client.get_node_from_key(key).port == cluster.primary_for_slot(client.keyslot(key))
    cluster.wait_replicated()
    client.close()


@pytest.mark.cluster
def test_killing_a_primary_promotes_its_replica_and_the_same_client_recovers(fresh_cluster: LocalCluster):
    client = fresh_cluster.client()
    write_keys(client)
    fresh_cluster.wait_replicated()
    victim = fresh_cluster.primary_for_slot(client.keyslot(KEYS[0]))
    [replica] = fresh_cluster.replicas_of(victim)

    fresh_cluster.kill(victim)
    assert fresh_cluster.wait_for_failover(victim) == replica
    assert fresh_cluster.primary_for_slot(client.keyslot(KEYS[0])) == replica
    assert_keys(client)  # redis-py rediscovers the slots after its connection error
    client.set(KEYS[0], 0)

    fresh_cluster.revive(victim)  # the old primary comes back as a replica of the new one
    assert fresh_cluster.replicas_of(replica) == [victim]
    client.close()


@pytest.mark.cluster
def test_added_node_takes_slots_under_load_and_no_read_fails(fresh_cluster: LocalCluster):
    client = fresh_cluster.client()
    write_keys(client)
    new = fresh_cluster.add_node(as_primary=True)
    replica = fresh_cluster.add_node(as_primary=False, primary_port=new)
    # The first slot moves without load: redis-py 8.2 cannot follow an ASK to a node that owns no
    # slot yet (it is not in CLUSTER SLOTS, so not in the client's cache; redis/redis-py#4015).
    first = client.keyslot(KEYS[0])
    fresh_cluster.move_slots([first], new)

    failures: list[BaseException] = []
    reads = 0
    done = threading.Event()

    def load() -> None:
        nonlocal reads
        reader = fresh_cluster.client()
        while not done.is_set():
            for i, key in enumerate(KEYS):
                try:
                    assert int(reader.get(key)) == i
                    reads += 1
                except BaseException as e:  # noqa: BLE001 - every failure counts, and is reported
                    failures.append(e)
        reader.close()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        moved = sorted({client.keyslot(key) for key in KEYS[:30]} - {first})
        fresh_cluster.move_slots(moved, new)
        donor = next(p for p in fresh_cluster.primaries if p != new)
        fresh_cluster.reshard(donor, new, 10)
    finally:
        done.set()
        thread.join()

    assert failures == [] and reads > 0
    assert all(fresh_cluster.primary_for_slot(slot) == new for slot in [first, *moved])
    assert fresh_cluster.replicas_of(new) == [replica]
    owned = sum(end - start + 1 for n in fresh_cluster.nodes if n.port == new for start, end in n.slots)
    assert owned == 1 + len(moved) + 10
    assert_keys(client)
    assert fresh_cluster.node_client(new).dbsize() >= 30
    client.close()


@pytest.mark.sentinel
def test_sentinel_serves_primary_and_replica(sentinel: LocalSentinel):
    sentinels = sentinel.sentinel_client()
    primary = sentinels.master_for(sentinel.service_name)
    assert sentinels.discover_master(sentinel.service_name) == ("127.0.0.1", sentinel.primary_port)
    primary.set("topology:sentinel", "yes")
    sentinel.wait_replicated()
    assert sentinels.slave_for(sentinel.service_name).get("topology:sentinel") == b"yes"
    assert len(sentinel.sentinels) == 3 and len(sentinel.replica_ports) == 1


@pytest.mark.sentinel
def test_sentinel_failover_moves_the_primary(fresh_sentinel: LocalSentinel):
    old = fresh_sentinel.primary_port
    new = fresh_sentinel.failover()
    assert new != old and new == fresh_sentinel.primary_port
    primary = fresh_sentinel.sentinel_client().master_for(fresh_sentinel.service_name)
    primary.set("after", "failover")
    assert primary.connection_pool.get_master_address() == ("127.0.0.1", new)


@pytest.mark.sentinel
def test_killed_primary_is_replaced_and_rejoins_as_replica(fresh_sentinel: LocalSentinel):
    primary = fresh_sentinel.sentinel_client().master_for(fresh_sentinel.service_name)
    primary.set("before", "kill")
    fresh_sentinel.wait_replicated()

    old = fresh_sentinel.kill_primary()
    new = fresh_sentinel.wait_for_new_primary(old)
    assert new != old
    assert primary.get("before") == b"kill"  # the same client follows the sentinels
    primary.set("after", "kill")

    fresh_sentinel.revive(old)
    assert fresh_sentinel.wait_healthy() == new
    assert fresh_sentinel.replica_ports == [old]
