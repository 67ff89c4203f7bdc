"""FeastLayoutClient and the feast_read / feast_write scripts on a real Redis, without feast: statuses,
the Timestamp parsed inside Lua, newest-wins, splitting, and every error leaving Redis untouched.
tests/compat checks the same against data the real feast wrote."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from clients import make_feast_client
from helpers_redis import snapshot

from feast_lua import (
    EntityRowError,
    FeastDefinitions,
    FeastEntity,
    FeastLayoutClient,
    FeastView,
    FieldStatus,
    InvalidFeatureRefError,
    RowError,
    ScriptError,
    ValueType,
    ValueTypeError,
)
from feast_lua.errors import UnknownFeatureError, UnknownTableError
from feast_lua.feast_layout import encode_timestamp, entity_key, feature_field, timestamp_field
from feast_lua.feast_layout.proto import value_encoder

NOW = datetime.now(timezone.utc)
P, NF, NV, OA = (FieldStatus.PRESENT, FieldStatus.NOT_FOUND, FieldStatus.NULL_VALUE,
                 FieldStatus.OUTSIDE_MAX_AGE)

DEFS = FeastDefinitions(
    "shop",
    [FeastEntity("driver_id", ValueType.INT64), FeastEntity("customer_id", ValueType.STRING)],
    [
        FeastView("trips", ["driver_id"], {"rides": ValueType.INT64, "rating": ValueType.FLOAT},
                  ttl=timedelta(days=1)),
        FeastView("profile", ["driver_id"], {"name": ValueType.STRING}),  # no ttl
        FeastView("pair", ["customer_id", "driver_id"], {"n": ValueType.INT32}, ttl=timedelta(hours=1)),
    ],
)


def trip(driver_id: int, rides=3, rating=4.5, ts=None) -> dict:
    return {"driver_id": driver_id, "rides": rides, "rating": rating, "event_timestamp": ts or NOW}


def key(driver_id: int) -> bytes:
    return entity_key("shop", {"driver_id": (ValueType.INT64, driver_id)})


EVERY_CLIENT = True  # each test runs on sync and asyncio clients, standalone and cluster


@pytest.fixture
def feast_client(variant, server_url, raw):
    with make_feast_client(variant, server_url, DEFS) as c:
        yield c


def read(client, refs, rows):
    response = client.get_online_features(refs, rows)
    return response.to_dict(), response.statuses()


def test_statuses_and_values(feast_client):
    feast_client.write_rows("trips", [trip(1), trip(2, rides=None, rating=None),
                                      trip(3, ts=NOW - timedelta(days=2))])
    old = NOW - timedelta(days=900)
    feast_client.write_rows("profile", [{"driver_id": 3, "name": "old", "event_timestamp": old}])
    refs = ["trips:rides", "profile:name", "trips:rating"]
    values, statuses = read(feast_client, refs, [{"driver_id": d} for d in (1, 2, 3, 4)])
    assert statuses == {"trips:rides": [P, NV, OA, NF], "profile:name": [NF, NF, P, NF],
                        "trips:rating": [P, NV, OA, NF]}
    assert values["trips:rides"] == [3, None, None, None]
    assert values["profile:name"] == [None, None, "old", None]  # ttl 0: no limit
    assert values["trips:rating"] == [4.5, None, None, None]
    assert values["driver_id"] == [1, 2, 3, 4]


def test_event_timestamps_come_from_the_timestamp_field(feast_client):
    stamp = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=timezone.utc)
    feast_client.write_rows("profile", [{"driver_id": 1, "name": "x", "event_timestamp": stamp}])
    response = feast_client.get_online_features(["profile:name"], [{"driver_id": 1}, {"driver_id": 2}])
    assert response.event_timestamps() == {"profile:name": [stamp, None]}


@pytest.mark.parametrize(("stored", "expected"), [
    (b"", datetime(1970, 1, 1, tzinfo=timezone.utc)),  # the epoch: both varints left out
    (encode_timestamp(-1, 500_000_000), datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc)),
    (encode_timestamp(-86400 * 73000), datetime(1770, 2, 18, tzinfo=timezone.utc)),
    (encode_timestamp(4102444800, 999_999_999), datetime(2100, 1, 1, 0, 0, 0, 999999, tzinfo=timezone.utc)),
])
def test_lua_parses_timestamp_varints(feast_client, raw, stored, expected):
    raw.hset(key(1), mapping={timestamp_field("profile"): stored,
                              feature_field("profile", "name"): value_encoder(ValueType.STRING)("n")})
    response = feast_client.get_online_features(["profile:name"], [{"driver_id": 1}])
    assert response.event_timestamps()["profile:name"] == [expected]
    assert response.statuses()["profile:name"] == [P]


@pytest.mark.parametrize("stored", [
    "18",  # unknown tag
    "0880",  # truncated varint
    "1080cab5ee01",  # nanos 500000000 encoded fine, then...
    "10ffffffffffffffffff01",  # negative nanos
    "1080a8d6b907",  # nanos 2e9
    "08" + "80" * 10 + "01",  # overlong varint
])
def test_malformed_stored_timestamps_fail_the_read(feast_client, raw, stored):
    if stored == "1080cab5ee01":
        stored += "18"  # ...followed by an unknown tag
    raw.hset(key(1), mapping={timestamp_field("profile"): bytes.fromhex(stored)})
    with pytest.raises(ScriptError, match="BADROW 1"):
        feast_client.get_online_features(["profile:name"], [{"driver_id": 1}])


def test_nulls_feast_writes_read_as_null_value(feast_client, raw):
    raw.hset(key(1), mapping={timestamp_field("trips"): encode_timestamp(int(NOW.timestamp())),
                              feature_field("trips", "rides"): b"\x98\x01\x00",  # null_val
                              feature_field("trips", "rating"): b"\x40" + b"\x80" * 9 + b"\x01"})  # NaT
    _, statuses = read(feast_client, ["trips:rides", "trips:rating"], [{"driver_id": 1}])
    assert statuses == {"trips:rides": [NV], "trips:rating": [NV]}


def test_a_field_missing_from_a_stored_row_is_not_found(feast_client, raw):
    raw.hset(key(1), mapping={timestamp_field("trips"): encode_timestamp(int(NOW.timestamp())),
                              feature_field("trips", "rides"): value_encoder(ValueType.INT64)(9)})
    values, statuses = read(feast_client, ["trips:rides", "trips:rating"], [{"driver_id": 1}])
    assert statuses == {"trips:rides": [P], "trips:rating": [NF]}
    assert values["trips:rides"] == [9]


def test_fields_without_a_timestamp_are_not_found(feast_client, raw):
    raw.hset(key(1), mapping={feature_field("trips", "rides"): value_encoder(ValueType.INT64)(9)})
    _, statuses = read(feast_client, ["trips:rides"], [{"driver_id": 1}])
    assert statuses == {"trips:rides": [NF]}


def test_composite_keys_and_several_key_groups(feast_client):
    feast_client.write_rows("pair", [
        {"customer_id": "alice", "driver_id": 1, "n": -7, "event_timestamp": NOW},
        {"customer_id": "bob", "driver_id": 1, "n": 1, "event_timestamp": NOW - timedelta(hours=2)}])
    feast_client.write_rows("trips", [trip(1)])
    rows = [{"customer_id": "alice", "driver_id": 1}, {"customer_id": "bob", "driver_id": 1},
            {"customer_id": "carol", "driver_id": 2}]
    values, statuses = read(feast_client, ["pair:n", "trips:rides"], rows)
    assert statuses == {"pair:n": [P, OA, NF], "trips:rides": [P, P, NF]}
    assert values["pair:n"] == [-7, None, None]


def test_split_requests_answer_the_same(feast_client, variant, server_url):
    feast_client.write_rows("trips", [trip(d, rides=d) for d in range(50)])
    rows = [{"driver_id": d} for d in range(60)]
    refs = ["trips:rides", "trips:rating"]
    whole = feast_client.get_online_features(refs, rows).to_dict(include_statuses=True)
    with make_feast_client(variant, server_url, DEFS, max_cells_per_call=7) as small:
        split = small.get_online_features(refs, rows).to_dict(include_statuses=True)
    assert split == whole
    assert whole["trips:rides"] == list(range(50)) + [None] * 10


def test_reply_budget_continues_in_another_call(feast_client):
    big = "x" * (3 * 1024 * 1024)
    feast_client.write_rows("profile", [{"driver_id": d, "name": big + str(d), "event_timestamp": NOW}
                                        for d in range(4)])
    values, _ = read(feast_client, ["profile:name"], [{"driver_id": d} for d in range(4)])
    assert values["profile:name"] == [big + str(d) for d in range(4)]


def test_newest_wins_to_the_nanosecond_and_within_one_call(feast_client):
    t = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert feast_client.write_rows("trips", [trip(1, rides=1, ts=t)]).written == 1
    result = feast_client.write_rows("trips", [
        trip(1, rides=2, ts=t),  # equal: skipped, as Feast skips it
        trip(1, rides=3, ts=t - timedelta(microseconds=1)),  # older: skipped
        trip(1, rides=4, ts=t + timedelta(microseconds=1)),  # newer: written
        trip(1, rides=5, ts=t + timedelta(microseconds=1)),  # equal to the row before it: skipped
    ])
    assert (result.written, result.skipped) == (1, 3)
    values, _ = read(feast_client, ["trips:rides"], [{"driver_id": 1}])
    assert values["trips:rides"] == [4]


def test_key_ttl_sets_expire_in_seconds(feast_client, raw):
    feast_client.write_rows("trips", [trip(1)], key_ttl=timedelta(hours=1))
    assert 3590 <= raw.ttl(key(1)) <= 3600
    feast_client.write_rows("trips", [trip(2)])
    assert raw.ttl(key(2)) == -1


@pytest.mark.parametrize(("rows", "error", "match"), [
    ([trip(1), trip(2, rides="3")], ValueTypeError, "row 1 of 'trips', feature 'rides' \\(INT64\\)"),
    ([trip(1), {**trip(2), "extra": 1}], RowError, "row 1 of 'trips'.*columns the view lacks: \\['extra'\\]"),
    ([{k: v for k, v in trip(1).items() if k != "rating"}], RowError, "lacks \\['rating'\\]"),
    ([trip(1), {**trip(2), "event_timestamp": "now"}], ValueTypeError, "event_timestamp must be a datetime"),
    ([trip(1), trip("2")], EntityRowError, "join key 'driver_id'"),
    ([trip(1), trip(2, rating=1e39)], ValueTypeError, "float32"),
    ([], RowError, "no rows"),
])
def test_bad_rows_raise_and_write_nothing(feast_client, raw, rows, error, match):
    before = snapshot(raw)
    with pytest.raises(error, match=match):
        feast_client.write_rows("trips", rows)
    assert snapshot(raw) == before


def test_unknown_names_and_bad_requests(feast_client):
    with pytest.raises(UnknownTableError, match="no feature view 'nope'"):
        feast_client.get_online_features(["nope:x"], [{"driver_id": 1}])
    with pytest.raises(UnknownFeatureError, match="no feature 'x'"):
        feast_client.get_online_features(["trips:x"], [{"driver_id": 1}])
    with pytest.raises(InvalidFeatureRefError):
        feast_client.get_online_features(["trips.rides"], [{"driver_id": 1}])
    with pytest.raises(EntityRowError, match="lacks join keys \\['customer_id'\\]"):
        feast_client.get_online_features(["pair:n"], [{"driver_id": 1}])
    with pytest.raises(EntityRowError, match="keys no requested view uses: \\['x'\\]"):
        feast_client.get_online_features(["trips:rides"], [{"driver_id": 1, "x": 2}])
    with pytest.raises(UnknownTableError):
        feast_client.write_rows("nope", [trip(1)])
    with pytest.raises(ValueTypeError, match="key_ttl"):
        feast_client.write_rows("trips", [trip(1)], key_ttl=timedelta(0))


def _write_args(ts: bytes, rides: bytes = b"\x20\x01") -> list:
    fields = [feature_field("trips", "rides"), feature_field("trips", "rating")]
    return [timestamp_field("trips"), 0, 2, *fields, ts, rides, b""]


@pytest.mark.sync_only
@pytest.mark.standalone_only  # raw calls of the script, with keys in several slots
@pytest.mark.parametrize(("keys", "args", "match"), [
    ([key(1), key(2)], _write_args(b"\x08\x01") + [b"\x18", b"", b""], "BADROW 2"),
    ([key(1)], _write_args(b"\x08\x01")[:-1], "BADREQUEST expected 8 ARGV"),
    ([key(1)], [timestamp_field("trips"), 0, 2, b"abc", b"abcd", b"\x08\x01", b"", b""], "4 bytes"),
    ([key(1)], [timestamp_field("trips"), "-1", *_write_args(b"")[2:]], "key TTL"),
    ([key(1)], [timestamp_field("trips"), 0, 0], "features"),
])
def test_feast_write_script_validates_before_writing(feast_client, raw, keys, args, match):
    before = snapshot(raw)
    with pytest.raises(ScriptError, match=match):
        feast_client.loader.call("feast_write", keys, args)
    assert snapshot(raw) == before


@pytest.mark.sync_only
@pytest.mark.standalone_only  # raw calls of the script, with keys in several slots
def test_feast_write_refuses_a_key_of_another_type_before_writing(feast_client, raw):
    raw.set(key(2), "a string")
    before = snapshot(raw)
    with pytest.raises(ScriptError, match="WRONGTYPE"):
        feast_client.loader.call("feast_write", [key(1), key(2)],
                                 _write_args(b"\x08\x01") + [b"\x08\x01", b"\x20\x02", b""])
    assert snapshot(raw) == before


def test_a_malformed_stored_timestamp_is_overwritten(feast_client, raw):
    raw.hset(key(1), timestamp_field("trips"), b"\xff")
    assert feast_client.write_rows("trips", [trip(1)]).written == 1
    values, _ = read(feast_client, ["trips:rides"], [{"driver_id": 1}])
    assert values["trips:rides"] == [3]


@pytest.mark.sync_only
@pytest.mark.standalone_only  # raw calls of the script, with keys in several slots
@pytest.mark.parametrize(("args", "match"), [
    (["0", "1", b"_ts:trips", "1", "0", "1", "1", b"abcd"], "ARGV\\[1\\] \\(key groups\\)"),
    (["1", "1", b"_ts:trips", "1", "x", "1", "1", b"abcd"], "view 1: ttl"),
    (["1", "1", b"_ts:trips", "2", "0", "1", "1", b"abcd"], "view 1: key group"),
    (["1", "1", b"_ts:trips", "1", "0", "1", "2", b"abcd"], "ref 1: view index"),
    (["1", "1", b"_ts:trips", "1", "0", "2", "1", b"abcd"], "expected 10 ARGV"),
    (["2", "2", b"_ts:a", "1", "0", b"_ts:b", "1", "0", "1", "1", b"abcd"], "key group 2 has no view"),
])
def test_feast_read_script_refuses_bad_argv(feast_client, args, match):
    with pytest.raises(ScriptError, match=match):
        feast_client.loader.call("feast_read", [key(1), key(2)], args)


def test_concurrent_writers_leave_the_newest_row(redis_server, raw):
    """Feast's write reads the stored timestamps, compares in Python, then writes: two writers can
    both pass the check and the older row can land last. feast_write compares inside Redis."""
    import random
    import threading

    base = datetime(2030, 1, 1, tzinfo=timezone.utc)
    offsets = list(range(400))
    random.Random(7).shuffle(offsets)
    shares = [offsets[i::4] for i in range(4)]

    def writer(share: list[int]) -> None:
        with FeastLayoutClient(DEFS, redis_server.url) as c:
            for us in share:
                c.write_rows("trips", [trip(1, rides=us, ts=base + timedelta(microseconds=us))])

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with FeastLayoutClient(DEFS, redis_server.url) as c:
        response = c.get_online_features(["trips:rides"], [{"driver_id": 1}])
    assert response.to_dict()["trips:rides"] == [399]
    assert response.event_timestamps()["trips:rides"] == [base + timedelta(microseconds=399)]
