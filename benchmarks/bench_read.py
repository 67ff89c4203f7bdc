"""Read latency: feast-lua's get_online_features against the raw HMGET pipeline floor.

    python benchmarks/bench_read.py [--quick] [--redis-url URL]

Without --redis-url a throwaway redis-server is started from docker/redis.conf (RedisServer).
The same entities are loaded twice into the same Redis:

* through feast_lua's Client (apply + write_rows): one packed hash field per table and entity;
* in Feast's layout under other keys: one hash field per feature (a 4-byte hash of
  "table:feature", as Feast names its fields) plus a "_ts:<table>" timestamp field.

For each shape (entity rows x features) the two contenders run alternately in the same loop:

  a  client.get_online_features(refs, rows).to_dict(include_statuses=True)
  b  a redis-py + hiredis pipeline (transaction=False) of one HMGET per entity over the feature
     fields, with pre-built keys and no decoding and no statuses: the floor any Redis-backed
     client has to pay for the same bytes.

Each pair runs a then b or b then a (alternating), and the ratio is the median of the per-pair
ratios a/b, which stays meaningful when other processes steal CPU during the run. The table
also gives the Redis CPU each contender costs per request (INFO commandstats usec of
evalsha/evalsha_ro for a, of hmget for b, divided by the requests made): what limits
throughput once Redis is busy.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType  # noqa: E402
from feast_lua.keys import KeyEncoder  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402
from feast_lua.values import encoder, timestamp_us  # noqa: E402

ENTITY = "driver_id"
TYPES = [ValueType.INT64, ValueType.DOUBLE, ValueType.FLOAT, ValueType.STRING, ValueType.BOOL]
TABLES = {10: "bench_f10", 50: "bench_f50"}  # features per table -> table name
QUICK_SHAPES = [(1, 10), (100, 10), (1000, 10), (100, 50)]
FULL_SHAPES = [*QUICK_SHAPES, (10000, 50)]
FEAST_PREFIX = b"{}feast:"
WRITE_BATCH = 1000
# What a and b run inside Redis; the loader sends read-only scripts as EVALSHA_RO.
COMMANDS = (("evalsha", "evalsha_ro"), ("hmget",))


def feature_name(i: int) -> str:
    return f"f{i:02d}_{TYPES[i % len(TYPES)].name.lower()}"


def feature_value(i: int, entity_id: int) -> object:
    kind = TYPES[i % len(TYPES)]
    if kind is ValueType.INT64:
        return entity_id * 7 + i
    if kind is ValueType.DOUBLE:
        return entity_id / 3.0 + i
    if kind is ValueType.FLOAT:
        return (entity_id % 1000) / 8.0
    if kind is ValueType.STRING:
        return f"value-{entity_id % 997}-{i}"
    return entity_id % 2 == 0


def table_def(features: int) -> FeatureTable:
    return FeatureTable(
        name=TABLES[features],
        entities=[ENTITY],
        features=[Feature(feature_name(i), TYPES[i % len(TYPES)]) for i in range(features)],
        max_age=timedelta(days=1),
    )


def feast_field(table: str, feature: str) -> bytes:
    """Feast names a feature's hash field by a 4-byte murmur3 hash of "table:feature"."""
    return hashlib.blake2b(f"{table}:{feature}".encode(), digest_size=4).digest()


def load(client: Client, raw: redis.Redis, entities: int, now: datetime) -> None:
    """Writes every table for entity ids 0..entities-1, in both layouts."""
    client.apply([Entity(ENTITY, ValueType.INT64), *(table_def(f) for f in TABLES)])
    key_encoder = KeyEncoder(client.project, [ENTITY], {ENTITY: ValueType.INT64})
    event = now - timedelta(minutes=5)
    event_us = timestamp_us(event).to_bytes(8, "big", signed=True)
    for features, table in TABLES.items():
        names = [feature_name(i) for i in range(features)]
        encoders = [encoder(TYPES[i % len(TYPES)]) for i in range(features)]
        fields = [feast_field(table, n) for n in names]
        for start in range(0, entities, WRITE_BATCH):
            ids = range(start, min(entities, start + WRITE_BATCH))
            rows = [{ENTITY: e, "event_timestamp": event,
                     **{n: feature_value(i, e) for i, n in enumerate(names)}} for e in ids]
            client.write_rows(table, rows)
            pipe = raw.pipeline(transaction=False)
            for row in rows:
                key = feast_key(key_encoder, row)
                mapping = {f: enc(row[n]) for f, enc, n in zip(fields, encoders, names)}
                mapping[f"_ts:{table}".encode()] = event_us
                pipe.hset(key, mapping=mapping)
            pipe.execute()


