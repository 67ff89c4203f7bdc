"""Where the time of one read goes: a stage breakdown and a cProfile of a rows x features request.

    python benchmarks/profile_read.py [--rows 1000] [--features 10] [--redis-url URL]

The stages are the steps Client.get_online_features(...).to_dict(include_statuses=True) takes,
run one by one with the same functions, so each can be timed alone:

  plan       parse_refs + registry lookup + plan_read (row checks, key encoding, ARGV)
  pack       packing the EVALSHA command (redis-py + hiredis.pack_command)
  redis      send, script run, receive: the round trip; "inside Redis" is commandstats' share
  decode     GetOnlineFeaturesResponse(): msgpack.unpackb of the reply
  to_dict    the entity and value columns
  statuses   the statuses column: one FieldStatus per cell

Then the whole call runs under cProfile and the functions with the most own time are listed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from feast_lua import Client, Entity, Feature, FeatureTable, ValueType  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.request import plan_read  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402

ENTITY = "driver_id"
TYPES = [ValueType.INT64, ValueType.DOUBLE, ValueType.FLOAT, ValueType.STRING, ValueType.BOOL]
REPS = 200


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


def setup(client: Client, rows: int, features: int) -> tuple[list[str], list[dict]]:
    table = FeatureTable(
        name="profiled",
        entities=[ENTITY],
        features=[Feature(feature_name(i), TYPES[i % len(TYPES)]) for i in range(features)],
        max_age=timedelta(days=1),
    )
    client.apply([Entity(ENTITY, ValueType.INT64), table])
    event = datetime.now(timezone.utc) - timedelta(minutes=5)
    names = [feature_name(i) for i in range(features)]
    for start in range(0, rows, 2000):
        client.write_rows("profiled", [
            {ENTITY: e, "event_timestamp": event, **{n: feature_value(i, e) for i, n in enumerate(names)}}
            for e in range(start, min(rows, start + 2000))
        ])
    return [f"profiled:{n}" for n in names], [{ENTITY: e} for e in range(rows)]


def stages(client: Client, raw: redis.Redis, refs: list[str], entity_rows: list[dict]) -> None:
    script = client.loader.scripts["read"]
    command = "EVALSHA_RO" if script.read_only else "EVALSHA"  # as the loader sends it
    connection = client.redis.connection_pool.get_connection()
    took: dict[str, list[float]] = {}

    def lap(name: str, start: int) -> int:
        now = time.perf_counter_ns()
        took.setdefault(name, []).append((now - start) / 1e3)
        return now

    client.get_online_features(refs, entity_rows)  # loads the script and caches the registry
    raw.config_resetstat()
    for _ in range(REPS):
        t = time.perf_counter_ns()
        plan = plan_read(client.registry.get(client.project), parse_refs(refs), entity_rows)
        t = lap("plan", t)
        keys, args = plan.keys, plan.args  # one call: the request is under the client's limits
        packed = connection.pack_command(command, script.sha, len(keys), *keys, *args)
        t = lap("pack", t)
        connection.send_packed_command(packed)
        reply = connection.read_response()
        t = lap("redis", t)
        response = GetOnlineFeaturesResponse(plan, [reply])
        t = lap("decode", t)
        response.to_dict()
        t = lap("to_dict", t)
        response.statuses()
        lap("statuses", t)
    client.redis.connection_pool.release(connection)
    inside = raw.info("commandstats")[f"cmdstat_{command.lower()}"]["usec_per_call"]
    total = sum(statistics.fmean(v) for v in took.values())
    print("\n| stage | mean us | median us | share of the mean |\n|---|---:|---:|---:|")
    for name, values in took.items():
        mean = statistics.fmean(values)
        print(f"| {name} | {mean:.0f} | {statistics.median(values):.0f} | {mean / total:.0%} |")
        if name == "redis":
            print(f"| (of which inside Redis) | {inside:.0f} | | {inside / total:.0%} |")
    print(f"| total | {total:.0f} | | |")


def profile(client: Client, refs: list[str], entity_rows: list[dict]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(REPS):
        client.get_online_features(refs, entity_rows).to_dict(include_statuses=True)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    print("\ncProfile, sorted by own time, of", REPS, "calls:\n")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def run(url: str, rows: int, features: int) -> None:
    raw = redis.Redis.from_url(url)
    with Client(url) as client:
        refs, entity_rows = setup(client, rows, features)
        print(f"{rows} rows x {features} features, {REPS} calls per measurement")
        stages(client, raw, refs, entity_rows)
        profile(client, refs, entity_rows)
    raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--redis-url", help="use this Redis (it is written to, stats are reset)")
    args = parser.parse_args()
    if args.redis_url:
        run(args.redis_url, args.rows, args.features)
        return
    with RedisServer() as server:
        run(server.url, args.rows, args.features)


if __name__ == "__main__":
    main()
