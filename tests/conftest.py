"""Real redis-server processes on free loopback ports, started from docker/redis.conf."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis
from clients import FLAVORS, TOPOLOGIES, make_client

from feast_lua import Client, Entity, Feature, FeatureTable, ValueType
from feast_lua.cluster_server import LocalCluster
from feast_lua.sentinel_server import LocalSentinel
from feast_lua.server import RedisServer


def pytest_generate_tests(metafunc):
    """Runs each test of a module with EVERY_CLIENT = True once per client variant: sync and
    asyncio, on one server and on a cluster. `standalone_only` and `sync_only` narrow it."""
    if not getattr(metafunc.module, "EVERY_CLIENT", False):
        return
    if not {"client", "seeded", "connect", "feast_client"} & set(metafunc.fixturenames):
        return
    marks = {m.name for m in metafunc.definition.iter_markers()}
    params = []
    for topology in TOPOLOGIES:
        if topology == "cluster" and "standalone_only" in marks:
            continue
        for flavor in FLAVORS:
            if flavor == "async" and "sync_only" in marks:
                continue
            params.append(pytest.param((topology, flavor), id=f"{topology}-{flavor}",
                                       marks=[pytest.mark.cluster] if topology == "cluster" else []))
    metafunc.parametrize("variant", params, indirect=True)


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
def variant(request) -> tuple[str, str]:
    """(topology, flavor) of the test's clients; one server and sync unless parametrized."""
    return getattr(request, "param", ("standalone", "sync"))


@pytest.fixture
def server_url(request, variant) -> str:
    if variant[0] == "cluster":
        return request.getfixturevalue("cluster").url
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def raw(request, variant, server_url):
    """A plain redis-py client of the test's topology, on an empty keyspace and script cache."""
    if variant[0] == "cluster":
        client = request.getfixturevalue("cluster").client()
        for node in client.get_nodes():
            connection = client.get_redis_connection(node)
            if node in client.get_primaries():
                connection.flushall()
            connection.script_flush()
    else:
        client = redis.Redis.from_url(server_url)
        client.flushall()
        client.script_flush()
    yield client
    client.close()


def dbsize(raw) -> int:
    """Keys in the whole keyspace: on a cluster, the sum over the primaries."""
    if hasattr(raw, "get_primaries"):
        return sum(raw.get_redis_connection(n).dbsize() for n in raw.get_primaries())
    return raw.dbsize()


@pytest.fixture
def connect(variant, server_url, raw):
    """Makes more clients of the test's variant, e.g. a second client with its own cache."""
    made = []

    def make(**kwargs):
        made.append(make_client(variant[1], variant[0], server_url, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(connect) -> Client:
    return connect()


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
