"""Ingest rows/s side by side: feast-lua's Client.ingest, a raw HSET pipeline and the real feast.

    .venv/bin/python benchmarks/bench_ingest_vs_feast.py            # 1,000,000 rows x 10 features
    .venv/bin/python benchmarks/bench_ingest_vs_feast.py --quick    # 100,000 rows, well under 2 min
    .venv/bin/python benchmarks/bench_ingest_vs_feast.py --rows N --redis-url URL --no-feast

One command: it starts a throwaway redis-server from docker/redis.conf (unless given
--redis-url), builds the Feast venv on first use (benchmarks/.feast-venv, see feast_venv.py) and
writes the same rows three times into the same Redis, FLUSHALL before each contender.

Data: table bench_f10 of bench_data.py (entity driver_id, 10 features whose types cycle through
INT64, DOUBLE, FLOAT, STRING and BOOL), entity ids 0..N-1, values bench_data.feature_value, one
event time for every row (Feast's write takes one per row too; they are all equal here).

Contenders:

  a  feast-lua: Client.ingest("bench_f10", <Parquet file>) with its defaults (10,000-row chunks),
     the file written before timing (pyarrow, 100,000-row row groups, Arrow types int64, float64,
     float32, string, bool, timestamp[us, UTC]). The time includes reading and decoding the
     Parquet file. --table-source adds a2: the same data as an in-memory pyarrow Table.
  b  the floor: redis-py + hiredis, a non-transactional pipeline of one HSET per entity of the
     bytes Feast stores (feast_layout.py: Feast's key, 10 murmur3 fields + _ts:bench_f10, Value
     protos), 10,000 rows per pipeline, no checks, no TTL. The bytes are encoded before each
     pipeline outside the timer (that encoding time is reported on its own); the time is
     redis-py building the commands, sending them and reading the replies.
  c  Feast: store.write_to_online_store("bench_f10", df) in the Feast venv (feast_side.py's
     "write" op), in DataFrames of 100,000 rows built inside that process outside its timer;
     the time is the sum of the write_to_online_store calls.

Each contender's keys are checked afterwards: a and c by reading back sampled entities (a with
get_online_features, c byte for byte against feast_layout.py), b by the same byte check.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import feast_layout  # noqa: E402
import feast_venv  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, FieldStatus  # noqa: E402

TABLE = "bench_f10"
GROUP = 100_000  # Parquet row group, and rows per Feast DataFrame
FLOOR_BATCH = 10_000  # rows per floor pipeline (feast-lua's default chunk_rows)
SAMPLE = 50  # entities read back per contender
ARROW_TYPES = {"INT64": pa.int64(), "DOUBLE": pa.float64(), "FLOAT": pa.float32(),
               "STRING": pa.string(), "BOOL": pa.bool_()}


def arrow_table(start: int, stop: int, event_us: int) -> pa.Table:
    ids = range(start, stop)
    join_key, width = data.TABLES[TABLE]
    columns = {join_key: pa.array(ids, pa.int64())}
    for i in range(width):
        columns[data.feature_name(i)] = pa.array([data.feature_value(i, e) for e in ids],
                                                 ARROW_TYPES[data.feature_type(i)])
    columns["event_timestamp"] = pa.array([event_us] * len(ids), pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def write_parquet(path: Path, rows: int, event_us: int) -> None:
    with pq.ParquetWriter(path, arrow_table(0, min(rows, 1), event_us).schema) as writer:
        for start in range(0, rows, GROUP):
            writer.write_table(arrow_table(start, min(rows, start + GROUP), event_us))


def sample_ids(rows: int) -> list[int]:
    return sorted({*range(0, rows, max(1, rows // SAMPLE)), rows - 1})


def check_lua(client: Client, rows: int) -> None:
    ids = sample_ids(rows)
    result = client.get_online_features(common.refs(TABLE), [{data.DRIVER: e} for e in ids])
    values = result.to_dict()
    for i, name in enumerate(data.feature_names(TABLE)):
        if values[f"{TABLE}:{name}"] != [data.read_back(i, e) for e in ids]:
            raise AssertionError(f"feast-lua's {TABLE}:{name} is not the data")
    statuses = {s for column in result.statuses().values() for s in column}
    if statuses != {FieldStatus.PRESENT}:
        raise AssertionError(f"feast-lua: expected every status PRESENT, got {statuses}")


def check_layout(raw: redis.Redis, rows: int, event_us: int, who: str) -> None:
    problems = feast_layout.ViewLayout(TABLE).mismatches(raw, sample_ids(rows), event_us)
    if problems:
        raise AssertionError(f"{who} wrote other bytes than feast_layout.py: " + "; ".join(problems[:5]))


def redis_state(raw: redis.Redis) -> tuple[int, int]:
    return raw.dbsize(), raw.info("memory")["used_memory"]


def breakdown(url: str, raw: redis.Redis, path: Path, rows: int) -> dict:
    """Contender a's loop again (feast_lua.ingest's steps, same chunks), timed step by step and
    without its overlap (ingest packs chunk n+1 while Redis writes chunk n): Parquet -> Arrow
    chunks, packing from Arrow columns (pack_arrow), the split into calls, and the calls'
    packing and round trips (loader.call_many)."""
    from feast_lua.ingest import DEFAULT_CHUNK_ROWS, _plan_columns
    from feast_lua.ingest_reader import chunks, open_source, table_target

    raw.flushall()
    steps = dict.fromkeys(("read Parquet into Arrow chunks", "pack rows and keys from Arrow columns",
                           "plan.calls", "call_many (pack, send, Lua, replies)"), 0.0)
    names = list(steps)
    with Client(url, project=data.PROJECT) as client:
        common.apply_tables(client, [TABLE])
        spec = client._table(data.PROJECT, TABLE)
        registry = client.registry.get(data.PROJECT)
        entity_types = {n: registry.entities[n].value_type for n in spec.entities}
        src, columns, _ = open_source(table_target(spec, entity_types), str(path), "event_timestamp")
        pieces = chunks(src.batches(columns, DEFAULT_CHUNK_ROWS), DEFAULT_CHUNK_ROWS)
        cpu_before = common.main_thread_cpu_us(raw)
        while True:
            t0 = time.perf_counter()
            chunk = next(pieces, None)
            t1 = time.perf_counter()
            steps[names[0]] += t1 - t0
            if chunk is None:
                break
            plan = _plan_columns(registry, spec, chunk, columns, False)
            t2 = time.perf_counter()
            calls = plan.calls(0, client.max_rows_per_write, client.max_cells_per_write,
                               client.max_bytes_per_write)
            t3 = time.perf_counter()
            client.loader.call_many("write", calls)
            t4 = time.perf_counter()
            for name, took in zip(names[1:], (t2 - t1, t3 - t2, t4 - t3)):
                steps[name] += took
        steps["redis-server main-thread CPU during it"] = (common.main_thread_cpu_us(raw) - cpu_before) / 1e6
        check_lua(client, rows)
    return steps


def run_lua(url: str, raw: redis.Redis, source, rows: int) -> dict:
    raw.flushall()
    with Client(url, project=data.PROJECT) as client:
        common.apply_tables(client, [TABLE])
        cpu_before = common.main_thread_cpu_us(raw)
        started = time.perf_counter()
        result = client.ingest(TABLE, source, progress=False)
        seconds = time.perf_counter() - started
        cpu_s = (common.main_thread_cpu_us(raw) - cpu_before) / 1e6
        if (result.written, result.skipped, result.rejected) != (rows, 0, 0):
            raise AssertionError(f"feast-lua ingest: {result.summary()}")
        check_lua(client, rows)
    keys, used = redis_state(raw)
    return {"s": seconds, "keys": keys, "used": used, "cpu_s": cpu_s}


def run_floor(raw: redis.Redis, rows: int, event_us: int) -> dict:
    raw.flushall()
    layout = feast_layout.ViewLayout(TABLE)
    encode_s = send_s = 0.0
    cpu_before = common.main_thread_cpu_us(raw)
    for start in range(0, rows, FLOOR_BATCH):
        began = time.perf_counter()
        encoded = [(layout.key(e), layout.mapping(e, event_us))
                   for e in range(start, min(rows, start + FLOOR_BATCH))]
        encode_s += time.perf_counter() - began
        began = time.perf_counter()
        pipe = raw.pipeline(transaction=False)
        for key, mapping in encoded:
            pipe.hset(key, mapping=mapping)
        pipe.execute()
        send_s += time.perf_counter() - began
    cpu_s = (common.main_thread_cpu_us(raw) - cpu_before) / 1e6
    check_layout(raw, rows, event_us, "the floor")
    keys, used = redis_state(raw)
    return {"s": send_s, "encode_s": encode_s, "keys": keys, "used": used, "cpu_s": cpu_s}


def run_feast(feast: feast_venv.FeastSide, raw: redis.Redis, rows: int, event_us: int) -> dict:
    raw.flushall()
    seconds = 0.0
    cpu_before = common.main_thread_cpu_us(raw)
    for start in range(0, rows, GROUP):
        seconds += feast.ask("write", view=TABLE, start=start, stop=min(rows, start + GROUP),
                             event_us=event_us)["s"]
    cpu_s = (common.main_thread_cpu_us(raw) - cpu_before) / 1e6
    check_layout(raw, rows, event_us, "Feast")
    keys, used = redis_state(raw)
    return {"s": seconds, "keys": keys, "used": used, "cpu_s": cpu_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--no-feast", action="store_true", help="leave out contender (c)")
    parser.add_argument("--table-source", action="store_true",
                        help="also time a2: Client.ingest of an in-memory pyarrow Table")
    parser.add_argument("--breakdown", action="store_true",
                        help="also re-run a's loop step by step and show where its time goes")
    parser.add_argument("--redis-url", help="use this Redis (it is FLUSHALLed and written to)")
    parser.add_argument("--feast-venv", default=str(feast_venv.DEFAULT_VENV),
                        help="where the Feast venv is (built there when missing)")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    began = time.perf_counter()
    event_us = common.event_us_now()
    results: dict[str, dict] = {}
    versions = {}
    steps: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, common.redis_url(args.redis_url) as url:
        path = Path(folder) / f"{TABLE}.parquet"
        started = time.perf_counter()
        write_parquet(path, rows, event_us)
        print(f"wrote {rows:,} rows to {path.stat().st_size / 1e6:.0f} MB of Parquet in"
              f" {time.perf_counter() - started:.1f} s", file=sys.stderr)
        raw = redis.Redis.from_url(url)
        feast = None
        try:
            if not args.no_feast:
                feast = feast_venv.FeastSide(feast_venv.ensure_venv(Path(args.feast_venv)))
                host_port = url.split("//", 1)[1].split("/", 1)[0]
                versions = feast.ask("init", redis=host_port, project=data.PROJECT, tables=[TABLE])
            results["a"] = run_lua(url, raw, str(path), rows)
            print(f"a feast-lua (Parquet): {results['a']['s']:.1f} s", file=sys.stderr)
            if args.table_source:
                table = pq.read_table(path)
                results["a2"] = run_lua(url, raw, table, rows)
                del table
                print(f"a2 feast-lua (pyarrow Table): {results['a2']['s']:.1f} s", file=sys.stderr)
            results["b"] = run_floor(raw, rows, event_us)
            print(f"b floor: {results['b']['s']:.1f} s (+ {results['b']['encode_s']:.1f} s encoding)",
                  file=sys.stderr)
            if args.breakdown:
                steps = breakdown(url, raw, path, rows)
            if feast is not None:
                results["c"] = run_feast(feast, raw, rows, event_us)
                print(f"c Feast: {results['c']['s']:.1f} s", file=sys.stderr)
            environment = common.environment(url)
        finally:
            if feast is not None:
                feast.close()
            raw.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{environment}")
    if versions:
        print(f"Feast venv: feast {versions['feast']}, redis-py {versions['redis_py']}, hiredis"
              f" {versions['hiredis']}, pandas {versions['pandas']}, Python {versions['python']}")
    print(f"{rows:,} rows x {data.TABLES[TABLE][1]} features, {time.perf_counter() - began:.0f} s in all,"
          f" this process's peak RSS {peak_mib:.0f} MiB\n")
    labels = {"a": "a feast-lua `Client.ingest(Parquet file)`",
              "a2": "a2 feast-lua `Client.ingest(pyarrow Table)`",
              "b": "b floor: pipelined HSET, Feast's layout, pre-encoded",
              "c": "c Feast `write_to_online_store(DataFrame)`"}
    print("| contender | seconds | rows/s | redis-server main-thread CPU s | Redis keys"
          " | Redis used_memory MB |\n|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {labels[name]} | {r['s']:.2f} | {rows / r['s']:,.0f} | {r['cpu_s']:.2f} | {r['keys']:,}"
              f" | {r['used'] / 1e6:,.0f} |")
    b = results["b"]
    print(f"\nfloor's encoding, outside its time: {b['encode_s']:.2f} s ({rows / b['encode_s']:,.0f} rows/s);"
          f" encoding + pipeline: {rows / (b['s'] + b['encode_s']):,.0f} rows/s")
    a = results["a"]["s"]
    ratios = [f"a/b (feast-lua rows/s over the floor's) {b['s'] / a:.3f}"]
    if "c" in results:
        c = results["c"]["s"]
        ratios.insert(0, f"a/c (feast-lua rows/s over Feast's) {c / a:.2f}x, goal >= 10x:"
                         f" {'met' if c / a >= 10 else 'missed'}")
        if "a2" in results:
            ratios.append(f"a2/c {c / results['a2']['s']:.2f}x")
    print("\n".join(ratios))
    if steps:
        total = sum(v for k, v in steps.items() if not k.startswith("redis-server"))
        print(f"\nWhere a's time goes (its loop re-run step by step, {total:.2f} s,"
              f" {rows / total:,.0f} rows/s):\n\n| step | seconds | share |\n|---|---:|---:|")
        for name, took in steps.items():
            share = "" if name.startswith("redis-server") else f"{took / total:.0%}"
            print(f"| {name} | {took:.2f} | {share} |")


if __name__ == "__main__":
    main()