def feast_key(key_encoder: KeyEncoder, row: dict) -> bytes:
    key = key_encoder.key(row, 0)
    return FEAST_PREFIX + key[key.index(b"fl:") + 3:]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: with fewer than 100 samples p99 is the maximum."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Shape:
    def __init__(self, client: Client, raw: redis.Redis, rows: int, features: int, entities: int):
        table = TABLES[features]
        rng = random.Random(rows * 1000 + features)
        ids = rng.sample(range(entities), rows)
        names = [feature_name(i) for i in range(features)]
        self.label = f"{rows}x{features}"
        self.cells = rows * features
        self.client, self.raw = client, raw
        self.refs = [f"{table}:{n}" for n in names]
        self.entity_rows = [{ENTITY: e} for e in ids]
        key_encoder = KeyEncoder(client.project, [ENTITY], {ENTITY: ValueType.INT64})
        self.feast_keys = [feast_key(key_encoder, row) for row in self.entity_rows]
        self.feast_fields = [feast_field(table, n) for n in names]

    def feast_lua(self) -> dict:
        response = self.client.get_online_features(self.refs, self.entity_rows)
        return response.to_dict(include_statuses=True)

    def hmget_pipeline(self) -> list:
        pipe = self.raw.pipeline(transaction=False)
        fields = self.feast_fields
        for key in self.feast_keys:
            pipe.hmget(key, fields)
        return pipe.execute()

    def check(self) -> None:
        """Both contenders must return the same values, or the comparison means nothing."""
        ours = self.feast_lua()
        floor = self.hmget_pipeline()
        for f, ref in enumerate(self.refs):
            column = [msgpack.unpackb(reply[f]) for reply in floor]
            if ours[ref] != column:
                raise AssertionError(f"{self.label}: {ref} differs between the two layouts")
        statuses = {s for column in ours["statuses"].values() for s in column}
        if statuses != {FieldStatus.PRESENT}:
            raise AssertionError(f"{self.label}: expected every status PRESENT, got {statuses}")


def measure(shape: Shape, budget_s: float, max_pairs: int, min_pairs: int) -> dict:
    contenders = (shape.feast_lua, shape.hmget_pipeline)
    for _ in range(3):  # warm-up: script cache, registry cache, connection pool
        for run in contenders:
            run()
    times: tuple[list[float], list[float]] = ([], [])
    ratios = []
    shape.raw.config_resetstat()  # Redis CPU per request: evalsha is only a's, hmget only b's
    deadline = time.perf_counter() + budget_s
    for pair in range(max_pairs):
        if pair >= min_pairs and time.perf_counter() > deadline:
            break
        order = (0, 1) if pair % 2 == 0 else (1, 0)
        took = [0.0, 0.0]
        for which in order:
            start = time.perf_counter_ns()
            contenders[which]()
            took[which] = (time.perf_counter_ns() - start) / 1e6
        times[0].append(took[0])
        times[1].append(took[1])
        ratios.append(took[0] / took[1])
    stats = shape.raw.info("commandstats")
    server = [sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in cmds) / len(ratios)
              for cmds in COMMANDS]
    return {
        "a_server_us": server[0],
        "b_server_us": server[1],
        "shape": shape.label,
        "cells": shape.cells,
        "pairs": len(ratios),
        "a_median": statistics.median(times[0]),
        "a_p99": percentile(times[0], 0.99),
        "b_median": statistics.median(times[1]),
        "b_p99": percentile(times[1], 0.99),
        "ratio": statistics.median(ratios),
        "ratio_p25": percentile(ratios, 0.25),
        "ratio_p75": percentile(ratios, 0.75),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| shape (rows x features) | cells | feast-lua median ms | feast-lua p99 ms "
        "| HMGET pipeline median ms | HMGET pipeline p99 ms | ratio a/b (p25-p75) | pairs "
        "| Redis CPU us/request a / b |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['shape']} | {r['cells']} | {r['a_median']:.3f} | {r['a_p99']:.3f} "
            f"| {r['b_median']:.3f} | {r['b_p99']:.3f} "
            f"| {r['ratio']:.2f} ({r['ratio_p25']:.2f}-{r['ratio_p75']:.2f}) | {r['pairs']} "
            f"| {r['a_server_us']:.0f} / {r['b_server_us']:.0f} |"
        )
    return "\n".join(lines)


def run(url: str, quick: bool) -> None:
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    entities = max(rows for rows, _ in shapes)
    budget_s, max_pairs, min_pairs = (3.0, 2000, 10) if quick else (15.0, 20000, 30)
    raw = redis.Redis.from_url(url)
    with Client(url) as client:
        started = time.perf_counter()
        load(client, raw, entities, datetime.now(timezone.utc))
        print(f"loaded {entities} entities x {len(TABLES)} tables in both layouts"
              f" in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results = []
        for rows, features in shapes:
            shape = Shape(client, raw, rows, features, entities)
            shape.check()
            results.append(measure(shape, budget_s, max_pairs, min_pairs))
            r = results[-1]
            print(f"{r['shape']}: a {r['a_median']:.3f} ms, b {r['b_median']:.3f} ms,"
                  f" ratio {r['ratio']:.2f} over {r['pairs']} pairs", file=sys.stderr)
    raw.close()
    info = redis.Redis.from_url(url).info("server")
    print(f"\nRedis {info['redis_version']}, redis-py {redis.__version__},"
          f" Python {sys.version.split()[0]}, {'quick' if quick else 'full'} mode\n")
    print(table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, short time budgets")
    parser.add_argument("--redis-url", help="use this Redis (it is written to)")
    args = parser.parse_args()
    if args.redis_url:
        run(args.redis_url, args.quick)
        return
    with RedisServer() as server:
        run(server.url, args.quick)


if __name__ == "__main__":
    main()
