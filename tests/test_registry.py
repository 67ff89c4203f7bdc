"""The registry: versioned, cached with change detection, and safe to re-apply."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from conftest import NOW, SEED_REFS, driver, driver_trips, trip_row

from feast_lua import (
    Client,
    Entity,
    Feature,
    FeatureTable,
    FieldStatus,
    SchemaError,
    UnknownProjectError,
    ValueType,
)
from feast_lua.registry_store import registry_key

S = FieldStatus

EVERY_CLIENT = True  # each test runs on sync and asyncio clients, standalone and cluster


def test_apply_stores_a_versioned_document(client, raw):
    first = client.apply([driver, driver_trips])
    assert first.version == 1
    doc = json.loads(raw.hget(registry_key("default"), "doc"))
    assert doc["version"] == 1 and doc["format"] == 1
    assert doc["entities"] == {"driver_id": {"value_type": "INT64", "description": ""}}
    table = doc["tables"]["driver_trips"]
    assert table["max_age_us"] == 86_400_000_000 and table["slots"] == 3
    assert [(f["name"], f["slot"]) for f in table["features"]] == [
        ("average_daily_rides", 0), ("maximum_daily_rides", 1), ("rating", 2)]
    assert client.apply([driver_trips]).version == 2
    assert client.get_feature_table("driver_trips") == driver_trips


def test_projects_are_separate(client):
    client.apply([driver, driver_trips], project="other")
    client.write_rows("driver_trips", [trip_row(1)], project="other")
    with pytest.raises(UnknownProjectError, match="'default'"):
        client.get_online_features(SEED_REFS, [{"driver_id": 1}])
    d = client.get_online_features(SEED_REFS, [{"driver_id": 1}], project="other").to_dict()
    assert d["driver_trips:rating"] == [4.5]


def test_adding_a_feature_keeps_old_rows_readable(seeded):
    seeded.write_rows("driver_trips", [trip_row(1)])
    grown = FeatureTable("driver_trips", ["driver_id"], [
        *driver_trips.features, Feature("acceptance", ValueType.DOUBLE)], max_age=timedelta(days=1))
    seeded.apply([grown])
    seeded.write_rows("driver_trips", [{**trip_row(2), "acceptance": 0.9}])
    refs = [*SEED_REFS, "driver_trips:acceptance"]
    d = seeded.get_online_features(refs, [{"driver_id": 1}, {"driver_id": 2}]).to_dict(
        include_statuses=True)
    assert d["driver_trips:rating"] == [4.5, 4.5]
    assert d["driver_trips:acceptance"] == [None, 0.9]
    # Nothing was ever ingested for the new feature in driver 1's row.
    assert d["statuses"]["driver_trips:acceptance"] == [S.NOT_FOUND, S.PRESENT]


def test_a_stale_row_without_a_newer_feature_reads_not_found_for_it(seeded):
    seeded.write_rows("driver_trips", [trip_row(1, ts=NOW - timedelta(days=3))])
    grown = FeatureTable("driver_trips", ["driver_id"], [
        *driver_trips.features, Feature("acceptance", ValueType.DOUBLE)], max_age=timedelta(days=1))
    seeded.apply([grown])
    refs = ["driver_trips:rating", "driver_trips:acceptance", "driver_trips:average_daily_rides"]
    statuses = seeded.get_online_features(refs, [{"driver_id": 1}]).statuses()
    assert [s[0] for s in statuses.values()] == [S.OUTSIDE_MAX_AGE, S.NOT_FOUND, S.OUTSIDE_MAX_AGE]


def test_removing_and_retyping_features_never_misreads(seeded):
    seeded.write_rows("driver_trips", [trip_row(1, max_rides=9)])
    changed = FeatureTable("driver_trips", ["driver_id"], [
        Feature("rating", ValueType.FLOAT),
        Feature("maximum_daily_rides", ValueType.STRING)], max_age=timedelta(days=1))
    registry = seeded.apply([changed])
    table = registry.tables["driver_trips"]
    assert table.features["rating"].slot == 2
    assert table.features["maximum_daily_rides"].slot == 3  # a new slot for the new type
    assert table.slots == 4
    d = seeded.get_online_features(
        ["driver_trips:rating", "driver_trips:maximum_daily_rides"], [{"driver_id": 1}]
    ).to_dict(include_statuses=True)
    assert d["driver_trips:rating"] == [4.5]
    assert d["statuses"]["driver_trips:maximum_daily_rides"] == [S.NOT_FOUND]
    with pytest.raises(KeyError, match="average_daily_rides"):
        seeded.get_online_features(["driver_trips:average_daily_rides"], [{"driver_id": 1}])
    seeded.write_rows("driver_trips", [{"driver_id": 1, "rating": 1.0, "maximum_daily_rides": "x",
                                       "event_timestamp": NOW + timedelta(seconds=1)}])
    d = seeded.get_online_features(["driver_trips:maximum_daily_rides"], [{"driver_id": 1}]).to_dict()
    assert d["driver_trips:maximum_daily_rides"] == ["x"]


def test_changing_max_age_applies_to_stored_rows(seeded):
    seeded.write_rows("driver_trips", [trip_row(1, ts=NOW - timedelta(hours=5))])
    shorter = FeatureTable("driver_trips", ["driver_id"], driver_trips.features, max_age=timedelta(hours=1))
    seeded.apply([shorter])
    statuses = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": 1}]).statuses()
    assert statuses["driver_trips:rating"] == [S.OUTSIDE_MAX_AGE]


def test_changing_a_tables_entities_is_refused(seeded, raw):
    before = raw.hget(registry_key("default"), "doc")
    rekeyed = FeatureTable("driver_trips", ["customer_id"], driver_trips.features)
    with pytest.raises(SchemaError, match="orphan"):
        seeded.apply([Entity("customer_id", ValueType.STRING), rekeyed])
    assert raw.hget(registry_key("default"), "doc") == before


def test_changing_an_entity_type_in_use_is_refused(seeded):
    with pytest.raises(SchemaError, match="driver_id"):
        seeded.apply([Entity("driver_id", ValueType.STRING)])


def test_unknown_entity_in_table_is_refused(client):
    with pytest.raises(SchemaError, match="unknown entities"):
        client.apply([FeatureTable("t", ["nobody"], [Feature("x", ValueType.INT64)])])


@pytest.mark.parametrize("make", [
    lambda: Entity("bad name", ValueType.INT64),
    lambda: Entity("e", ValueType.FLOAT),
    lambda: Entity("event_timestamp", ValueType.INT64),
    lambda: Feature("x", "NOT_A_TYPE"),
    lambda: Feature("a:b", ValueType.INT64),
    lambda: FeatureTable("t", [], [Feature("x", ValueType.INT64)]),
    lambda: FeatureTable("t", ["e"], []),
    lambda: FeatureTable("t", ["e"], [Feature("x", ValueType.INT64)] * 2),
    lambda: FeatureTable("t", ["e"], [Feature("e", ValueType.INT64)]),
    lambda: FeatureTable("t", ["e"], [Feature("x", ValueType.INT64)], max_age=timedelta(-1)),
    lambda: FeatureTable("t", "e", [Feature("x", ValueType.INT64)]),
    lambda: FeatureTable("t", ["e"], [Feature("x", ValueType.INT64)], max_age=timedelta(days=365 * 300)),
])
def test_invalid_definitions(make):
    with pytest.raises(SchemaError):
        make()


def test_a_client_notices_a_newer_registry(seeded, connect):
    with connect(registry_ttl=0.0) as other:
        seeded.write_rows("driver_trips", [trip_row(1)])
        assert other.get_online_features(SEED_REFS, [{"driver_id": 1}]).to_dict()
        shorter = FeatureTable("driver_trips", ["driver_id"], driver_trips.features,
                               max_age=timedelta(microseconds=1))
        seeded.apply([shorter])
        statuses = other.get_online_features(["driver_trips:rating"], [{"driver_id": 1}]).statuses()
        assert statuses["driver_trips:rating"] == [S.OUTSIDE_MAX_AGE]


def test_a_table_applied_elsewhere_is_found_without_waiting(seeded, connect):
    with connect(registry_ttl=3600) as other:
        other.get_online_features(SEED_REFS, [{"driver_id": 1}])  # caches the registry
        seeded.apply([FeatureTable("late", ["driver_id"], [Feature("x", ValueType.INT64)])])
        seeded.write_rows("late", [{"driver_id": 1, "x": 5, "event_timestamp": NOW}])
        assert other.get_online_features(["late:x"], [{"driver_id": 1}]).to_dict()["late:x"] == [5]


@pytest.mark.sync_only
def test_concurrent_applies_all_land(client, server_url):
    client.apply([driver])
    errors = []

    def apply_table(i: int) -> None:
        try:
            with Client(server_url) as c:
                c.apply([FeatureTable(f"t{i}", ["driver_id"], [Feature("x", ValueType.INT64)])])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=apply_table, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tables = {t.name for t in client.list_feature_tables()}
    assert tables == {f"t{i}" for i in range(8)}
    assert client.registry.get("default", refresh=True).version == 9


@pytest.mark.sync_only
def test_registry_put_refuses_a_stale_version_and_bad_documents(seeded, raw):
    with pytest.raises(Exception, match="CONFLICT 1"):
        seeded.loader.call("registry_put", [registry_key("default")],
                           [0, json.dumps({"format": 1, "version": 1, "project": "default",
                                           "entities": {}, "tables": {}})])
    with pytest.raises(Exception, match="BADREQUEST"):
        seeded.loader.call("registry_put", [registry_key("default")], [1, "not json"])
    assert int(raw.hget(registry_key("default"), "version")) == 1
