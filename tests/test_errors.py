"""Bad input gets a clear exception naming what is wrong, before any round trip when possible."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import SEED_REFS, trip_row

from feast_lua import (
    EntityRowError,
    FeastLuaError,
    InvalidFeatureRefError,
    ScriptError,
    UnknownFeatureError,
    UnknownProjectError,
    UnknownTableError,
)
from feast_lua.keys import entity_key
from feast_lua.types import ValueType

ROW = [{"driver_id": 1}]
EVERY_CLIENT = True  # each test runs on sync and asyncio clients, standalone and cluster


def commands_sent(raw) -> int:
    stats = raw.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))


@pytest.mark.parametrize("refs,error,words", [
    (["driver_trips"], InvalidFeatureRefError, ["'driver_trips'", "table:feature"]),
    (["driver_trips:rating:x"], InvalidFeatureRefError, ["'driver_trips:rating:x'"]),
    ([":rating"], InvalidFeatureRefError, ["':rating'"]),
    (["driver_trips:"], InvalidFeatureRefError, ["'driver_trips:'"]),
    ([5], InvalidFeatureRefError, ["5"]),
    ("driver_trips:rating", InvalidFeatureRefError, ["list"]),
    ([], InvalidFeatureRefError, ["empty"]),
    (["driver_trips:rating", "driver_trips:rating"], InvalidFeatureRefError, ["twice"]),
    (["nope:rating"], UnknownTableError, ["'nope'", "'default'"]),
    (["driver_trips:nope"], UnknownFeatureError, ["'nope'", "'driver_trips'"]),
])
def test_bad_refs(seeded, refs, error, words):
    with pytest.raises(error) as info:
        seeded.get_online_features(refs, ROW)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, FeastLuaError)


@pytest.mark.parametrize("rows,words", [
    ([], ["empty"]),
    ({"driver_id": 1}, ["list"]),
    ("driver_id", ["list"]),
    ([{"driver_id": 1}, {}], ["entity row 1", "'driver_id'"]),
    ([{"driver_id": "1001"}], ["entity row 0", "'driver_id'", "INT64", "'1001'"]),
    ([{"driver_id": 1.0}], ["entity row 0", "INT64"]),
    ([{"driver_id": True}], ["entity row 0", "INT64"]),
    ([{"driver_id": 2**63}], ["entity row 0", "INT64", "range"]),
    ([{"driver_id": 1, "rider": 2}], ["entity row 0", "'rider'"]),
    ([["driver_id", 1]], ["entity row 0", "dict"]),
])
def test_bad_entity_rows(seeded, rows, words):
    with pytest.raises(EntityRowError) as info:
        seeded.get_online_features(SEED_REFS, rows)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("max_age,error,word", [
    ({"other": timedelta(1)}, UnknownTableError, "'other'"),
    ({"driver_trips": 60}, TypeError, "timedelta"),
    ({"driver_trips": timedelta(-1)}, TypeError, ">= 0"),
    ({"driver_trips": timedelta.max}, TypeError, "285 years"),
    ([("driver_trips", timedelta(1))], TypeError, "map"),
])
def test_bad_max_age_override(seeded, max_age, error, word):
    with pytest.raises(error, match=word):
        seeded.get_online_features(SEED_REFS, ROW, max_age=max_age)


def test_unknown_project(client):
    with pytest.raises(UnknownProjectError, match="'nowhere'"):
        client.get_online_features(SEED_REFS, ROW, project="nowhere")
    with pytest.raises(FeastLuaError, match="project name"):
        client.get_online_features(SEED_REFS, ROW, project="bad name")


def test_unknown_table_on_write(seeded):
    with pytest.raises(UnknownTableError, match="'nope'"):
        seeded.write_rows("nope", [trip_row(1)])


@pytest.mark.standalone_only  # counts the commands one server received
def test_invalid_requests_are_rejected_before_a_round_trip(seeded, raw):
    seeded.get_online_features(SEED_REFS, ROW)  # caches the registry
    raw.config_resetstat()
    for refs, rows in ((["bad"], ROW), (SEED_REFS, [{"driver_id": "x"}]), (SEED_REFS, [])):
        with pytest.raises(FeastLuaError):
            seeded.get_online_features(refs, rows)
    with pytest.raises(FeastLuaError):
        seeded.write_rows("driver_trips", [trip_row(1, rating="high")])
    assert commands_sent(raw) == 0


def read(seeded, keys, args):
    return seeded.loader.call("read", keys, args)


@pytest.mark.parametrize("keys,args,words", [
    ([b"k"], [], ["ARGV[1]"]),
    ([b"k"], [0, 1, b"t", 1, 0, 1, 1, 0], ["ARGV[1]"]),
    ([b"k"], [1, 0, 1, 1, 0], ["ARGV[2]"]),
    ([b"k"], [1, 1001, 1, 1, 0], ["ARGV[2]", "1..1000"]),
    ([b"k"], [1, 1, b"t", 1, 0, 0], ["ARGV[6]"]),
    ([b"k"], [1, 1, b"t", 1, 0, 1, 1], ["expected 8 ARGV"]),
    ([b"k"], [1, 1, b"t", 1, 0, 1, 1, 0, 9], ["expected 8 ARGV"]),
    ([b"k"], [1, 1, b"t", 2, 0, 1, 1, 0], ["key group"]),
    ([b"k"], [1, 1, b"t", 1, -5, 1, 1, 0], ["max age"]),
    ([b"k"], [1, 1, b"t", 1, 0, 1, 2, 0], ["table index"]),
    ([b"k"], [1, 1, b"t", 1, 0, 1, 1, -1], ["slot"]),
    ([b"k"], [1, 1, b"t", 1, 0, 1, 1, b"x"], ["slot"]),
    ([b"k1", b"k2", b"k3"], [2, 2, b"t", 1, 0, b"u", 2, 0, 1, 1, 0], ["multiple of 2"]),
    ([b"k1", b"k2"], [2, 1, b"t", 1, 0, 1, 1, 0], ["ARGV[1]", "1..1"]),
    ([b"k1", b"k2"], [2, 2, b"t", 1, 0, b"u", 1, 0, 1, 1, 0], ["key group 2 has no table"]),
    ([b"k"], [1, 1, b"t", 1, b"inf", 1, 1, 0], ["max age"]),
    ([b"k"], [1, 1, b"t", 1, b"1e3", 1, 1, 0], ["max age"]),
    ([b"k"], [b" 1", 1, b"t", 1, 0, 1, 1, 0], ["ARGV[1]"]),
    ([b"k"], [b"0x1", 1, b"t", 1, 0, 1, 1, 0], ["ARGV[1]"]),
])
@pytest.mark.sync_only
@pytest.mark.standalone_only  # raw calls of the script, with keys in several slots
def test_read_script_rejects_malformed_calls(seeded, keys, args, words):
    with pytest.raises(ScriptError) as info:
        read(seeded, keys, args)
    assert "BADREQUEST" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_corrupt_stored_row_is_reported_not_misread(seeded, raw):
    key = entity_key("default", {"driver_id": (ValueType.INT64, 1)})
    raw.hset(key, "driver_trips", b"\x01garbage")
    with pytest.raises(ScriptError, match="BADROW 1"):
        seeded.get_online_features(SEED_REFS, ROW)
