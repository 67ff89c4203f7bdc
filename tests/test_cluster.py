"""feast-lua on a real Redis Cluster (3 primaries + 3 replicas on loopback): answers equal to one
server's, one call per slot group, replica reads, and requests that survive a failover and a
live reshard. The behavioural suite (test_read, test_write, test_registry) runs on the cluster
too; this module checks what only a cluster has."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from clients import FLAVORS, make_client
from conftest import NOW, SEED_REFS, customer, driver, driver_trips, trip_row
from redis.crc import key_slot

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType
from feast_lua.cluster_server import LocalCluster
from feast_lua.keys import entity_key

pytestmark = pytest.mark.cluster
S = FieldStatus

customer_c = Entity("customer_id", ValueType.STRING, colocate=True)
account = Entity("account_id", ValueType.INT64)
customer_profile = FeatureTable("customer_profile", ["customer_id"], [Feature("tier", ValueType.STRING)],
                                max_age=timedelta(days=1))
account_stats = FeatureTable("account_stats", ["customer_id", "account_id"],
                             [Feature("balance", ValueType.DOUBLE), Feature("n", ValueType.INT64)])
customer_orders = FeatureTable("customer_orders", ["customer_id"], [Feature("orders", ValueType.INT64)])


def _seed(client) -> None:
    """The same data on any topology: 300 drivers (some stale, some null, some missing) and a
    table over (driver, customer) pairs of different slots."""
    client.apply([driver, customer, driver_trips, customer_orders])
    client.write_rows("driver_trips", [
        trip_row(d, rides=d / 2, max_rides=d, rating=None if d % 7 == 0 else d / 10,
                 ts=NOW - timedelta(days=2) if d % 11 == 0 else NOW)
        for d in range(300) if d % 5 != 0])
    client.write_rows("customer_orders", [{"customer_id": f"c{c}", "orders": c, "event_timestamp": NOW}
                                          for c in range(0, 300, 3)])


def _request(client):
    rows = [{"driver_id": d, "customer_id": f"c{d}"} for d in range(310)]
    refs = ["customer_orders:orders", *SEED_REFS]
    return client.get_online_features(refs, rows).to_dict(include_statuses=True,
                                                           include_event_timestamps=True)


@pytest.fixture
def fresh(cluster):
    """The shared cluster with an empty keyspace and script cache."""
    cluster.flushall()


def _driver_slot(driver_id: int) -> int:
    return key_slot(entity_key("default", {"driver_id": (ValueType.INT64, driver_id)}))


def _evalsha_ro_by_node(cluster: LocalCluster) -> Counter:
    counts: Counter = Counter()
    for port in cluster.alive_ports:
        stats = cluster.node_client(port).info("commandstats").get("cmdstat_evalsha_ro", {})
        counts[port] = stats.get("calls", 0) - stats.get("failed_calls", 0)
    return counts


def _reset_stats(cluster: LocalCluster) -> None:
    for port in cluster.alive_ports:
        cluster.node_client(port).config_resetstat()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_reads_across_many_slots_equal_one_servers(cluster, fresh, redis_server, flavor):
    with Client(redis_server.url) as one:
        raw_one = redis.Redis.from_url(redis_server.url)
        raw_one.flushall()
        _seed(one)
        expected = _request(one)
        raw_one.close()
    with make_client(flavor, "cluster", cluster.url) as many:
        _seed(many)
        got = _request(many)
    assert got == expected
    assert S.OUTSIDE_MAX_AGE in got["statuses"]["driver_trips:rating"]
    assert S.NULL_VALUE in got["statuses"]["driver_trips:rating"]
    assert S.NOT_FOUND in got["statuses"]["customer_orders:orders"]


def test_one_call_per_slot_group_not_per_key(cluster, fresh):
    """A customer's accounts, co-located, are one slot: 200 rows over two tables and two key
    groups are one EVALSHA_RO on one node, atomic over all of them."""
    with Client(cluster.url) as client:
        client.apply([customer_c, account, customer_profile, account_stats])
        client.write_rows("customer_profile",
                          [{"customer_id": "acme", "tier": "gold", "event_timestamp": NOW}])
        client.write_rows("account_stats", [
            {"customer_id": "acme", "account_id": a, "balance": a / 4, "n": a, "event_timestamp": NOW}
            for a in range(200)])
        rows = [{"customer_id": "acme", "account_id": a} for a in range(200)]
        refs = ["account_stats:balance", "customer_profile:tier", "account_stats:n"]
        client.get_online_features(refs, rows[:1])  # loads the script where needed
        _reset_stats(cluster)
        d = client.get_online_features(refs, rows).to_dict()
        assert d["account_stats:n"] == list(range(200)) and d["customer_profile:tier"] == ["gold"] * 200
        calls = _evalsha_ro_by_node(cluster)
        assert sum(calls.values()) == 1, calls

        # Rows spread over slots: one call per distinct slot, never one per key.
        client.apply([driver, driver_trips])
        drivers = [{"driver_id": d} for d in range(0, 2000, 50)]
        client.get_online_features(SEED_REFS, drivers)
        _reset_stats(cluster)
        client.get_online_features(SEED_REFS, drivers + drivers)
        slots = {_driver_slot(r["driver_id"]) for r in drivers}
        assert sum(_evalsha_ro_by_node(cluster).values()) == len(slots)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_replica_reads_run_on_replicas(cluster, fresh, flavor):
    with make_client(flavor, "cluster", cluster.url, replica_reads=True) as client:
        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(d) for d in range(100)])
        cluster.wait_replicated()
        client.get_online_features(SEED_REFS, [{"driver_id": 0}])
        _reset_stats(cluster)
        d = client.get_online_features(SEED_REFS, [{"driver_id": d} for d in range(100)]).to_dict()
        assert d["driver_trips:maximum_daily_rides"] == [9] * 100
    calls = _evalsha_ro_by_node(cluster)
    assert sum(calls[p] for p in cluster.replicas) > 0
    assert sum(calls[p] for p in cluster.primaries) == 0, calls


class Load:
    """Reads (and newest-wins writes) in a loop on another thread, counting what fails and
    checking every answer it gets."""

    def __init__(self, client, drivers: int = 60):
        self.client = client
        self.rows = [{"driver_id": d} for d in range(drivers)]
        self.ok = self.failed = self.wrong = 0
        self.errors: list[Exception] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            try:
                if step % 5 == 0:
                    self.client.write_rows("driver_trips", [trip_row(step % 60, ts=NOW - timedelta(days=3))])
                d = self.client.get_online_features(SEED_REFS, self.rows).to_dict()
                if d["driver_trips:maximum_daily_rides"] != [9] * len(self.rows):
                    self.wrong += 1
                self.ok += 1
            except Exception as e:  # counted, then judged by the test
                self.failed += 1
                self.errors.append(e)
                time.sleep(0.05)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def ok_after(self, seconds: float) -> int:
        start = self.ok
        time.sleep(seconds)
        return self.ok - start


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_failover_under_load_needs_no_manual_step(flavor):
    with LocalCluster() as cluster:
        client = make_client(flavor, "cluster", cluster.url, socket_timeout=1.0,
                             socket_connect_timeout=0.5)
        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(d) for d in range(60)])
        client.get_online_features(SEED_REFS, [{"driver_id": 0}])
        cluster.wait_replicated()
        victim = cluster.primary_for_slot(_driver_slot(0))
        for replica in cluster.replicas_of(victim):  # the new primary must load the script itself
            cluster.node_client(replica).script_flush()
        with Load(client) as load:
            assert load.ok_after(0.5) > 0
            cluster.kill(victim)
            cluster.wait_for_failover(victim)
            assert load.ok_after(2.0) > 0  # requests succeed again, with nothing done by hand
            failed_before = load.failed
            assert load.ok_after(1.0) > 0
            assert load.failed == failed_before
        assert load.wrong == 0
        assert all(isinstance(e, Exception) for e in load.errors)
        client.close()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_adding_a_node_and_moving_slots_under_load_loses_no_request(flavor):
    with LocalCluster() as cluster:
        client = make_client(flavor, "cluster", cluster.url)
        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(d) for d in range(60)])
        client.get_online_features(SEED_REFS, [{"driver_id": 0}])
        slots = sorted({_driver_slot(d) for d in range(60)})
        with Load(client) as load:
            assert load.ok_after(0.3) > 0
            new = cluster.add_node(as_primary=True)
            cluster.move_slots(slots[:30], new)
            assert load.ok_after(0.5) > 0
        assert load.failed == 0, load.errors[:3]
        assert load.wrong == 0
        assert any(cluster.primary_for_slot(s) == new for s in slots[:30])
        # The new node ran the scripts: loaded there at its first NOSCRIPT.
        assert _evalsha_ro_by_node(cluster)[new] > 0
        client.close()


def test_a_stream_worker_on_the_cluster_applies_every_event_and_dead_letters_poison(cluster, fresh):
    """The stream and the rows sit in different slots: rows are written newest-wins per slot,
    then the entries are acknowledged. A replay is skipped as not newer (docs/CLUSTER.md)."""
    import json

    from feast_lua import StreamWorker

    stream, dead = b"{events}", b"{events}:dead-letter"
    with Client(cluster.url) as client:
        client.apply([driver, driver_trips])
        raw = cluster.client()
        for d in range(50):
            row = {"driver_id": d, "average_daily_rides": 1.0, "maximum_daily_rides": d, "rating": 4.0,
                   "event_timestamp": (NOW - timedelta(seconds=d % 3)).isoformat()}
            raw.xadd(stream, {"table": "driver_trips", "row": json.dumps(row)})
        raw.xadd(stream, {"table": "driver_trips", "row": "not json"})
        worker = StreamWorker(client, stream, b"g", "w1", block_ms=0, batch=100)
        result = worker.step()
        assert (result.read, result.written, result.dead_lettered) == (51, 50, 1)
        d = client.get_online_features(SEED_REFS, [{"driver_id": i} for i in range(50)]).to_dict()
        assert d["driver_trips:maximum_daily_rides"] == list(range(50))
        assert raw.xpending(stream, b"g")["pending"] == 0
        assert raw.xlen(dead) == 1
        # Replaying the same events changes nothing and is reported as skipped.
        for _entry_id, fields in raw.xrange(stream, count=50):
            raw.xadd(stream, fields)
        again = worker.step()
        assert (again.written, again.skipped) == (0, 50)
        raw.close()


def test_ingest_on_the_cluster_splits_chunks_by_slot(cluster, fresh):
    pa = pytest.importorskip("pyarrow")
    with Client(cluster.url) as client:
        client.apply([driver, driver_trips])
        table = pa.table({"driver_id": list(range(500)), "average_daily_rides": [1.5] * 500,
                          "maximum_daily_rides": list(range(500)), "rating": [None] * 500,
                          "event_timestamp": pa.array([NOW] * 500, pa.timestamp("us", "UTC"))})
        result = client.ingest("driver_trips", table, chunk_rows=128, progress=False)
        assert (result.written, result.rejected) == (500, 0)
        d = client.get_online_features(SEED_REFS, [{"driver_id": i} for i in range(500)])
        assert d.to_dict()["driver_trips:maximum_daily_rides"] == list(range(500))
        assert set(d.statuses()["driver_trips:rating"]) == {S.NULL_VALUE}
