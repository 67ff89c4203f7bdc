"""pack_arrow: rows packed from Arrow columns are byte for byte the rows plan_write packs, and
every value it cannot vouch for sends the chunk to the row loop, which names the bad row."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from conftest import NOW

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from feast_lua import Entity, FeastLuaError, Feature, FeatureTable, FieldStatus, ValueType  # noqa: E402
from feast_lua.ingest_reader import column_values as _values  # noqa: E402
from feast_lua.pack_arrow import Unsupported, plan_arrow  # noqa: E402
from feast_lua.write import plan_write  # noqa: E402

INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, -1, -32, -33, -128,
        -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63), None]
N = len(INTS)
FLOATS = [0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 1e-300, 3.4e38, -3.4e38, None, 1 / 3] * 2
# str16 and bin16 up to the 64 KiB a format 1 row holds (str32 rows take the row loop).
TEXTS = ["", "a", "é" * 15, "x" * 31, "x" * 32, "y" * 255, "y" * 256, "z" * 65000, None, "日本"] + ["t"] * 12
BLOBS = [b"", b"\x00", b"\xc0", b"b" * 255, b"b" * 256, b"c" * 3000, None] + [b"q"] * 15
TIMES = [NOW, None, datetime(1970, 1, 1), datetime(2200, 5, 6, 7, 8, 9, 123456),
         datetime(1800, 1, 1), datetime(2106, 2, 7, 6, 28, 16)] + [NOW] * 16

FEATURES = [Feature("i64", ValueType.INT64), Feature("i32", ValueType.INT32), Feature("d", ValueType.DOUBLE),
            Feature("f", ValueType.FLOAT), Feature("s", ValueType.STRING), Feature("b", ValueType.BYTES),
            Feature("ok", ValueType.BOOL), Feature("t", ValueType.UNIX_TIMESTAMP),
            Feature("tags", ValueType.STRING_LIST), Feature("d_from_int", ValueType.DOUBLE),
            Feature("f_from_f32", ValueType.FLOAT)]


def every_type() -> pa.Table:
    return pa.table({
        "user": pa.array([f"u{i % 7}" for i in range(N)]),
        "shop": pa.array([i * 1000 - 5 for i in range(N)], pa.int32()),
        "i64": pa.array(INTS, pa.int64()),
        "i32": pa.array([v if v is None or -(2**31) <= v < 2**31 else 7 for v in INTS], pa.int64()),
        "d": pa.array(FLOATS, pa.float64()),
        "f": pa.array(FLOATS, pa.float64()),
        "s": pa.array(TEXTS, pa.large_string()),
        "b": pa.array(BLOBS, pa.binary()),
        "ok": pa.array([True, False, None] * 7 + [True], pa.bool_()),
        "t": pa.array(TIMES, pa.timestamp("ns", "UTC")),
        "tags": pa.array([["a", "b"], None, []] * 7 + [["z"]], pa.list_(pa.string())),
        "d_from_int": pa.array([v if v is None or abs(v) < 2**62 else 3 for v in INTS], pa.int64()),
        "f_from_f32": pa.array([None if v is None else float(v) for v in FLOATS], pa.float32()),
        "event_timestamp": pa.array([NOW + timedelta(seconds=i) for i in range(N)], pa.timestamp("ns")),
        "created_timestamp": pa.array([None, NOW] * (N // 2), pa.timestamp("ms", "UTC")),
    })


@pytest.fixture
def shops(client):
    """A table over two join keys (STRING and INT32) with a feature of every kind; its first
    feature is removed and re-added, so slot 0 is held by no feature."""
    client.apply([Entity("user", ValueType.STRING), Entity("shop", ValueType.INT32),
                  FeatureTable("visits", ["user", "shop"], [Feature("gone", ValueType.INT64), *FEATURES])])
    client.apply([FeatureTable("visits", ["user", "shop"], FEATURES)])
    return client


def both_plans(client, table_name: str, table: pa.Table):
    registry = client.registry.get(client.project)
    spec = registry.tables[table_name]
    arrays = {name: table.column(name) for name in table.column_names}
    fast = plan_arrow(registry, spec, arrays, lambda a, t: _values(a, t, False))
    return fast, both_plans_slow(client, table_name, table)


def both_plans_slow(client, table_name: str, table: pa.Table):
    registry = client.registry.get(client.project)
    spec = registry.tables[table_name]
    values = {name: _values(table.column(name), _type(spec, registry, name), False)
              for name in table.column_names}
    return plan_write(registry, spec, [dict(zip(values, cells)) for cells in zip(*values.values())])


def _type(spec, registry, name):
    if name in spec.features:
        return spec.features[name].value_type
    return registry.entities[name].value_type if name in spec.entities else None


def test_every_type_packs_byte_for_byte_as_the_row_loop(shops):
    table = every_type()
    fast, slow = both_plans(shops, "visits", table)
    assert fast.keys == slow.keys
    assert fast.rows == slow.rows


def test_slices_pack_as_their_rows_do(shops):
    """Chunks of a Table are slices (arrays with an offset) of bigger buffers."""
    table = every_type()
    for start, length in ((3, 9), (11, 11), (21, 1)):
        fast, slow = both_plans(shops, "visits", table.slice(start, length))
        assert (fast.keys, fast.rows) == (slow.keys, slow.rows)


def test_only_plain_int64_keys_and_no_created_timestamp(seeded):
    table = pa.table({"driver_id": pa.array([5, -3, 2**40], pa.int64()),
                      "average_daily_rides": [1.0, 2.5, None], "maximum_daily_rides": [1, None, 3],
                      "rating": pa.array([0.5, math.nan, 1e30], pa.float32()),
                      "event_timestamp": pa.array([NOW] * 3, pa.timestamp("s"))})
    fast, slow = both_plans(seeded, "driver_trips", table)
    assert (fast.keys, fast.rows) == (slow.keys, slow.rows)


def test_bytes_join_key_and_dictionary_columns(client):
    client.apply([Entity("blob", ValueType.BYTES),
                  FeatureTable("blobs", ["blob"], [Feature("name", ValueType.STRING)])])
    table = pa.table({"blob": pa.array([b"\x00{}", b"", b"k"], pa.binary()),
                      "name": pa.array(["a", None, "a"]).dictionary_encode(),
                      "event_timestamp": pa.array([NOW] * 3, pa.timestamp("us"))})
    fast, slow = both_plans(client, "blobs", table)
    assert (fast.keys, fast.rows) == (slow.keys, slow.rows)


def test_colocated_keys_carry_their_tag(client):
    client.apply([Entity("customer_id", ValueType.STRING, colocate=True),
                  Entity("account_id", ValueType.INT64),
                  FeatureTable("accounts", ["customer_id", "account_id"], [Feature("n", ValueType.INT64)])])
    table = pa.table({"customer_id": ["alice", "a}b", "alice"],
                      "account_id": pa.array([1, 2, 3], pa.int64()),
                      "n": pa.array([1, 2, 3], pa.int64()),
                      "event_timestamp": pa.array([NOW] * 3, pa.timestamp("us"))})
    fast, slow = both_plans(client, "accounts", table)
    assert (fast.keys, fast.rows) == (slow.keys, slow.rows)
    assert fast.keys[0].startswith(b"{") and not fast.keys[0].startswith(b"{}")


def seeded_arrays(**override):
    data = {"driver_id": pa.array([1, 2, 3], pa.int64()),
            "average_daily_rides": pa.array([1.0, 2.0, 3.0]),
            "maximum_daily_rides": pa.array([1, 2, 3], pa.int64()),
            "rating": pa.array([1.0, 2.0, 3.0]),
            "event_timestamp": pa.array([NOW] * 3, pa.timestamp("us", "UTC"))}
    data.update(override)
    return data


BAD = {
    "null join key": {"driver_id": pa.array([1, None, 3], pa.int64())},
    "uint64 join key over INT64": {"driver_id": pa.array([1, 2**63, 3], pa.uint64())},
    "float join key": {"driver_id": pa.array([1.0, 2.0, 3.0])},
    "null event timestamp": {"event_timestamp": pa.array([NOW, None, NOW], pa.timestamp("us"))},
    "all-null event timestamp": {"event_timestamp": pa.array([None] * 3, pa.null())},
    "event timestamp after 2255": {"event_timestamp": pa.array(
        [NOW, datetime(2300, 1, 1, tzinfo=timezone.utc), NOW], pa.timestamp("us", "UTC"))},
    "event timestamp before 1685": {"event_timestamp": pa.array(
        [NOW, datetime(1600, 1, 1), NOW], pa.timestamp("us"))},
    "timestamp column of another type": {"event_timestamp": pa.array([1, 2, 3])},
    "INT64 beyond int64": {"maximum_daily_rides": pa.array([1, 2**63, 3], pa.uint64())},
    "FLOAT beyond float32": {"rating": pa.array([1.0, 1e39, 3.0])},
    "text in a numeric column": {"rating": pa.array(["1.0", "x", "3"])},
    "bool in a numeric column": {"maximum_daily_rides": pa.array([True, False, True])},
}


@pytest.mark.parametrize("case", list(BAD))
def test_what_it_cannot_vouch_for_is_unsupported(seeded, case):
    registry = seeded.registry.get(seeded.project)
    with pytest.raises(Unsupported):
        plan_arrow(registry, registry.tables["driver_trips"], seeded_arrays(**BAD[case]),
                   lambda a, t: _values(a, t, False))


def test_invalid_utf8_is_unsupported(client):
    client.apply([Entity("user", ValueType.STRING),
                  FeatureTable("names", ["user"], [Feature("name", ValueType.STRING)])])
    registry = client.registry.get(client.project)
    bad = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(b"\0\0\0\0\1\0\0\0"),
                                                 pa.py_buffer(b"\xff")])
    good = pa.array(["a"])
    stamps = pa.array([NOW], pa.timestamp("us"))
    for user, name in ((bad, good), (good, bad)):
        with pytest.raises(Unsupported):
            plan_arrow(registry, registry.tables["names"],
                       {"user": user, "name": name, "event_timestamp": stamps},
                       lambda a, t: _values(a, t, False))


def test_rows_past_64_kib_take_the_row_loop_and_still_land(client, tmp_path):
    client.apply([Entity("user", ValueType.STRING),
                  FeatureTable("docs", ["user"], [Feature("body", ValueType.STRING)])])
    table = pa.table({"user": ["a", "b"], "body": ["x" * 70000, "y"],
                      "event_timestamp": pa.array([NOW] * 2, pa.timestamp("us"))})
    registry = client.registry.get(client.project)
    with pytest.raises(Unsupported, match="64 KiB"):
        plan_arrow(registry, registry.tables["docs"], {n: table.column(n) for n in table.column_names},
                   lambda a, t: _values(a, t, False))
    pq.write_table(table, tmp_path / "docs.parquet")
    assert client.ingest("docs", tmp_path / "docs.parquet").written == 2
    got = client.get_online_features(["docs:body"], [{"user": "a"}, {"user": "b"}]).to_dict()
    assert got["docs:body"] == ["x" * 70000, "y"]


@pytest.mark.parametrize("case,words", [
    ("event timestamp after 2255", "years 1685-2255"),
    ("event timestamp before 1685", "years 1685-2255"),
    ("uint64 join key over INT64", "driver_id"),
    ("INT64 beyond int64", "INT64 range"),
    ("null event timestamp", "event_timestamp"),
])
def test_ingest_names_the_bad_row_and_writes_nothing_of_its_chunk(seeded, raw, case, words):
    arrays = seeded_arrays(**BAD[case])
    if case == "uint64 join key over INT64":
        arrays = {**arrays, "maximum_daily_rides": pa.array([1, 2, 3], pa.uint64())}
    table = pa.table(arrays)
    result = seeded.ingest("driver_trips", pa.concat_tables([_shifted(table, 10), table]), chunk_rows=3)
    assert result.rejected_chunks == [(3, 6)] and result.written == 3
    assert [r.row for r in result.rejections] == [4]
    assert "row 4" in result.rejections[0].reason and words in result.rejections[0].reason
    statuses = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": i} for i in (1, 3, 11)])
    assert statuses.statuses()["driver_trips:rating"] == [FieldStatus.NOT_FOUND] * 2 + [FieldStatus.PRESENT]


def _shifted(table: pa.Table, by: int) -> pa.Table:
    """The same table for other entities (driver_id + by), all clean."""
    clean = pa.table(seeded_arrays())
    ids = pa.array([i + by for i in range(1, 4)], table.schema.field("driver_id").type)
    columns = {n: clean.column(n) for n in clean.column_names} | {"driver_id": ids}
    columns = {n: c.cast(table.schema.field(n).type) for n, c in columns.items()}
    return pa.table(columns).select(table.column_names)


@pytest.mark.parametrize("kind", ["parquet", "csv", "dataframe", "arrow"])
def test_clean_chunks_of_every_source_take_the_column_path(seeded, tmp_path, kind):
    """Clean data never falls back to the row loop (which would be correct, only slow)."""
    from test_ingest import trips, write_source

    from feast_lua.ingest import _plan_columns
    from feast_lua.ingest_reader import chunks as _chunks
    from feast_lua.ingest_reader import open_source, table_target

    data = trips(25)
    data["rating"] = [None, math.nan, *data["rating"][2:]]
    registry = seeded.registry.get(seeded.project)
    spec = registry.tables["driver_trips"]
    src, columns, csv = open_source(table_target(spec, {"driver_id": ValueType.INT64}),
                                    write_source(kind, data, tmp_path), "event_timestamp")
    for chunk in _chunks(src.batches(columns, 10), 10):
        _plan_columns(registry, spec, chunk, columns, csv)


def test_random_columns_pack_byte_for_byte_as_the_row_loop(shops):
    """Random values of every vectorized type, nulls and NaN among them."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    int64 = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
                      st.integers(-70000, 70000), st.integers(-(2**33), 2**33))
    float64 = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                        st.floats(-3.4e38, 3.4e38))
    text = st.one_of(st.none(), st.text(max_size=40), st.text(min_size=250, max_size=300))
    blob = st.one_of(st.none(), st.binary(max_size=300))
    row = st.tuples(int64, float64, text, blob, st.one_of(st.none(), st.booleans()))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(row, min_size=1, max_size=30))
    def check(rows):
        n = len(rows)
        ints, floats, texts, blobs, bools = (list(c) for c in zip(*rows))
        base = every_type().slice(0, 1)
        table = pa.table({
            "user": [f"u{i}" for i in range(n)], "shop": pa.array(range(n), pa.int32()),
            "i64": pa.array(ints, pa.int64()),
            "i32": pa.array([None if v is None else v % 2**31 for v in ints], pa.int64()),
            "d": pa.array(floats, pa.float64()), "f": pa.array(floats, pa.float64()),
            "s": pa.array(texts, pa.string()), "b": pa.array(blobs, pa.binary()),
            "ok": pa.array(bools, pa.bool_()),
            "t": pa.array([None] * n, base.schema.field("t").type),
            "tags": pa.array([None] * n, base.schema.field("tags").type),
            "d_from_int": pa.array([None if v is None else v % 2**52 for v in ints], pa.int64()),
            "f_from_f32": pa.array([None] * n, pa.float32()),
            "event_timestamp": pa.array([NOW] * n, pa.timestamp("us")),
        })
        try:
            fast, slow = both_plans(shops, "visits", table)
        except Unsupported:  # only where the row loop refuses the chunk too (FLOAT past float32)
            with pytest.raises(FeastLuaError, match="float32"):
                both_plans_slow(shops, "visits", table)
            return
        assert (fast.keys, fast.rows) == (slow.keys, slow.rows)

    check()
