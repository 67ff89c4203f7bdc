"""Consistency under load: no torn reads, and newest-wins whatever order the writes come in.

The torn-read test is the short form of stress/torn_reads.py (docs/RELIABILITY.md): writer and
reader processes against one real redis-server, feast-lua's read against Feast's pipeline of
HMGETs over the same data. The pipeline must tear, which shows the checker can see a tear.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis
from helpers_load import REFS, run_load, setup
from helpers_redis import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType
from feast_lua.keys import entity_key
from feast_lua.rows import unpack_row
from feast_lua.server import RedisServer
from feast_lua.write import NO_CREATED_TIMESTAMP

LOAD_ENTITIES = 40
LOAD_SECONDS = 3.0


@pytest.fixture(scope="module")
def load_url():
    with RedisServer() as server:
        yield server.url


def fresh(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    setup(url, LOAD_ENTITIES)


def test_no_torn_reads_through_feast_lua(load_url):
    fresh(load_url)
    # One reader sends each request as several calls (10 entity rows each): atomicity is per
    # call, and a call holds whole entity rows, so no entity may tear either way.
    counts = run_load(load_url, "feast_lua", LOAD_SECONDS, max_cells_per_call=10 * len(REFS))
    assert counts.errors == []
    assert counts.reads >= 200 and counts.writes >= 200, counts  # the load really ran
    assert counts.torn_responses == 0 and counts.torn_entities == 0, counts.examples
    assert counts.regressions == 0
    with Client(load_url) as client:  # the writers moved every entity past version 0
        rows = [{"driver_id": i} for i in range(LOAD_ENTITIES)]
        assert min(client.get_online_features(["trips:a"], rows).to_dict()["trips:a"]) > 0


def test_feast_style_pipeline_reads_tear_under_the_same_load(load_url):
    fresh(load_url)
    counts = run_load(load_url, "pipeline", 15.0, stop_after_torn=3)
    assert counts.errors == []
    assert counts.torn_responses >= 1, counts
    assert counts.torn_entities >= counts.torn_responses


# --- Out-of-order writes ------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
OOO_ENTITIES = 3
OOO_TABLES = {
    "left": FeatureTable("left", ["id"], [Feature("v", ValueType.INT64)]),
    "right": FeatureTable("right", ["id"], [Feature("w", ValueType.INT64), Feature("s", ValueType.STRING)]),
}
OOO_REFS = ["left:v", "right:w", "right:s"]

# A write: (entity, table, event second, created second or None, value). Small ranges, so equal
# event timestamps, equal created timestamps and exact duplicates all come up often.
writes = st.tuples(
    st.integers(0, OOO_ENTITIES - 1),
    st.sampled_from(sorted(OOO_TABLES)),
    st.integers(0, 3),
    st.one_of(st.none(), st.integers(0, 2)),
    st.integers(0, 5),
)


@pytest.fixture
def ooo_client(raw, redis_server):
    with Client(redis_server.url) as client:
        client.apply([Entity("id", ValueType.INT64), *OOO_TABLES.values()])
        yield client


def as_row(write):
    entity, table, event, created, value = write
    row = {"id": entity, "event_timestamp": T0 + timedelta(seconds=event)}
    if created is not None:
        row["created_timestamp"] = T0 + timedelta(seconds=created)
    if table == "left":
        row["v"] = value
    else:
        row.update(w=value, s=f"s{value}")
    return row


def newest(arrivals):
    """The expected stored write per (entity, table): the greatest (event, created) with a
    missing created timestamp lowest; among exact ties, the one that arrived first."""
    best = {}
    for write in arrivals:
        entity, table, event, created, _ = write
        rank = (event, -1 if created is None else created)
        key = (entity, table)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, write)
    return {key: write for key, (_, write) in best.items()}


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(writes, min_size=1, max_size=25), data=st.data())
def test_stored_state_is_the_newest_write_whatever_the_order(ooo_client, raw, writes, data):
    keys = [entity_key("default", {"id": (ValueType.INT64, i)}) for i in range(OOO_ENTITIES)]
    raw.delete(*keys)
    # Duplicates (replays) and a random interleaving of everything.
    replays = data.draw(st.lists(st.sampled_from(writes), max_size=10), label="replays")
    arrivals = data.draw(st.permutations(writes + replays), label="arrivals")
    ooo_client.max_rows_per_write = data.draw(st.integers(1, 4), label="max_rows_per_write")
    # Consecutive writes to one table go in one write_rows call, itself split into calls.
    i = 0
    while i < len(arrivals):
        batch = data.draw(st.integers(1, 6), label="batch")
        table = arrivals[i][1]
        group = []
        while i < len(arrivals) and len(group) < batch and arrivals[i][1] == table:
            group.append(arrivals[i])
            i += 1
        ooo_client.write_rows(table, [as_row(w) for w in group])

    expected = newest(arrivals)
    response = ooo_client.get_online_features(OOO_REFS, [{"id": e} for e in range(OOO_ENTITIES)])
    got = response.to_dict(include_statuses=True, include_event_timestamps=True)
    for entity in range(OOO_ENTITIES):
        for ref in OOO_REFS:
            table = ref.split(":")[0]
            write = expected.get((entity, table))
            status = got["statuses"][ref][entity]
            if write is None:
                assert status is FieldStatus.NOT_FOUND
                continue
            _, _, event, created, value = write
            assert status is FieldStatus.PRESENT
            assert got[ref][entity] == (f"s{value}" if ref == "right:s" else value)
            assert got["event_timestamps"][ref][entity] == T0 + timedelta(seconds=event)
            stored = unpack_row(raw.hget(keys[entity], table))
            assert stored.created_us == (
                NO_CREATED_TIMESTAMP if created is None
                else int((T0 + timedelta(seconds=created)).timestamp()) * 1_000_000
            )
