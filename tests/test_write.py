"""The write script: newest-wins inside Redis, tie-breaks, TTL, and all-or-nothing validation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import NOW, SEED_REFS, dbsize, trip_row

from feast_lua import ConfigurationError, RowError, ValueTypeError, WriteResult
from feast_lua.keys import entity_key
from feast_lua.rows import unpack_row
from feast_lua.types import ValueType

EVERY_CLIENT = True  # each test runs on sync and asyncio clients, standalone and cluster


def rating(client, driver_id=1):
    return client.get_online_features(["driver_trips:rating"], [{"driver_id": driver_id}]).to_dict()[
        "driver_trips:rating"][0]


def test_older_write_is_skipped(seeded):
    assert seeded.write_rows("driver_trips", [trip_row(1, rating=4.0)]) == WriteResult(1, 0)
    older = trip_row(1, rating=1.0, ts=NOW - timedelta(minutes=1))
    assert seeded.write_rows("driver_trips", [older]) == WriteResult(0, 1)
    assert rating(seeded) == 4.0
    newer = trip_row(1, rating=2.0, ts=NOW + timedelta(microseconds=1))
    assert seeded.write_rows("driver_trips", [newer]) == WriteResult(1, 0)
    assert rating(seeded) == 2.0


def test_rows_in_one_call_apply_in_order_newest_wins(seeded):
    rows = [trip_row(1, rating=3.0, ts=NOW), trip_row(1, rating=1.0, ts=NOW - timedelta(hours=1)),
            trip_row(1, rating=2.0, ts=NOW + timedelta(hours=1)), trip_row(2, rating=5.0)]
    assert seeded.write_rows("driver_trips", rows) == WriteResult(3, 1)
    assert rating(seeded, 1) == 2.0 and rating(seeded, 2) == 5.0


def test_equal_event_timestamps_are_decided_by_created_timestamp(seeded):
    first = trip_row(1, rating=1.0, created_timestamp=NOW)
    assert seeded.write_rows("driver_trips", [first]) == WriteResult(1, 0)
    replay = trip_row(1, rating=9.0, created_timestamp=NOW)
    assert seeded.write_rows("driver_trips", [replay]) == WriteResult(0, 1)
    no_created = trip_row(1, rating=9.0)
    assert seeded.write_rows("driver_trips", [no_created]) == WriteResult(0, 1)
    later = trip_row(1, rating=2.0, created_timestamp=NOW + timedelta(seconds=1))
    assert seeded.write_rows("driver_trips", [later]) == WriteResult(1, 0)
    assert rating(seeded) == 2.0


def test_replay_without_created_timestamp_changes_nothing(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(1, rating=1.0)])
    before = {k: raw.dump(k) for k in raw.scan_iter()}
    assert seeded.write_rows("driver_trips", [trip_row(1, rating=3.0)]) == WriteResult(0, 1)
    assert {k: raw.dump(k) for k in raw.scan_iter()} == before


def test_naive_event_timestamp_means_utc(seeded, raw):
    naive = NOW.replace(tzinfo=None)
    seeded.write_rows("driver_trips", [trip_row(1, ts=naive)])
    stamps = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": 1}]).event_timestamps()
    assert stamps["driver_trips:rating"] == [NOW]


def test_stored_row_layout(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(1001, rating=None)])
    stored = raw.hget(entity_key("default", {"driver_id": (ValueType.INT64, 1001)}), "driver_trips")
    row = unpack_row(stored)
    assert row.values() == [3.5, 9, None]
    assert row.cells[2] == b"\xc0"


def test_key_ttl(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(1)], ttl=timedelta(hours=1))
    seeded.write_rows("driver_trips", [trip_row(2)])
    key1 = entity_key("default", {"driver_id": (ValueType.INT64, 1)})
    key2 = entity_key("default", {"driver_id": (ValueType.INT64, 2)})
    assert 3_500_000 < raw.pttl(key1) <= 3_600_000
    assert raw.pttl(key2) == -1


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), timedelta.max, 60])
def test_bad_ttl_is_refused(seeded, raw, ttl):
    with pytest.raises(ConfigurationError, match="ttl"):
        seeded.write_rows("driver_trips", [trip_row(1)], ttl=ttl)
    assert dbsize(raw) == 1


def test_large_write_is_chunked(seeded, raw):
    seeded.max_rows_per_write = 100
    result = seeded.write_rows("driver_trips", [trip_row(i) for i in range(1050)])
    assert result == WriteResult(1050, 0)
    assert dbsize(raw) == 1051  # plus the registry


@pytest.mark.parametrize("bad_row,error,words", [
    ({"driver_id": 5, "average_daily_rides": 1.0, "maximum_daily_rides": 1, "event_timestamp": NOW},
     RowError, ["row 2", "'rating'", "None"]),
    ({**trip_row(5), "event_timestamp": None}, RowError, ["row 2", "event_timestamp"]),
    ({**trip_row(5), "event_timestamp": "2020-01-01"}, ValueTypeError, ["row 2", "datetime"]),
    ({**trip_row(5), "event_timestamp": datetime(2300, 1, 1)}, ValueTypeError, ["row 2", "2255"]),
    ({**trip_row(5), "created_timestamp": datetime(1, 1, 1)}, ValueTypeError, ["row 2", "created_timestamp"]),
    ({**trip_row(5), "maximum_daily_rides": "nine"}, ValueTypeError,
     ["row 2", "maximum_daily_rides", "INT64"]),
    ({**trip_row(5), "rating": True}, ValueTypeError, ["row 2", "rating", "FLOAT"]),
    ({**trip_row(5), "rating": 1e39}, ValueTypeError, ["row 2", "rating", "float32"]),
    ({**trip_row(5), "colour": "red"}, RowError, ["row 2", "colour"]),
    ({**trip_row(5), "driver_id": "5"}, Exception, ["row 2", "driver_id", "INT64"]),
    ({k: v for k, v in trip_row(5).items() if k != "driver_id"}, Exception, ["row 2", "driver_id"]),
])
def test_a_bad_row_writes_nothing(seeded, raw, bad_row, error, words):
    before = dbsize(raw)
    with pytest.raises(error) as info:
        seeded.write_rows("driver_trips", [trip_row(1), trip_row(2), bad_row, trip_row(3)])
    for word in words:
        assert word in str(info.value)
    assert dbsize(raw) == before


@pytest.mark.sync_only
@pytest.mark.standalone_only
def test_bad_packed_row_sent_directly_writes_nothing(seeded, raw):
    good = seeded.loader
    key = entity_key("default", {"driver_id": (ValueType.INT64, 1)})
    from feast_lua.rows import pack_row
    ok = pack_row(1, 0, [b"\xc0"] * 3)
    with pytest.raises(Exception, match="BADROW 2"):
        good.call("write", [key, key + b"x"], [b"driver_trips", 0, ok, ok[:-1]])
    with pytest.raises(Exception, match="BADREQUEST"):
        good.call("write", [key], [b"driver_trips", 0])
    for ttl in (b"inf", b"1e300", b"-1", b"9" * 16):
        with pytest.raises(Exception, match="BADREQUEST.*TTL"):
            good.call("write", [key, key + b"x"], [b"driver_trips", ttl, ok, ok])
    assert dbsize(raw) == 1


def test_written_rows_read_back(seeded):
    seeded.write_rows("driver_trips", [trip_row(i, rides=i / 2, max_rides=i) for i in range(20)])
    d = seeded.get_online_features(SEED_REFS, [{"driver_id": i} for i in range(20)]).to_dict()
    assert d["driver_trips:average_daily_rides"] == [i / 2 for i in range(20)]
    assert d["driver_trips:maximum_daily_rides"] == list(range(20))


def _malformed(slots: int) -> dict[str, bytes]:
    """One well-formed packed row of `slots` slots (a nil, a bool, an int, a string, repeated)
    and each way of breaking it that the write script must refuse."""
    import struct

    from feast_lua.rows import pack_row

    cells = [[b"\xc0", b"\xc3", b"\xcd\x01\x00", b"\xa2hi"][s % 4] for s in range(slots)]
    ok = pack_row(5, 0, cells)
    status_at, ends_at = 19, 19 + slots
    vstart = ends_at + 2 * slots

    def patched(at: int, data: bytes) -> bytes:
        return ok[:at] + data + ok[at + len(data):]

    ends = list(struct.unpack_from(f">{slots}H", ok, ends_at))
    swapped = ends[:]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    return {
        "ok": ok,
        "status 0": patched(status_at + 1, b"\x00"),
        "status 3": patched(status_at + 1, b"\x03"),
        "PRESENT on a nil": patched(status_at, b"\x01"),
        "NULL_VALUE on a bool": patched(status_at + 1, b"\x02"),
        "offsets not rising": patched(ends_at, struct.pack(f">{slots}H", *swapped)),
        "last offset short of the end": ok + b"\x00",
        "last offset past the end": ok[:-1],
        "a nil byte read as PRESENT value": patched(vstart + ends[0], b"\xc0"),
        "header only": ok[:19],
        "format 3": patched(0, b"\x03"),
    }


@pytest.mark.sync_only
@pytest.mark.standalone_only  # raw calls of the script, with keys in several slots
@pytest.mark.parametrize("slots", [12, 240])  # the script reads up to 200 slots at once, more one by one
def test_write_script_refuses_each_malformed_row(client, raw, slots):
    rows = _malformed(slots)
    key = b"{}fl:test"
    assert client.loader.call("write", [key], [b"t", 0, rows.pop("ok")]) == [1, 0]
    for why, row in rows.items():
        with pytest.raises(Exception, match="BADROW 2") as info:
            client.loader.call("write", [key + b"2", key + b"3"], [b"t", 0, _malformed(slots)["ok"], row])
        assert info.value is not None, why
    assert raw.keys(b"{}fl:test*") == [key]
