"""Where the time of one read goes: a stage breakdown and a cProfile of a rows x features request.

    python benchmarks/profile_read.py [--quick] [--rows 1000] [--features 10] [--redis-url URL]

The stages are the steps Client.get_online_features(...).to_dict(include_statuses=True) takes,
run one by one with the same functions, so each can be timed alone:

  bind       row checks and key encoding (RefPlan.bind); the refs' plan (parse_refs, registry
             lookup, ARGV) is made once beforehand, as the client caches it per registry version
  pack       packing the EVALSHA_RO command (hiredis.pack_command, as the client's loader does)
  redis      send, script run, receive: the round trip; "inside Redis" is commandstats' share
  decode     decode_reply (msgpack.unpackb of the reply) + GetOnlineFeaturesResponse()
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import redis  # noqa: E402
from hiredis import pack_command  # noqa: E402

from feast_lua import Client  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.request import plan_refs  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse, decode_reply  # noqa: E402

REPS = 200  # calls per measurement (--quick: 20)


def setup(client: Client, rows: int, features: int) -> tuple[list[str], list[dict]]:
    """bench_data's table of `features` features, loaded for entities 0..rows-1."""
    table = data.BY_WIDTH[features]
    common.apply_tables(client, [table])
    common.write_lua(client, table, range(rows), common.event_us_now())
    return common.refs(table), [{data.DRIVER: e} for e in range(rows)]


def stages(client: Client, raw: redis.Redis, refs: list[str], entity_rows: list[dict], reps: int) -> None:
    script = client.loader.scripts["read"]
    command = "EVALSHA_RO" if script.read_only else "EVALSHA"  # as the loader sends it
    connection = client.redis.connection_pool.get_connection()
    took: dict[str, list[float]] = {}

    def lap(name: str, start: int) -> int:
        now = time.perf_counter_ns()
        took.setdefault(name, []).append((now - start) / 1e3)
        return now

    client.get_online_features(refs, entity_rows)  # loads the script and caches the registry
    # The client plans the refs once per registry version and reuses that plan (not timed here).
    ref_plan = plan_refs(client.registry.get(client.project), parse_refs(refs))
    raw.config_resetstat()
    for _ in range(reps):
        t = time.perf_counter_ns()
        plan = ref_plan.bind(entity_rows)
        t = lap("bind", t)
        keys, args = plan.keys, plan.args  # one call: the request is under the client's limits
        packed = pack_command((command, script.sha, len(keys), *keys, *args))
        t = lap("pack", t)
        connection.send_packed_command([packed])
        reply = connection.read_response()
        t = lap("redis", t)
        response = GetOnlineFeaturesResponse(plan, [decode_reply(reply)])
        t = lap("decode", t)
        response.to_dict()
        t = lap("to_dict", t)
        response.statuses()
        lap("statuses", t)
    client.redis.connection_pool.release(connection)
    calls, usec = common.script_usec(raw)
    inside = usec / calls
    total = sum(statistics.fmean(v) for v in took.values())
    print("\n| stage | mean us | median us | share of the mean |\n|---|---:|---:|---:|")
    for name, values in took.items():
        mean = statistics.fmean(values)
        print(f"| {name} | {mean:.0f} | {statistics.median(values):.0f} | {mean / total:.0%} |")
        if name == "redis":
            print(f"| (of which inside Redis) | {inside:.0f} | | {inside / total:.0%} |")
    print(f"| total | {total:.0f} | | |")


def profile(client: Client, refs: list[str], entity_rows: list[dict], reps: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        client.get_online_features(refs, entity_rows).to_dict(include_statuses=True)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    print("\ncProfile, sorted by own time, of", reps, "calls:\n")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def run(url: str, rows: int, features: int, reps: int) -> None:
    raw = redis.Redis.from_url(url)
    with Client(url, project=data.PROJECT) as client:
        refs, entity_rows = setup(client, rows, features)
        print(f"{rows} rows x {features} features, {reps} calls per measurement")
        stages(client, raw, refs, entity_rows, reps)
        profile(client, refs, entity_rows, reps)
    raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=10, choices=sorted(data.BY_WIDTH),
                        help="read every feature of bench_data's table of this width")
    parser.add_argument("--redis-url", help="use this Redis (it is written to, stats are reset)")
    parser.add_argument("--quick", action="store_true", help=f"20 calls per measurement, not {REPS}")
    args = parser.parse_args()
    with common.redis_url(args.redis_url) as url:
        run(url, args.rows, args.features, 20 if args.quick else REPS)


if __name__ == "__main__":
    main()
