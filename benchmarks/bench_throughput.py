"""Throughput under concurrency: feast-lua against the raw HMGET pipeline, 100x10 requests.

    python benchmarks/bench_throughput.py [--quick] [--clients 8] [--seconds S] [--redis-url URL]

N client processes (multiprocessing, default 8) each send requests back to back, one at a
time, for a fixed duration, against the same Redis; the contenders never run at the same time:

  a  client.get_online_features(refs, rows).to_dict(include_statuses=True), 100 rows x 10
     features of bench_f10 (feast-lua's packed layout, written by Client.write_rows);
  b  a redis-py + hiredis pipeline (transaction=False) of 100 HMGETs of the 10 feature fields
     plus _ts:bench_f10, over the same entities in Feast's layout (written byte-exact by
     feast_layout.py, which bench_vs_feast.py checks against what Feast itself writes),
     keys and fields built in advance, nothing decoded.

Each contender runs for --seconds in total (default 10, --quick 3), split into two halves in
the order a, b, b, a, so slow drift on the machine hits both alike. Each request uses one of 64
prepared sets of 100 random entities (out of 10,000), different in every process. Reported:
requests/s (all processes together, over the wall time from the first start to the last end),
median and p99 latency over every request, and how busy Redis's main thread was (its CPU time
over the wall time; 100% means Redis is the bottleneck). The client processes, redis-server
and anything else share this machine's cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import feast_layout  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, FieldStatus  # noqa: E402

TABLE = "bench_f10"
ROWS = 100
ENTITIES = 10_000
REQUEST_SETS = 64
MAX_REQUESTS = 2_000_000  # per process and phase: a bound, never reached in practice


def worker(index: int, url: str, commands, results, barrier) -> None:
    """One client process: waits for (contender, seconds) commands, runs them, reports."""
    rng = random.Random(1000 + index)
    sets = [[{data.DRIVER: e} for e in rng.sample(range(ENTITIES), ROWS)] for _ in range(REQUEST_SETS)]
    layout = feast_layout.ViewLayout(TABLE)
    key_sets = [[layout.key(row[data.DRIVER]) for row in rows] for rows in sets]
    fields = layout.read_fields
    refs = common.refs(TABLE)
    client = Client(url, project=data.PROJECT)
    raw = redis.Redis.from_url(url)

    def a(i: int) -> None:
        client.get_online_features(refs, sets[i % REQUEST_SETS]).to_dict(include_statuses=True)

    def b(i: int) -> None:
        pipe = raw.pipeline(transaction=False)
        for key in key_sets[i % REQUEST_SETS]:
            pipe.hmget(key, fields)
        pipe.execute()

    # Warm up and check once: every value present, in both layouts.
    reply = client.get_online_features(refs, sets[0]).to_dict(include_statuses=True)
    assert {s for c in reply["statuses"].values() for s in c} == {FieldStatus.PRESENT}
    pipe = raw.pipeline(transaction=False)
    for key in key_sets[0]:
        pipe.hmget(key, fields)
    assert all(v is not None for reply in pipe.execute() for v in reply)
    for i in range(20):
        a(i)
        b(i)
    contenders = {"a": a, "b": b}
    while True:
        command = commands.get()
        if command is None:
            break
        name, seconds = command
        run = contenders[name]
        latencies = []
        barrier.wait()
        start = time.perf_counter()
        deadline = start + seconds
        for i in range(MAX_REQUESTS):
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            run(i)
            latencies.append(time.perf_counter() - t0)
        results.put((index, name, start, time.perf_counter(), latencies))
    client.close()
    raw.close()


def load(url: str) -> None:
    raw = redis.Redis.from_url(url)
    with Client(url, project=data.PROJECT) as client:
        common.load_both_layouts(client, raw, TABLE, ENTITIES, common.event_us_now())
    raw.close()


def run(url: str, clients: int, seconds: float) -> list[dict]:
    load(url)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(clients + 1)
    queues = [ctx.Queue() for _ in range(clients)]
    procs = [ctx.Process(target=worker, args=(i, url, queues[i], results, barrier), daemon=True)
             for i in range(clients)]
    for p in procs:
        p.start()
    monitor = redis.Redis.from_url(url)
    phases: dict[str, list] = {"a": [], "b": []}
    busy: dict[str, list[float]] = {"a": [], "b": []}
    try:
        for name in ("a", "b", "b", "a"):
            for q in queues:
                q.put((name, seconds / 2))
            barrier.wait(timeout=120)  # every process is ready: the phase starts now
            cpu0, t0 = common.main_thread_cpu_us(monitor), time.perf_counter()
            got = [results.get(timeout=seconds + 120) for _ in range(clients)]
            cpu1, t1 = common.main_thread_cpu_us(monitor), time.perf_counter()
            busy[name].append((cpu1 - cpu0) / 1e6 / (t1 - t0))
            phases[name].append(got)
            requests = sum(len(g[4]) for g in got)
            wall = max(g[3] for g in got) - min(g[2] for g in got)
            print(f"  {name}: {requests / wall:.0f} requests/s over {wall:.1f} s", file=sys.stderr)
    finally:
        common.stop_workers(queues, procs)
        monitor.close()
    out = []
    for name, label in (("a", "feast-lua"), ("b", "HMGET pipeline")):
        requests, wall, latencies = 0, 0.0, []
        for got in phases[name]:
            requests += sum(len(g[4]) for g in got)
            wall += max(g[3] for g in got) - min(g[2] for g in got)
            latencies += [x * 1e3 for g in got for x in g[4]]
        out.append({"contender": label, "requests": requests, "seconds": wall,
                    "rps": requests / wall, "median_ms": statistics.median(latencies),
                    "p99_ms": common.percentile(latencies, 0.99),
                    "redis_busy": statistics.mean(busy[name])})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per contender instead of 10")
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--seconds", type=float, help="seconds per contender")
    parser.add_argument("--redis-url", help="use this Redis (it is written to)")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    began = time.perf_counter()
    with common.redis_url(args.redis_url) as url:
        results = run(url, args.clients, seconds)
        env = common.environment(url)
    print(f"\n{env}\n{args.clients} client processes, {ROWS}x10 requests, {seconds:g} s per contender,"
          f" {time.perf_counter() - began:.0f} s in all\n")
    print("| contender | requests/s | median ms | p99 ms | requests | Redis main thread busy |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['contender']} | {r['rps']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} "
              f"| {r['requests']} | {r['redis_busy']:.0%} |")
    print(f"\nthroughput a/b: {results[0]['rps'] / results[1]['rps']:.2f}x;"
          f" p99 a/b: {results[0]['p99_ms'] / results[1]['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
