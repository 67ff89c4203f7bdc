"""FeastLayoutClient.ingest: Parquet, Arrow and pandas sources written in Feast's layout, chunk by
chunk, with bad chunks rejected whole and nothing of them written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from helpers_redis import snapshot
from test_feast_layout_client import DEFS, key

from feast_lua import ConfigurationError, FeastLayoutClient, SchemaError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def feast_client(raw, redis_server):
    with FeastLayoutClient(DEFS, redis_server.url) as c:
        yield c


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"driver_id": list(range(start, start + n)), "rides": list(range(n)),
                         "rating": [0.5] * n, "event_timestamp": [NOW] * n, "note": ["x"] * n})


def test_parquet_in_chunks_reads_back(feast_client, tmp_path):
    path = tmp_path / "trips.parquet"
    frame(25).to_parquet(path)
    result = feast_client.ingest("trips", str(path), chunk_rows=10)
    assert (result.rows_read, result.written, result.skipped, result.rejected) == (25, 25, 0, 0)
    assert result.ignored_columns == ["note"]
    response = feast_client.get_online_features(["trips:rides"], [{"driver_id": d} for d in range(25)])
    assert response.to_dict()["trips:rides"] == list(range(25))
    assert feast_client.ingest("trips", pa.Table.from_pandas(frame(25))).skipped == 25


def test_a_bad_chunk_is_rejected_whole(feast_client, raw):
    df = frame(30)
    df.loc[15, "rating"] = 1e39  # beyond float32, the view's FLOAT
    result = feast_client.ingest("trips", df, chunk_rows=10)
    assert (result.written, result.rejected, result.rejected_chunks) == (20, 10, [(10, 20)])
    assert [r.row for r in result.rejections] == [15]
    assert "row 15 of 'trips', feature 'rating'" in result.rejections[0].reason
    assert not raw.exists(key(10)) and not raw.exists(key(19)) and raw.exists(key(20))
    bad_first = frame(30, start=100)
    bad_first.loc[0, "rating"] = 1e39
    stopped = feast_client.ingest("trips", bad_first, chunk_rows=10, on_error="stop")
    assert stopped.stopped and stopped.written == 0 and stopped.rows_read == 10


def test_missing_columns_write_nothing(feast_client, raw):
    before = snapshot(raw)
    with pytest.raises(SchemaError, match=r"lacks feature column 'rating' \(FLOAT\) of view 'trips'"):
        feast_client.ingest("trips", frame(5).drop(columns=["rating"]))
    with pytest.raises(ConfigurationError, match="got list"):
        feast_client.ingest("trips", [{"driver_id": 1}])
    with pytest.raises(SchemaError, match="column 'rating' has Arrow type .*string.*expected FLOAT"):
        feast_client.ingest("trips", frame(5).assign(rating="bad"))
    mixed = frame(5).astype({"rides": object})
    mixed.loc[2, "rides"] = "two"
    with pytest.raises(SchemaError, match="rides"):
        feast_client.ingest("trips", mixed)
    assert snapshot(raw) == before


def test_timestamp_column_and_key_ttl(feast_client, raw):
    df = frame(3).rename(columns={"event_timestamp": "ts"})
    df["ts"] = [NOW - timedelta(days=3)] * 3
    assert feast_client.ingest("trips", df, timestamp_column="ts", key_ttl=timedelta(minutes=5)).written == 3
    assert 0 < raw.ttl(key(0)) <= 300
    statuses = feast_client.get_online_features(["trips:rides"], [{"driver_id": 0}]).statuses()
    assert statuses["trips:rides"][0].name == "OUTSIDE_MAX_AGE"


def test_csv_reads_back_and_bad_cells_are_bad_rows(feast_client, tmp_path):
    path = tmp_path / "trips.csv"
    df = frame(12)
    df["event_timestamp"] = [NOW.isoformat()] * 12
    df["rides"] = df["rides"].astype(object)
    df.loc[7, "rides"] = "seven"
    df.to_csv(path, index=False)
    result = feast_client.ingest("trips", str(path), chunk_rows=5)
    assert (result.rows_read, result.written, result.rejected) == (12, 7, 5)
    assert [r.row for r in result.rejections] == [7]
    got = feast_client.get_online_features(["trips:rides"], [{"driver_id": d} for d in (0, 4, 11)])
    assert got.to_dict()["trips:rides"] == [0, 4, 11]
