"""The read path against real data in a real Redis: every status, shapes and options."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest
from conftest import NOW, SEED_REFS, customer, driver, driver_trips, trip_row

from feast_lua import (
    Entity,
    Feature,
    FeatureTable,
    FieldStatus,
    GetOnlineFeaturesResponse,
    ValueType,
)

S = FieldStatus

EVERY_CLIENT = True  # each test runs on sync and asyncio clients, standalone and cluster


def test_seed_example_statuses(seeded):
    seeded.write_rows("driver_trips", [
        trip_row(1001, rating=4.8),
        trip_row(1002, rating=None),                            # stored null
        trip_row(1003, ts=NOW - timedelta(days=3)),             # stale
        trip_row(1005, rating=None, ts=NOW - timedelta(days=3)),  # stale null
    ])
    rows = [{"driver_id": d} for d in (1001, 1002, 1003, 1004, 1005)]
    response = seeded.get_online_features(feature_refs=SEED_REFS, entity_rows=rows)
    d = response.to_dict(include_statuses=True)
    assert list(d) == ["driver_id", *SEED_REFS, "statuses"]
    assert d["driver_id"] == [1001, 1002, 1003, 1004, 1005]
    assert d["driver_trips:average_daily_rides"] == [3.5, 3.5, None, None, None]
    assert d["driver_trips:maximum_daily_rides"] == [9, 9, None, None, None]
    assert d["driver_trips:rating"][0] == pytest.approx(4.8, rel=1e-6)
    assert d["driver_trips:rating"][1:] == [None, None, None, None]
    assert d["statuses"]["driver_trips:rating"] == [
        S.PRESENT, S.NULL_VALUE, S.OUTSIDE_MAX_AGE, S.NOT_FOUND, S.OUTSIDE_MAX_AGE]
    assert d["statuses"]["driver_trips:maximum_daily_rides"] == [
        S.PRESENT, S.PRESENT, S.OUTSIDE_MAX_AGE, S.NOT_FOUND, S.OUTSIDE_MAX_AGE]
    assert response.statuses() == d["statuses"]
    assert GetOnlineFeaturesResponse.FieldStatus is FieldStatus
    assert FieldStatus.UNKNOWN is FieldStatus.INVALID and FieldStatus.INVALID == 0


def test_plain_to_dict_has_only_entities_and_refs(seeded):
    seeded.write_rows("driver_trips", [trip_row(1001)])
    d = seeded.get_online_features(SEED_REFS, [{"driver_id": 1001}]).to_dict()
    assert d == {"driver_id": [1001], "driver_trips:average_daily_rides": [3.5],
                 "driver_trips:maximum_daily_rides": [9], "driver_trips:rating": [4.5]}


def test_float_is_float32_and_double_is_float64(client):
    client.apply([driver, FeatureTable("precise", ["driver_id"], [
        Feature("f", ValueType.FLOAT), Feature("d", ValueType.DOUBLE)])])
    client.write_rows("precise", [{"driver_id": 1, "f": 0.1, "d": 0.1, "event_timestamp": NOW}])
    d = client.get_online_features(["precise:f", "precise:d"], [{"driver_id": 1}]).to_dict()
    assert d["precise:f"] == [struct.unpack(">f", struct.pack(">f", 0.1))[0]]
    assert d["precise:d"] == [0.1]


def test_event_timestamps(seeded):
    old = NOW - timedelta(days=3)
    seeded.write_rows("driver_trips", [trip_row(1, rating=None), trip_row(2, ts=old)])
    response = seeded.get_online_features(SEED_REFS, [{"driver_id": i} for i in (1, 2, 3)])
    stamps = response.to_dict(include_event_timestamps=True)["event_timestamps"]
    # Stored timestamps whenever a row exists, null or stale included; None for NOT_FOUND.
    assert stamps["driver_trips:rating"] == [NOW, old, None]
    assert stamps["driver_trips:average_daily_rides"] == [NOW, old, None]


def test_per_request_max_age_override(seeded):
    seeded.write_rows("driver_trips", [
        trip_row(1, ts=NOW - timedelta(hours=2)), trip_row(2, ts=NOW - timedelta(days=3))])
    rows = [{"driver_id": 1}, {"driver_id": 2}]
    statuses = seeded.get_online_features(["driver_trips:rating"], rows).statuses()
    assert statuses["driver_trips:rating"] == [S.PRESENT, S.OUTSIDE_MAX_AGE]
    tighter = seeded.get_online_features(
        ["driver_trips:rating"], rows, max_age={"driver_trips": timedelta(hours=1)})
    assert tighter.statuses()["driver_trips:rating"] == [S.OUTSIDE_MAX_AGE, S.OUTSIDE_MAX_AGE]
    unlimited = seeded.get_online_features(
        ["driver_trips:rating"], rows, max_age={"driver_trips": timedelta(0)})
    assert unlimited.statuses()["driver_trips:rating"] == [S.PRESENT, S.PRESENT]
    assert unlimited.to_dict()["driver_trips:rating"] == [4.5, 4.5]


def test_max_age_zero_means_no_limit(client):
    forever = FeatureTable("forever", ["driver_id"], [Feature("x", ValueType.INT64)])
    client.apply([driver, forever])
    client.write_rows("forever", [{"driver_id": 1, "x": 7, "event_timestamp": NOW - timedelta(days=9000)}])
    d = client.get_online_features(["forever:x"], [{"driver_id": 1}]).to_dict(include_statuses=True)
    assert d["forever:x"] == [7] and d["statuses"]["forever:x"] == [S.PRESENT]


def test_multi_table_with_different_entity_sets_and_composite_keys(client):
    pair = FeatureTable("driver_customer", ["driver_id", "customer_id"], [
        Feature("trips_together", ValueType.INT64), Feature("last_tip", ValueType.DOUBLE)],
        max_age=timedelta(days=7))
    prefs = FeatureTable("customer_prefs", ["customer_id"], [Feature("likes_jazz", ValueType.BOOL)])
    client.apply([driver, customer, driver_trips, pair, prefs])
    client.write_rows("driver_trips", [trip_row(1), trip_row(2, rating=3.0)])
    client.write_rows("driver_customer", [
        {"customer_id": "c1", "driver_id": 1, "trips_together": 4, "last_tip": 2.5, "event_timestamp": NOW},
        {"customer_id": "c2", "driver_id": 1, "trips_together": 1, "last_tip": None, "event_timestamp": NOW},
    ])
    client.write_rows("customer_prefs", [{"customer_id": "c2", "likes_jazz": True, "event_timestamp": NOW}])
    rows = [{"driver_id": 1, "customer_id": "c1"}, {"driver_id": 1, "customer_id": "c2"},
            {"driver_id": 2, "customer_id": "c1"}]
    refs = ["driver_customer:trips_together", "driver_trips:rating", "customer_prefs:likes_jazz",
            "driver_customer:last_tip"]
    d = client.get_online_features(refs, rows).to_dict(include_statuses=True)
    assert list(d)[:2] == ["driver_id", "customer_id"]
    assert d["driver_customer:trips_together"] == [4, 1, None]
    assert d["driver_trips:rating"] == [4.5, 4.5, 3.0]
    assert d["customer_prefs:likes_jazz"] == [None, True, None]
    assert d["driver_customer:last_tip"] == [2.5, None, None]
    assert d["statuses"]["driver_customer:last_tip"] == [S.PRESENT, S.NULL_VALUE, S.NOT_FOUND]
    assert d["statuses"]["customer_prefs:likes_jazz"] == [S.NOT_FOUND, S.PRESENT, S.NOT_FOUND]


def test_tables_over_the_same_entities_share_one_hash(client, raw):
    other = FeatureTable("driver_profile", ["driver_id"], [Feature("name", ValueType.STRING)])
    client.apply([driver, driver_trips, other])
    client.write_rows("driver_trips", [trip_row(7)])
    client.write_rows("driver_profile", [{"driver_id": 7, "name": "Ann", "event_timestamp": NOW}])
    keys = [k for k in raw.scan_iter() if b"registry" not in k]
    assert len(keys) == 1
    assert sorted(raw.hkeys(keys[0])) == [b"driver_profile", b"driver_trips"]
    d = client.get_online_features(["driver_profile:name", "driver_trips:rating"], [{"driver_id": 7}])
    assert d.to_dict() == {"driver_id": [7], "driver_profile:name": ["Ann"], "driver_trips:rating": [4.5]}


EVERY_TYPE = {
    ValueType.INT32: -5, ValueType.INT64: 2**62, ValueType.FLOAT: 1.5, ValueType.DOUBLE: -2.25,
    ValueType.STRING: "héllo {x}", ValueType.BYTES: b"\x00\xff", ValueType.BOOL: False,
    ValueType.UNIX_TIMESTAMP: NOW.replace(microsecond=123456),
    ValueType.INT32_LIST: [1, -2], ValueType.INT64_LIST: [2**40], ValueType.FLOAT_LIST: [0.5, 2.0],
    ValueType.DOUBLE_LIST: [0.1], ValueType.STRING_LIST: ["a", ""], ValueType.BYTES_LIST: [b"z"],
    ValueType.BOOL_LIST: [True, False], ValueType.UNIX_TIMESTAMP_LIST: [NOW.replace(microsecond=0)],
}


def test_every_value_type_round_trips(client):
    features = [Feature(t.name.lower(), t) for t in EVERY_TYPE]
    client.apply([driver, FeatureTable("all_types", ["driver_id"], features)])
    row = {t.name.lower(): v for t, v in EVERY_TYPE.items()}
    nulls = {t.name.lower(): None for t in EVERY_TYPE}
    client.write_rows("all_types", [{"driver_id": 1, "event_timestamp": NOW, **row},
                                    {"driver_id": 2, "event_timestamp": NOW, **nulls}])
    refs = [f"all_types:{f.name}" for f in features]
    response = client.get_online_features(refs, [{"driver_id": 1}, {"driver_id": 2}])
    d = response.to_dict()
    for t, value in EVERY_TYPE.items():
        assert d[f"all_types:{t.name.lower()}"] == [value, None], t
    assert set(response.statuses()["all_types:bool"]) == {S.PRESENT, S.NULL_VALUE}
    assert [s[1] for s in response.statuses().values()] == [S.NULL_VALUE] * len(refs)


@pytest.mark.parametrize("entity_type,value", [
    (ValueType.STRING, "sp{ce}"), (ValueType.BYTES, b"\x00{}"), (ValueType.INT32, -7)])
def test_entity_value_types(client, entity_type, value):
    e = Entity("k", entity_type)
    client.apply([e, FeatureTable("t", ["k"], [Feature("v", ValueType.INT64)])])
    client.write_rows("t", [{"k": value, "v": 1, "event_timestamp": NOW}])
    d = client.get_online_features(["t:v"], [{"k": value}]).to_dict(include_statuses=True)
    assert d["t:v"] == [1] and d["statuses"]["t:v"] == [S.PRESENT]


def test_int_and_string_entities_do_not_collide(client):
    client.apply([Entity("n", ValueType.INT64), Entity("s", ValueType.STRING),
                  FeatureTable("by_n", ["n"], [Feature("v", ValueType.INT64)]),
                  FeatureTable("by_s", ["s"], [Feature("v", ValueType.INT64)])])
    client.write_rows("by_n", [{"n": 1, "v": 1, "event_timestamp": NOW}])
    d = client.get_online_features(["by_s:v"], [{"s": "1"}]).to_dict(include_statuses=True)
    assert d["statuses"]["by_s:v"] == [S.NOT_FOUND]


def test_field_values_row_view(seeded):
    seeded.write_rows("driver_trips", [trip_row(1, rating=None)])
    (row,) = seeded.get_online_features(SEED_REFS, [{"driver_id": 1}]).field_values
    assert row.fields["driver_id"] == 1 and row.fields["driver_trips:rating"] is None
    assert row.statuses["driver_trips:rating"] == S.NULL_VALUE


def test_duplicate_entity_rows(seeded):
    seeded.write_rows("driver_trips", [trip_row(1)])
    d = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": 1}] * 3).to_dict()
    assert d["driver_trips:rating"] == [4.5, 4.5, 4.5]


@pytest.mark.standalone_only
def test_big_request_is_split_and_reassembled_in_order(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(i, max_rides=i) for i in range(0, 500, 2)])
    seeded.max_cells_per_call = 7 * 3  # 7 rows per call
    rows = [{"driver_id": i} for i in range(500)]
    seeded.get_online_features(SEED_REFS, rows[:1])  # loads the script
    raw.config_resetstat()
    d = seeded.get_online_features(SEED_REFS, rows).to_dict(include_statuses=True)
    assert d["driver_trips:maximum_daily_rides"] == [i if i % 2 == 0 else None for i in range(500)]
    assert d["statuses"]["driver_trips:rating"] == [
        S.PRESENT if i % 2 == 0 else S.NOT_FOUND for i in range(500)]
    calls = raw.info("commandstats")["cmdstat_evalsha_ro"]["calls"]
    assert calls == -(-500 // 7)


@pytest.mark.standalone_only
def test_split_also_bounds_keys_per_call(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(i) for i in range(100)])
    seeded.get_online_features(SEED_REFS, [{"driver_id": 0}])  # loads the script
    seeded.max_keys_per_call = 8
    raw.config_resetstat()
    d = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": i} for i in range(100)])
    assert d.to_dict()["driver_trips:rating"] == [4.5] * 100
    assert raw.info("commandstats")["cmdstat_evalsha_ro"]["calls"] == 13


def test_10000_rows_by_50_features(client):
    features = [Feature(f"f{i}", ValueType.INT64) for i in range(50)]
    client.apply([driver, FeatureTable("wide", ["driver_id"], features)])
    client.write_rows("wide", [
        {"driver_id": d, "event_timestamp": NOW, **{f"f{i}": d * 100 + i for i in range(50)}}
        for d in range(10_000)])
    refs = [f"wide:f{i}" for i in range(50)]
    response = client.get_online_features(refs, [{"driver_id": d} for d in range(10_000)])
    d = response.to_dict(include_statuses=True)
    assert d["wide:f49"][9_999] == 999_949
    assert all(d["wide:f7"][r] == r * 100 + 7 for r in range(10_000))
    assert all(s == S.PRESENT for col in d["statuses"].values() for s in col)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1], [1], [0, 2]])
def test_any_ref_order_and_subset_reads_the_same_cells(seeded, order):
    seeded.write_rows("driver_trips", [
        trip_row(1, rides=1.5, max_rides=1, rating=None), trip_row(2, rides=None, max_rides=2),
        trip_row(3, ts=NOW - timedelta(days=2))])
    rows = [{"driver_id": i} for i in (1, 2, 3, 4)]
    refs = [SEED_REFS[i] for i in order]
    got = seeded.get_online_features(refs, rows).to_dict(include_statuses=True)
    for ref in refs:
        alone = seeded.get_online_features([ref], rows).to_dict(include_statuses=True)
        assert got[ref] == alone[ref]
        assert got["statuses"][ref] == alone["statuses"][ref]
    assert got["statuses"].get("driver_trips:rating", [S.NULL_VALUE])[0] == S.NULL_VALUE


@pytest.mark.standalone_only
def test_a_call_past_its_reply_byte_budget_is_continued_in_order(client, raw):
    client.apply([driver, FeatureTable("blobs", ["driver_id"], [Feature("blob", ValueType.STRING)])])
    blob = "x" * 40_000  # 300 rows: about 12 MB, past the 8 MiB reply budget of one call
    client.write_rows("blobs", [{"driver_id": i, "blob": f"{i:06d}{blob}", "event_timestamp": NOW}
                                for i in range(300)])
    client.get_online_features(["blobs:blob"], [{"driver_id": 0}])  # loads the script
    client.max_keys_per_call = 250  # two calls; the first stops early and is continued
    raw.config_resetstat()
    rows = [{"driver_id": i} for i in range(300)] + [{"driver_id": 999}]
    d = client.get_online_features(["blobs:blob"], rows).to_dict(include_statuses=True)
    assert d["blobs:blob"][:300] == [f"{i:06d}{blob}" for i in range(300)]
    assert d["blobs:blob"][300] is None and d["statuses"]["blobs:blob"][300] == S.NOT_FOUND
    assert raw.info("commandstats")["cmdstat_evalsha_ro"]["calls"] == 3


def test_colocated_entities_read_like_any_other(client):
    customer_c = Entity("customer_id", ValueType.STRING, colocate=True)
    account = Entity("account_id", ValueType.INT64)
    client.apply([customer_c, account,
                  FeatureTable("customer_profile", ["customer_id"], [Feature("tier", ValueType.STRING)]),
                  FeatureTable("account_stats", ["customer_id", "account_id"],
                               [Feature("balance", ValueType.DOUBLE)])])
    client.write_rows("customer_profile", [{"customer_id": c, "tier": f"t-{c}", "event_timestamp": NOW}
                                           for c in ("alice", "bob")])
    client.write_rows("account_stats", [
        {"customer_id": c, "account_id": a, "balance": a * 1.5, "event_timestamp": NOW}
        for c in ("alice", "bob") for a in range(3)])
    rows = [{"customer_id": c, "account_id": a} for c in ("alice", "bob", "carol") for a in (0, 2, 9)]
    got = client.get_online_features(["account_stats:balance", "customer_profile:tier"], rows)
    d = got.to_dict(include_statuses=True)
    assert d["account_stats:balance"] == [0.0, 3.0, None, 0.0, 3.0, None, None, None, None]
    assert d["customer_profile:tier"] == ["t-alice"] * 3 + ["t-bob"] * 3 + [None] * 3
    assert d["statuses"]["customer_profile:tier"][-1] == S.NOT_FOUND


def test_colocation_cannot_change_while_an_entity_is_in_use(seeded):
    from feast_lua import SchemaError

    with pytest.raises(SchemaError, match="colocate"):
        seeded.apply([Entity("driver_id", ValueType.INT64, colocate=True)])
    seeded.apply([Entity("unused", ValueType.INT64, colocate=True)])  # not in use: allowed
    assert {e.name: e.colocate for e in seeded.list_entities()}["unused"] is True
