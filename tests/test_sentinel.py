"""feast-lua under Sentinel: one primary, one replica, three sentinels on loopback. A failover
during a read and write load needs nothing done by hand, and replica reads work."""

from __future__ import annotations

import pytest
from clients import FLAVORS, AsyncDriver
from conftest import SEED_REFS, driver, driver_trips, trip_row
from test_cluster import Load

import feast_lua.asyncio
from feast_lua import Client
from feast_lua.sentinel_server import LocalSentinel

pytestmark = pytest.mark.sentinel


def _client(flavor: str, sentinel: LocalSentinel, **kwargs):
    options = {"socket_timeout": 1.0, "socket_connect_timeout": 0.5, **kwargs}
    if flavor == "sync":
        return Client.from_sentinel(sentinel.sentinels, sentinel.service_name, **options)
    return AsyncDriver(sentinel.sentinels, sentinel.service_name,
                       factory=feast_lua.asyncio.Client.from_sentinel, **options)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_sentinel_failover_under_load_needs_no_manual_step(flavor):
    with LocalSentinel() as sentinel:
        client = _client(flavor, sentinel)
        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(d) for d in range(60)])
        client.get_online_features(SEED_REFS, [{"driver_id": 0}])
        sentinel.wait_replicated()
        with Load(client) as load:
            assert load.ok_after(0.5) > 0
            old = sentinel.kill_primary()
            new = sentinel.wait_for_new_primary(old)
            assert new != old
            assert load.ok_after(2.0) > 0  # requests succeed again on the new primary
            failed_before = load.failed
            assert load.ok_after(1.0) > 0
            assert load.failed == failed_before
        assert load.wrong == 0
        client.close()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_sentinel_replica_reads(flavor):
    with LocalSentinel() as sentinel:
        client = _client(flavor, sentinel, replica_reads=True)
        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(d) for d in range(10)])
        sentinel.wait_replicated()
        replica = sentinel.replica_ports[0]
        from feast_lua.server_checks import ask
        ask(replica, "CONFIG", "RESETSTAT")
        d = client.get_online_features(SEED_REFS, [{"driver_id": d} for d in range(12)]).to_dict()
        assert d["driver_trips:maximum_daily_rides"] == [9] * 10 + [None, None]
        stats = ask(replica, "INFO", "commandstats")["cmdstat_evalsha_ro"]
        assert stats["calls"] - stats.get("failed_calls", 0) == 1
        client.close()
