"""Feast's layout without Redis or feast: key bytes, murmur3 field names, Timestamp and Value protos.

The expected bytes come from Feast's sources (key_encoding_utils.py, helpers.py) and from what
feast 0.67 stored in Redis (tests/compat checks whole hashes byte for byte against it).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from feast_lua import EntityRowError, FeastDefinitions, FeastEntity, FeastView, SchemaError, ValueType
from feast_lua.errors import UnknownFeatureError, UnknownTableError
from feast_lua.feast_layout import (
    decode_timestamp,
    encode_timestamp,
    entity_key,
    feature_field,
    murmur3_32,
    timestamp_field,
    timestamp_from_datetime,
)
from feast_lua.feast_layout.keys import FeastKeyEncoder
from feast_lua.feast_layout.proto import decode_value, value_encoder

I64, I32, S, B = ValueType.INT64, ValueType.INT32, ValueType.STRING, ValueType.BYTES


def test_key_of_the_reference_example():
    key = entity_key("feastbase", {"driver_id": (I64, 1)})
    assert key.hex() == ("01000000" "02000000" "09000000" + b"driver_id".hex()
                         + "04000000" "08000000" "0100000000000000" + b"feastbase".hex())


def test_composite_key_sorts_join_keys_and_types_each_value():
    key = entity_key("p", {"driver_id": (I64, -2), "customer_id": (S, "é")})
    assert key == (b"\x02\x00\x00\x00"
                   + b"\x02\x00\x00\x00\x0b\x00\x00\x00customer_id"
                   + b"\x02\x00\x00\x00\x09\x00\x00\x00driver_id"
                   + b"\x02\x00\x00\x00\x02\x00\x00\x00\xc3\xa9"
                   + b"\x04\x00\x00\x00\x08\x00\x00\x00" + (-2).to_bytes(8, "little", signed=True)
                   + b"p")


def test_int32_and_bytes_keys():
    assert entity_key("p", {"d": (I32, -1)}) == (
        b"\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00d\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\xff\xffp")
    assert entity_key("p", {"d": (B, b"\x00\xff")}).endswith(b"\x01\x00\x00\x00\x02\x00\x00\x00\x00\xffp")


def test_encoder_matches_entity_key_and_names_bad_values():
    encoder = FeastKeyEncoder("p", {"driver_id": I64, "customer_id": S})
    row = {"driver_id": 3, "customer_id": "x"}
    assert encoder.key(row, 0) == entity_key("p", {"driver_id": (I64, 3), "customer_id": (S, "x")})
    with pytest.raises(EntityRowError, match="entity row 4, join key 'driver_id'.*INT64"):
        encoder.key({"driver_id": "3", "customer_id": "x"}, 4)
    with pytest.raises(EntityRowError, match="outside the INT64 range"):
        encoder.key({"driver_id": 2**63, "customer_id": "x"}, 0)
    with pytest.raises(EntityRowError, match="lacks join key 'customer_id'"):
        encoder.key({"driver_id": 1}, 0)
    with pytest.raises(EntityRowError, match="expected an integer"):
        encoder.key({"driver_id": True, "customer_id": "x"}, 0)


@pytest.mark.parametrize(("data", "seed", "expected"), [
    (b"", 0, 0),
    (b"", 1, 0x514E28B7),
    (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"\x21\x43\x65\x87", 0, 0xF55B516B),
    (b"\x21\x43\x65", 0, 0x7E4A8634),
    (b"\x21\x43", 0, 0xA0F7B07A),
    (b"\x21", 0, 0x72661CF4),
    (b"Hello, world!", 1234, 0xFAF6CDB3),
    (b"The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
])
def test_murmur3_vectors(data, seed, expected):
    assert murmur3_32(data, seed) == expected


def test_field_names():
    assert feature_field("driver_trips", "rating") == bytes.fromhex("8a00cb9e")
    assert timestamp_field("driver_trips") == b"_ts:driver_trips"


@pytest.mark.parametrize(("seconds", "nanos", "expected"), [
    (0, 0, ""),  # the epoch: both fields left out
    (1, 0, "0801"),  # nanos left out when 0
    (0, 5, "1005"),  # seconds left out when 0
    (1618225182, 123456000, "089ed0d08306108094ef3a"),
    (-1, 500_000_000, "08ffffffffffffffffff011080cab5ee01"),  # negative: ten-byte varint
])
def test_timestamp_bytes(seconds, nanos, expected):
    assert encode_timestamp(seconds, nanos).hex() == expected
    assert decode_timestamp(bytes.fromhex(expected)) == (seconds, nanos)


def test_timestamp_bytes_agree_with_protobuf():
    from google.protobuf.timestamp_pb2 import Timestamp

    for seconds in (0, 1, 127, 128, -1, -128, 2**31, -(2**35), 253402300799):
        for nanos in (0, 1, 999_999_999):
            expected = Timestamp(seconds=seconds, nanos=nanos).SerializeToString()
            assert encode_timestamp(seconds, nanos) == expected


def test_timestamp_from_datetime_floors_and_treats_naive_as_utc():
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 500000)
    assert timestamp_from_datetime(before_epoch) == encode_timestamp(-1, 500_000_000)
    aware = datetime(2021, 4, 12, 12, 59, 42, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert decode_timestamp(timestamp_from_datetime(aware)) == (1618225182, 123456000)


@pytest.mark.parametrize("bad", ["18", "0880", "1880ca9af403", "08"])
def test_malformed_timestamps_are_refused(bad):
    with pytest.raises(ValueError):
        decode_timestamp(bytes.fromhex(bad))


@pytest.mark.parametrize(("value_type", "value", "expected"), [
    (ValueType.INT64, 5, "2005"),
    (ValueType.INT64, -1, "20ffffffffffffffffff01"),
    (ValueType.INT32, 7, "1807"),
    (ValueType.FLOAT, 0.5, "350000003f"),
    (ValueType.DOUBLE, 1.0, "29000000000000f03f"),
    (ValueType.STRING, "é", "1202c3a9"),
    (ValueType.BYTES, b"\x00", "0a0100"),
    (ValueType.BOOL, False, "3800"),
    (ValueType.BOOL, True, "3801"),
    (ValueType.UNIX_TIMESTAMP, datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc), "4001"),
    (ValueType.INT64_LIST, [1, 2], "72040a020102"),
    (ValueType.STRING_LIST, [], "6200"),  # an empty list is a value, not a null
    (ValueType.BYTES_LIST, [b"a"], "5a030a0161"),
    (ValueType.INT64, None, ""),
    (ValueType.DOUBLE, float("nan"), ""),
    (ValueType.FLOAT_LIST, None, ""),
])
def test_value_protos(value_type, value, expected):
    assert value_encoder(value_type)(value).hex() == expected


@pytest.mark.parametrize(("data", "expected"), [
    ("", None),
    ("980100", None),  # null_val
    ("40" + "80" * 9 + "01", None),  # Feast's NaT timestamp
    ("2005", 5),
    ("350000003f", 0.5),
    ("4001", datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)),
    ("72040a020102", [1, 2]),
    ("6200", []),
    ("3801", True),
])
def test_value_decoding_follows_feast(data, expected):
    got = decode_value(bytes.fromhex(data))
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("value_type", "value", "error", "match"), [
    (ValueType.INT64, "1", TypeError, "cannot be interpreted as an integer"),
    (ValueType.INT64, 1.0, TypeError, "expected an integer"),
    (ValueType.INT32, 2**31, ValueError, "outside the INT32 range"),
    (ValueType.FLOAT, 1e39, ValueError, "float32"),
    (ValueType.STRING, b"x", TypeError, "expected str"),
    (ValueType.BOOL, 1, TypeError, "expected bool"),
    (ValueType.INT64_LIST, [1, None], ValueError, "element 1 is null"),
    (ValueType.INT64_LIST, 5, TypeError, "expected a list"),
])
def test_value_errors(value_type, value, error, match):
    with pytest.raises(error, match=match):
        value_encoder(value_type)(value)


def test_definitions_validate_and_name_what_is_wrong():
    driver = FeastEntity("driver_id", "INT64")
    with pytest.raises(SchemaError, match="entity 'x'.*FLOAT"):
        FeastEntity("x", ValueType.FLOAT)
    with pytest.raises(SchemaError, match="view 'v' has no features"):
        FeastView("v", ["driver_id"], {})
    with pytest.raises(SchemaError, match="ttl must be a timedelta"):
        FeastView("v", ["driver_id"], {"f": ValueType.INT64}, ttl=timedelta(seconds=-1))
    with pytest.raises(SchemaError, match="join key 'nope'"):
        FeastDefinitions("p", [driver], [FeastView("v", ["nope"], {"f": "INT64"})])
    view = FeastView("v", ["driver_id"], {"f": "INT64"}, timedelta(hours=1))
    defs = FeastDefinitions("p", [driver], [view])
    assert FeastDefinitions.from_dict(defs.to_dict()).to_dict() == defs.to_dict()
    assert defs.view("v").ttl_us == 3_600_000_000
    with pytest.raises(UnknownTableError, match="no feature view 'w'"):
        defs.view("w")
    with pytest.raises(UnknownFeatureError, match="no feature 'g'"):
        defs.view("v").feature_type("g")


def test_from_repo_without_feast_says_what_to_install():
    pytest.importorskip("google.protobuf")
    try:
        import feast  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"feast-lua\[feast-repo\]"):
            FeastDefinitions.from_repo("/nonexistent")
    else:  # pragma: no cover - only where feast is installed
        pytest.skip("feast is installed here; tests/compat covers from_repo's reading")
