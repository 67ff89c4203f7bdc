"""Batch ingestion throughput and client memory: a Parquet file of N rows into a fresh Redis.

    .venv/bin/python benchmarks/bench_ingest.py               # 10,000,000 rows, about 3-4 min
    .venv/bin/python benchmarks/bench_ingest.py --quick       # 200,000 rows, a few seconds
    .venv/bin/python benchmarks/bench_ingest.py --rows N --redis-url URL

The file (driver_id, two FLOAT features, one INT64 feature, event_timestamp) is written with
pyarrow in 500,000-row row groups, then read back by `Client.ingest` in its default chunks. It
reports rows per second, the client's peak resident memory (bounded memory is the point: it must
not grow with the file) and Redis `used_memory`, and checks the first and last entity read back.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType  # noqa: E402

GROUP = 500_000
SCHEMA = pa.schema([("driver_id", pa.int64()), ("average_daily_rides", pa.float32()),
                    ("maximum_daily_rides", pa.int64()), ("rating", pa.float32()),
                    ("event_timestamp", pa.timestamp("us", tz="UTC"))])
TABLE = FeatureTable("driver_trips", ["driver_id"], [
    Feature("average_daily_rides", ValueType.FLOAT), Feature("maximum_daily_rides", ValueType.INT64),
    Feature("rating", ValueType.FLOAT)], max_age=timedelta(days=1))


def write_file(path: Path, rows: int) -> None:
    now_us = common.event_us_now()
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for start in range(0, rows, GROUP):
            count = min(GROUP, rows - start)
            ids = pa.array(range(start, start + count), pa.int64())
            floats = pa.array([1.5] * count, pa.float32())
            stamps = pa.array([now_us - i for i in range(count)], pa.timestamp("us", tz="UTC"))
            writer.write_table(pa.table([ids, floats, ids, floats, stamps], schema=SCHEMA))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 rows")
    parser.add_argument("--redis-url", help="use this Redis (it is written to)")
    args = parser.parse_args()
    rows = 200_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as folder, common.redis_url(args.redis_url) as url:
        path = Path(folder) / "trips.parquet"
        write_file(path, rows)
        client = Client(url)
        client.apply([Entity("driver_id", ValueType.INT64), TABLE])
        started = time.perf_counter()
        result = client.ingest("driver_trips", str(path), progress=False)
        seconds = time.perf_counter() - started
        check = client.get_online_features(["driver_trips:maximum_daily_rides"],
                                           [{"driver_id": 0}, {"driver_id": rows - 1}])
        assert check.to_dict()["driver_trips:maximum_daily_rides"] == [0, rows - 1]
        assert set(check.statuses()["driver_trips:maximum_daily_rides"]) == {FieldStatus.PRESENT}
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        used = client.redis.info("memory")["used_memory"]
        print(common.environment(url))
        print(f"| rows | file MB | seconds | rows/s | written | skipped | rejected | client peak RSS MiB"
              f" | Redis used_memory MB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
              f"| {rows:,} | {path.stat().st_size / 1e6:.0f} | {seconds:.0f} | {rows / seconds:,.0f} "
              f"| {result.written:,} | {result.skipped:,} | {result.rejected:,} | {peak_mib:.0f} "
              f"| {used / 1e6:,.0f} |")


if __name__ == "__main__":
    main()
