"""feast-lua on Redis Cluster against one server: requests/s and latency of 100x10 reads.

    python benchmarks/bench_cluster.py [--quick] [--seconds S] [--clients N]

Starts a throwaway redis-server and a throwaway 3-primary + 3-replica cluster
(feast_lua.cluster_server.LocalCluster), writes the same 10,000 entities of bench_f10 to both,
in feast-lua's layout (Client.write_rows) and in Feast's (feast_layout.py), then runs each
contender for --seconds (default 10, --quick 3), in two halves in the order
s-a s-b c-a c-b c-b c-a s-b s-a so drift hits all alike:

  s-a  feast-lua Client on the single server: get_online_features(...).to_dict(include_statuses=True)
  s-b  the raw pipeline on the single server: redis-py + hiredis, 100 HMGETs (10 fields + _ts)
  c-a  feast-lua Client on the cluster: one EVALSHA_RO per slot group, in one ClusterPipeline
  c-b  the raw pipeline on the cluster: a redis-py ClusterPipeline of the same 100 HMGETs

Each request reads 100 random entities (64 prepared sets). --clients N runs N client processes
per contender (default 1: the latency of one caller); requests/s counts all of them over the
phase's wall time. The cluster's six nodes, the single server and the clients share this
machine's cores, so the cluster cannot show more throughput than one core gives here; what it
shows is the cost of splitting a request by slot.
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
from redis.cluster import RedisCluster  # noqa: E402

from feast_lua import Client, FieldStatus  # noqa: E402
from feast_lua.cluster_server import LocalCluster  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402

TABLE = "bench_f10"
ROWS = 100
ENTITIES = 10_000
REQUEST_SETS = 64
ORDER = ("s-a", "s-b", "c-a", "c-b", "c-b", "c-a", "s-b", "s-a")
LABELS = {"s-a": "feast-lua, one server", "s-b": "HMGET pipeline, one server",
          "c-a": "feast-lua, cluster", "c-b": "HMGET ClusterPipeline, cluster"}


def load(single_url: str, cluster_url: str) -> None:
    event_us = common.event_us_now()
    for url, raw in ((single_url, redis.Redis.from_url(single_url)),
                     (cluster_url, RedisCluster.from_url(cluster_url))):
        with Client(url, project=data.PROJECT) as client:
            common.load_both_layouts(client, raw, TABLE, ENTITIES, event_us)
        raw.close()


def worker(index: int, urls: dict[str, str], commands, results, barrier) -> None:
    rng = random.Random(2000 + index)
    sets = [[{data.DRIVER: e} for e in rng.sample(range(ENTITIES), ROWS)] for _ in range(REQUEST_SETS)]
    layout = feast_layout.ViewLayout(TABLE)
    key_sets = [[layout.key(row[data.DRIVER]) for row in rows] for rows in sets]
    fields, refs = layout.read_fields, common.refs(TABLE)
    clients = {"s": Client(urls["s"], project=data.PROJECT), "c": Client(urls["c"], project=data.PROJECT)}
    raws = {"s": redis.Redis.from_url(urls["s"]), "c": RedisCluster.from_url(urls["c"])}

    def feast_lua(topology: str):
        client = clients[topology]

        def run(i: int) -> None:
            client.get_online_features(refs, sets[i % REQUEST_SETS]).to_dict(include_statuses=True)
        return run

    def pipeline(topology: str):
        raw = raws[topology]

        def run(i: int) -> None:
            pipe = raw.pipeline(transaction=False)
            for key in key_sets[i % REQUEST_SETS]:
                pipe.hmget(key, fields)
            pipe.execute()
        return run

    contenders = {"s-a": feast_lua("s"), "s-b": pipeline("s"), "c-a": feast_lua("c"), "c-b": pipeline("c")}
    for topology, client in clients.items():  # warm up, and check every cell is PRESENT
        reply = client.get_online_features(refs, sets[0]).to_dict(include_statuses=True)
        assert {s for c in reply["statuses"].values() for s in c} == {FieldStatus.PRESENT}, topology
    for i in range(20):
        for run in contenders.values():
            run(i)
    while True:
        command = commands.get()
        if command is None:
            break
        name, seconds = command
        run, latencies = contenders[name], []
        barrier.wait()
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            run(len(latencies))
            latencies.append(time.perf_counter() - t0)
        results.put((name, start, time.perf_counter(), latencies))
    for client in clients.values():
        client.close()


def run(urls: dict[str, str], clients: int, seconds: float) -> dict[str, dict]:
    ctx = mp.get_context("spawn")
    results, barrier = ctx.Queue(), ctx.Barrier(clients + 1)
    queues = [ctx.Queue() for _ in range(clients)]
    procs = [ctx.Process(target=worker, args=(i, urls, queues[i], results, barrier), daemon=True)
             for i in range(clients)]
    for p in procs:
        p.start()
    phases: dict[str, list] = {name: [] for name in LABELS}
    try:
        for name in ORDER:
            for q in queues:
                q.put((name, seconds / 2))
            barrier.wait(timeout=180)
            phases[name].append([results.get(timeout=seconds + 120) for _ in range(clients)])
    finally:
        common.stop_workers(queues, procs)
    out = {}
    for name, runs in phases.items():
        requests = sum(len(g[3]) for got in runs for g in got)
        wall = sum(max(g[2] for g in got) - min(g[1] for g in got) for got in runs)
        latencies = [x * 1e3 for got in runs for g in got for x in g[3]]
        out[name] = {"rps": requests / wall, "requests": requests, "median_ms": statistics.median(latencies),
                     "p99_ms": common.percentile(latencies, 0.99)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per contender instead of 10")
    parser.add_argument("--seconds", type=float, help="seconds per contender")
    parser.add_argument("--clients", type=int, default=1, help="client processes (default 1)")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    began = time.perf_counter()
    with RedisServer() as single, LocalCluster() as cluster:
        urls = {"s": single.url, "c": cluster.url}
        load(urls["s"], urls["c"])
        results = run(urls, args.clients, seconds)
        env = common.environment(single.url)
    print(f"\n{env}\nbench_cluster: {args.clients} client process(es), {ROWS}x10 requests, {seconds:g} s"
          f" per contender, cluster of 3 primaries + 3 replicas,"
          f" {time.perf_counter() - began:.0f} s in all\n")
    print("| contender | requests/s | median ms | p99 ms | requests |")
    print("|---|---:|---:|---:|---:|")
    for name, label in LABELS.items():
        r = results[name]
        print(f"| {name} {label} | {r['rps']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f}"
              f" | {r['requests']} |")
    s_a, s_b, c_a, c_b = (results[n] for n in ("s-a", "s-b", "c-a", "c-b"))
    print(f"\ncluster / one server, feast-lua: requests/s {c_a['rps'] / s_a['rps']:.2f}x,"
          f" p99 {c_a['p99_ms'] / s_a['p99_ms']:.2f}x")
    print(f"feast-lua / HMGET pipeline (latency a/b, lower is better): one server p99"
          f" {s_a['p99_ms'] / s_b['p99_ms']:.2f}, median {s_a['median_ms'] / s_b['median_ms']:.2f};"
          f" cluster p99 {c_a['p99_ms'] / c_b['p99_ms']:.2f},"
          f" median {c_a['median_ms'] / c_b['median_ms']:.2f}")


if __name__ == "__main__":
    main()
