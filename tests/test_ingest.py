"""Client.ingest: Parquet, CSV, DataFrame and Arrow sources into a real Redis, newest-wins."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from conftest import NOW, SEED_REFS, trip_row

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

from feast_lua import (  # noqa: E402
    ConfigurationError,
    Entity,
    Feature,
    FeatureTable,
    FieldStatus,
    IngestResult,
    SchemaError,
    ValueType,
)
from feast_lua.ingest_reader import chunks as _chunks  # noqa: E402

COLUMNS = ["driver_id", "average_daily_rides", "maximum_daily_rides", "rating", "event_timestamp"]


def trips(n: int, start: int = 0, ts=NOW) -> dict[str, list]:
    ids = list(range(start, start + n))
    return {"driver_id": ids, "average_daily_rides": [i / 2 for i in ids],
            "maximum_daily_rides": ids, "rating": [i / 4 for i in ids],
            "event_timestamp": [ts] * n}


def arrow(data: dict[str, list]) -> pa.Table:
    if "event_timestamp" not in data:
        return pa.table(data)
    return pa.table({**data, "event_timestamp": pa.array(data["event_timestamp"], pa.timestamp("us", "UTC"))})


def write_source(kind: str, data: dict[str, list], tmp_path):
    if kind == "arrow":
        return arrow(data)
    if kind == "dataframe":
        return pd.DataFrame(data)
    if kind == "parquet":
        path = tmp_path / "trips.parquet"
        pq.write_table(arrow(data), path, row_group_size=7)
        return path
    path = tmp_path / "trips.csv"
    pd.DataFrame(data).to_csv(path, index=False)
    return str(path)


def read(client, ids):
    return client.get_online_features(SEED_REFS, [{"driver_id": i} for i in ids]).to_dict()


def keyspace(raw):
    return {k: raw.dump(k) for k in raw.scan_iter()}


@pytest.mark.parametrize("kind", ["parquet", "csv", "dataframe", "arrow"])
def test_every_source_stores_the_bytes_write_rows_stores(seeded, raw, tmp_path, kind):
    data = trips(25)
    result = seeded.ingest("driver_trips", write_source(kind, data, tmp_path), chunk_rows=10)
    assert (result.rows_read, result.written, result.skipped, result.rejected) == (25, 25, 0, 0)
    assert result.rejections == [] and result.ignored_columns == []
    ingested = keyspace(raw)
    raw.flushall()
    seeded.apply([Entity("driver_id", ValueType.INT64), seeded.get_feature_table("driver_trips")])
    seeded.write_rows("driver_trips", [trip_row(i, i / 2, i, i / 4) for i in range(25)])
    registry_key = [k for k in ingested if not k.startswith(b"{}fl:")]
    assert {k: v for k, v in keyspace(raw).items() if k not in registry_key} == \
        {k: v for k, v in ingested.items() if k not in registry_key}


def test_chunks_regroup_batches():
    batches = [pa.record_batch({"a": list(range(n))}) for n in (3, 0, 7, 1, 12)]
    sizes = [t.num_rows for t in _chunks(iter(batches), 5)]
    assert sizes == [5, 5, 5, 5, 3]


def test_extra_columns_are_ignored(seeded, tmp_path):
    data = {**trips(3), "colour": ["red"] * 3}
    result = seeded.ingest("driver_trips", write_source("parquet", data, tmp_path))
    assert result.written == 3 and result.ignored_columns == ["colour"]


@pytest.mark.parametrize("kind", ["parquet", "csv", "dataframe"])
@pytest.mark.parametrize("drop,words", [
    ("rating", ["feature column 'rating'", "FLOAT"]),
    ("driver_id", ["join key column 'driver_id'", "INT64"]),
    ("event_timestamp", ["timestamp column 'event_timestamp'"]),
])
def test_missing_column_fails_before_anything_is_written(seeded, raw, tmp_path, kind, drop, words):
    data = trips(30)
    del data[drop]
    before = keyspace(raw)
    with pytest.raises(SchemaError) as info:
        seeded.ingest("driver_trips", write_source(kind, data, tmp_path), chunk_rows=10)
    for word in words:
        assert word in str(info.value)
    assert keyspace(raw) == before


@pytest.mark.parametrize("column,values,words", [
    ("maximum_daily_rides", ["nine"] * 30, ["'maximum_daily_rides'", "string", "INT64"]),
    ("rating", [True] * 30, ["'rating'", "bool", "FLOAT"]),
    ("driver_id", [float(i) for i in range(30)], ["'driver_id'", "double", "INT64"]),
    ("event_timestamp", ["2024-01-01"] * 30, ["'event_timestamp'", "timestamp"]),
])
def test_wrong_column_type_fails_before_anything_is_written(seeded, raw, tmp_path, column, values, words):
    data = {**trips(30), column: values}
    table = pa.table(data)
    pq.write_table(table, tmp_path / "bad.parquet")
    before = keyspace(raw)
    for source in (tmp_path / "bad.parquet", table):
        with pytest.raises(SchemaError) as info:
            seeded.ingest("driver_trips", source, chunk_rows=10)
        for word in words:
            assert word in str(info.value)
    assert keyspace(raw) == before


def test_undecodable_dataframe_column_fails_before_anything_is_written(seeded, raw):
    frame = pd.DataFrame({**trips(4), "rating": [1.0, "x", 2.0, 3.0]})
    with pytest.raises(SchemaError, match="rating"):
        seeded.ingest("driver_trips", frame)
    assert raw.dbsize() == 1


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_bad_row_in_the_middle_rejects_its_chunk_only(seeded, raw, tmp_path, kind):
    data = trips(50)
    if kind == "csv":
        data["maximum_daily_rides"] = [str(i) for i in range(50)]
        data["maximum_daily_rides"][23] = "nine"
    else:
        data["event_timestamp"] = [NOW] * 50
        data["event_timestamp"][23] = None
        data["driver_id"] = [*range(37), None, *range(38, 50)]
    result = seeded.ingest("driver_trips", write_source(kind, data, tmp_path), chunk_rows=10)
    bad_rows = [23] if kind == "csv" else [23, 37]
    assert [r.row for r in result.rejections] == bad_rows
    assert result.rejected_chunks == ([(20, 30)] if kind == "csv" else [(20, 30), (30, 40)])
    assert result.rows_read == 50 and result.rejected == 10 * len(result.rejected_chunks)
    assert result.written == 50 - result.rejected and not result.stopped
    if kind == "csv":
        assert "row 23" in result.rejections[0].reason and "'nine'" in result.rejections[0].reason
    else:
        assert "row 23" in result.rejections[0].reason and "event_timestamp" in result.rejections[0].reason
        assert "row 37" in result.rejections[1].reason and "driver_id" in result.rejections[1].reason
    statuses = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": i} for i in range(50)])
    found = [s is not FieldStatus.NOT_FOUND for s in statuses.statuses()["driver_trips:rating"]]
    rejected = {i for a, b in result.rejected_chunks for i in range(a, b)}
    assert found == [i not in rejected for i in range(50)]  # no chunk half-applied


def test_on_error_stop_ends_at_the_first_bad_chunk(seeded, tmp_path):
    data = trips(50)
    data["rating"] = [*([1.0] * 23), 1e39, *([1.0] * 26)]  # outside float32
    result = seeded.ingest("driver_trips", pa.table(data | {"event_timestamp": data["event_timestamp"]}),
                           chunk_rows=10, on_error="stop")
    assert result.stopped and result.written == 20 and result.rows_read == 30
    assert [(r.row, "float32" in r.reason) for r in result.rejections] == [(23, True)]


def test_out_of_range_int32_is_a_bad_row(seeded, client):
    client.apply([Entity("shop", ValueType.STRING),
                  FeatureTable("shops", ["shop"], [Feature("n", ValueType.INT32)])])
    table = pa.table({"shop": ["a", "b", "c"], "n": [1, 2**40, 3],
                      "event_timestamp": pa.array([NOW] * 3, pa.timestamp("us", "UTC"))})
    result = client.ingest("shops", table, chunk_rows=2)
    assert result.written == 1 and [r.row for r in result.rejections] == [1]
    assert "INT32" in result.rejections[0].reason


@pytest.mark.parametrize("kind", ["parquet", "csv", "dataframe"])
def test_shuffled_rows_end_newest(seeded, tmp_path, kind):
    rng = random.Random(7)
    rows = [(d, v) for d in range(20) for v in range(6)]  # version v at NOW + v minutes
    rng.shuffle(rows)
    data = {"driver_id": [d for d, _ in rows], "average_daily_rides": [float(v) for _, v in rows],
            "maximum_daily_rides": [v for _, v in rows], "rating": [v / 2 for _, v in rows],
            "event_timestamp": [NOW + timedelta(minutes=v) for _, v in rows]}
    result = seeded.ingest("driver_trips", write_source(kind, data, tmp_path), chunk_rows=17)
    assert result.rows_read == 120 and result.written + result.skipped == 120 and result.skipped > 0
    d = read(seeded, range(20))
    assert d["driver_trips:maximum_daily_rides"] == [5] * 20
    assert d["driver_trips:average_daily_rides"] == [5.0] * 20
    again = seeded.ingest("driver_trips", write_source(kind, data, tmp_path))
    assert (again.written, again.skipped) == (0, 120)  # a replay changes nothing


@pytest.mark.parametrize("kind", ["parquet", "csv", "dataframe"])
def test_nulls_and_nan_read_as_null_value(seeded, tmp_path, kind):
    data = {**trips(4), "rating": [1.0, None, math.nan, 2.0],
            "maximum_daily_rides": pd.array([1, None, 3, None], dtype="Int64")}
    if kind == "parquet":
        data["maximum_daily_rides"] = [1, None, 3, None]
    source = write_source(kind, data, tmp_path)
    assert seeded.ingest("driver_trips", source).written == 4
    response = seeded.get_online_features(SEED_REFS, [{"driver_id": i} for i in range(4)])
    statuses = response.statuses()
    assert statuses["driver_trips:rating"] == [FieldStatus.PRESENT, FieldStatus.NULL_VALUE,
                                                FieldStatus.NULL_VALUE, FieldStatus.PRESENT]
    assert statuses["driver_trips:maximum_daily_rides"] == [FieldStatus.PRESENT, FieldStatus.NULL_VALUE] * 2


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_created_timestamp_column_breaks_ties(seeded, tmp_path, kind):
    data = {**trips(1), "rating": [1.0]}
    data = {k: v * 3 for k, v in data.items()}
    data["rating"] = [1.0, 3.0, 2.0]
    data["created"] = [NOW, NOW + timedelta(seconds=2), NOW + timedelta(seconds=1)]
    data["ts"] = data.pop("event_timestamp")
    if kind == "parquet":
        path = tmp_path / "t.parquet"
        pq.write_table(pa.table(data), path)
    else:
        path = tmp_path / "t.csv"
        pd.DataFrame(data).to_csv(path, index=False)
    result = seeded.ingest("driver_trips", path, timestamp_column="ts", created_timestamp_column="created")
    assert (result.written, result.skipped) == (2, 1)
    assert read(seeded, [0])["driver_trips:rating"] == [3.0]
    stamps = seeded.get_online_features(["driver_trips:rating"], [{"driver_id": 0}]).event_timestamps()
    assert stamps["driver_trips:rating"] == [NOW]


def test_lists_timestamps_bytes_and_bools(client, tmp_path):
    client.apply([Entity("user", ValueType.BYTES), FeatureTable("profile", ["user"], [
        Feature("tags", ValueType.STRING_LIST), Feature("scores", ValueType.FLOAT_LIST),
        Feature("seen", ValueType.UNIX_TIMESTAMP), Feature("ok", ValueType.BOOL),
        Feature("blob", ValueType.BYTES)])])
    table = pa.table({
        "user": [b"u1", b"u2"], "tags": [["a", "b"], None], "scores": [[1.5], [2.0, 3.0]],
        "seen": pa.array([NOW, None], pa.timestamp("ns", "UTC")), "ok": [True, False],
        "blob": [b"\x00", b"\xff"], "event_timestamp": pa.array([NOW, NOW], pa.timestamp("ns"))})
    pq.write_table(table, tmp_path / "p.parquet")
    assert client.ingest("profile", tmp_path / "p.parquet").written == 2
    refs = ["profile:tags", "profile:scores", "profile:seen", "profile:ok", "profile:blob"]
    d = client.get_online_features(refs, [{"user": b"u1"}, {"user": b"u2"}]).to_dict()
    assert d["profile:tags"] == [["a", "b"], None] and d["profile:scores"] == [[1.5], [2.0, 3.0]]
    assert d["profile:seen"] == [NOW, None] and d["profile:ok"] == [True, False]
    assert d["profile:blob"] == [b"\x00", b"\xff"]
    table.to_pandas().to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(SchemaError, match="'tags' is a list feature; a CSV file cannot hold lists"):
        client.ingest("profile", tmp_path / "p.csv")


def test_ttl_applies(seeded, raw):
    seeded.ingest("driver_trips", arrow(trips(2)), ttl=timedelta(hours=1))
    assert all(0 < raw.pttl(k) <= 3_600_000 for k in raw.scan_iter(b"{}fl:*driver*"))


def test_bad_options(seeded, tmp_path):
    with pytest.raises(ConfigurationError, match="chunk_rows"):
        seeded.ingest("driver_trips", arrow(trips(1)), chunk_rows=0)
    with pytest.raises(ConfigurationError, match="on_error"):
        seeded.ingest("driver_trips", arrow(trips(1)), on_error="maybe")
    with pytest.raises(ConfigurationError, match="no such file"):
        seeded.ingest("driver_trips", tmp_path / "nope.parquet")
    with pytest.raises(ConfigurationError, match="source must be"):
        seeded.ingest("driver_trips", [{"driver_id": 1}])
    with pytest.raises(ConfigurationError, match="timestamp_column"):
        seeded.ingest("driver_trips", arrow(trips(1)), timestamp_column="rating")


def test_progress_bar_and_summary(seeded, capsys):
    result = seeded.ingest("driver_trips", arrow(trips(30)), chunk_rows=10, progress=True)
    err = capsys.readouterr().err
    assert "ingest driver_trips: rows read 30, written 30, skipped as older 0, rejected 0" in err
    assert isinstance(result, IngestResult)
    seeded.ingest("driver_trips", arrow(trips(30)), chunk_rows=10)  # not a TTY: quiet
    assert capsys.readouterr().err == ""


def test_a_failed_write_call_stops_the_ingest_and_later_chunks_stay_unwritten(seeded, raw):
    """Chunks are written on a background thread; its failure still ends ingest() with the
    error, and no chunk after the failed one is sent."""
    from feast_lua import ScriptError
    from feast_lua.keys import entity_key

    keys = [entity_key("default", {"driver_id": (ValueType.INT64, i)}) for i in range(40)]
    raw.set(keys[15], b"not a hash")
    with pytest.raises(ScriptError, match="WRONGTYPE"):
        seeded.ingest("driver_trips", arrow(trips(40)), chunk_rows=10)
    written = [raw.type(k) == b"hash" for k in keys]
    assert written[:10] == [True] * 10  # chunk 0, before the bad key
    assert not any(written[10:])  # chunk 1 holds the bad key: its one call wrote nothing; 2, 3 never sent
