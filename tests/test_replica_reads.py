"""Reads served by a replica: the read script is flagged no-writes and sent as EVALSHA_RO, which a
read-only replica accepts; writes still go to the primary."""

from __future__ import annotations

import time

import pytest
import redis
from clients import AsyncDriver
from conftest import SEED_REFS, driver, driver_trips, trip_row

from feast_lua import Client, FieldStatus
from feast_lua.server import RedisServer


def _wait_synced(replica: redis.Redis, primary: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = replica.info("replication")
        if info.get("master_link_status") == "up" and \
                info.get("master_repl_offset") == primary.info("replication")["master_repl_offset"]:
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


def _evalsha_ro_calls(node: redis.Redis) -> int:
    return node.info("commandstats").get("cmdstat_evalsha_ro", {}).get("calls", 0)


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_reads_are_served_by_the_replica(redis_server, flavor):
    primary = redis.Redis.from_url(redis_server.url)
    primary.flushall()
    with RedisServer(extra_args=["--replicaof", "127.0.0.1", str(redis_server.port)]) as replica_server:
        replica = redis.Redis.from_url(replica_server.url)
        make = Client if flavor == "sync" else AsyncDriver
        with make(redis_server.url, replica=replica_server.url) as client:
            client.apply([driver, driver_trips])
            client.write_rows("driver_trips", [trip_row(1001), trip_row(1002, rating=None)])
            _wait_synced(replica, primary)
            primary.config_resetstat()
            replica.config_resetstat()
            got = client.get_online_features(SEED_REFS, [{"driver_id": 1001}, {"driver_id": 1002},
                                                         {"driver_id": 7}])
            statuses = got.statuses()["driver_trips:rating"]
            assert statuses == [FieldStatus.PRESENT, FieldStatus.NULL_VALUE, FieldStatus.NOT_FOUND]
            assert got.to_dict()["driver_trips:maximum_daily_rides"] == [9, 9, None]
            # The replica ran the read script: NOSCRIPT first (SCRIPT LOAD is not replicated),
            # then the script once loaded; the primary saw none of it.
            stats = replica.info("commandstats")["cmdstat_evalsha_ro"]
            assert stats["calls"] - stats.get("failed_calls", 0) == 1
            assert _evalsha_ro_calls(primary) == 0
            assert replica.info("replication")["role"] == "slave"
        replica.close()
    primary.close()
