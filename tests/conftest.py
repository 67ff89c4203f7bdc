"""Real redis-server processes on free loopback ports, started from docker/redis.conf."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis

from feast_lua import Client, Entity, Feature, FeatureTable, ValueType
from feast_lua.cluster_server import LocalCluster
from feast_lua.sentinel_server import LocalSentinel
from feast_lua.server import RedisServer


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


# Scale-out topologies. Fixtures are only set up when a test asks for them, so a run that selects
# none of these tests starts no cluster. `cluster` and `sentinel` are shared by the session: a
# test must leave them healthy (no kill, failover or reshard). A test that damages a topology
# takes `fresh_cluster` / `fresh_sentinel`, its own instance, stopped after it.
TOPOLOGY_MARKS = {"cluster": "cluster", "fresh_cluster": "cluster",
                  "sentinel": "sentinel", "fresh_sentinel": "sentinel"}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & TOPOLOGY_MARKS.keys():
            item.add_marker(TOPOLOGY_MARKS[fixture])


@pytest.fixture(scope="session")
def cluster():
    with LocalCluster() as c:
        yield c


@pytest.fixture
def fresh_cluster():
    with LocalCluster() as c:
        yield c


@pytest.fixture(scope="session")
def sentinel():
    with LocalSentinel() as s:
        yield s


@pytest.fixture
def fresh_sentinel():
    with LocalSentinel() as s:
        yield s


@pytest.fixture
def raw(redis_server) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.script_flush()
    yield client
    client.close()


@pytest.fixture
def client(raw, redis_server) -> Client:
    with Client(redis_server.url) as c:
        yield c


NOW = datetime.now(timezone.utc)

driver = Entity(name="driver_id", value_type=ValueType.INT64)
customer = Entity(name="customer_id", value_type=ValueType.STRING)
driver_trips = FeatureTable(
    name="driver_trips",
    entities=["driver_id"],
    max_age=timedelta(days=1),
    features=[
        Feature("average_daily_rides", ValueType.FLOAT),
        Feature("maximum_daily_rides", ValueType.INT64),
        Feature("rating", ValueType.FLOAT),
    ],
)
SEED_REFS = [
    "driver_trips:average_daily_rides",
    "driver_trips:maximum_daily_rides",
    "driver_trips:rating",
]


def trip_row(driver_id: int, rides: float = 3.5, max_rides: int = 9, rating=4.5, ts=None, **extra):
    return {"driver_id": driver_id, "average_daily_rides": rides, "maximum_daily_rides": max_rides,
            "rating": rating, "event_timestamp": ts or NOW, **extra}


@pytest.fixture
def seeded(client) -> Client:
    client.apply([driver, driver_trips])
    return client
