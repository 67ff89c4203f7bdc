"""Read latency side by side: feast-lua, the raw HMGET pipeline and the real feast package.

    python benchmarks/bench_vs_feast.py [--quick] [--no-feast] [--redis-url URL] [--json FILE]

One command, end to end: it starts a throwaway redis-server from docker/redis.conf (unless
given --redis-url), builds the Feast venv on first use (benchmarks/.feast-venv, see
feast_venv.py), loads the data, checks that every contender returns the same values, and prints
two tables. --quick finishes in under 2 minutes once the Feast venv exists; --no-feast leaves
out contender (c) and needs no Feast venv.

Data (bench_data.py): tables bench_f10 and bench_f50 (entity driver_id, 10 and 50 features) and
bench_c10 (entity customer_id, 10 features), in project "bench". It is written twice into the
same Redis: by feast-lua (Client.apply + write_rows, its packed layout) and by Feast itself
(store.write_to_online_store, Feast's layout). With --no-feast Feast's layout is written
byte-exact by feast_layout.py instead; with Feast, sampled keys are checked byte for byte
against feast_layout.py, so both ways store the same bytes.

Contenders, on the same rows of the same Redis:

  a  feast-lua: client.get_online_features(refs, rows).to_dict(include_statuses=True)
  b  the floor: a redis-py + hiredis pipeline (transaction=False) of one HMGET per entity key
     and feature view over the keys Feast wrote, with the same fields Feast's own read asks
     for (the features plus _ts:<view>). Keys and fields are built before timing, and nothing
     is decoded and no statuses are computed.
  c  Feast: store.get_online_features(features=refs, entity_rows=rows).to_dict(), in a
     persistent subprocess in the Feast venv (feast_side.py), timed there, one request per
     command, so the pipe to it is not in the time.

Shapes: 1, 100, 1000 and 10,000 entity rows, each at 10 and 50 features (--quick: up to 1000
rows), plus a two-table request: bench_f10 and bench_c10 with different entity sets
(driver_id and customer_id in every row; 2 keys per row).

The contenders take turns one request at a time, cycling through every order of a, b and c,
and the ratios a/b and a/c are the medians of the ratios within each round (p25-p75 beside
them), which stay meaningful when other processes take the CPU for a while. p99 is a
nearest-rank percentile: with fewer than 100 rounds it is the maximum.

Server-side cost, after each shape's rounds: each contender alone runs a batch of the same
request (about 0.3 s; 3 batches each, in turns, median reported; --quick: 2 batches), with
CONFIG RESETSTAT before each batch (this resets the server's statistics). Reported per
fetched field (rows x features): the INFO commandstats usec of every command it sent, and the
redis-server main thread's CPU time (INFO cpu), which also counts reading, parsing and
answering each command, the part commandstats leaves out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import feast_layout  # noqa: E402
import feast_venv  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, FieldStatus  # noqa: E402

# (rows, features or "2t" for the two-table request)
QUICK_SHAPES = [(1, 10), (1, 50), (100, 10), (100, 50), (1000, 10), (1000, 50), (100, "2t")]
FULL_SHAPES = [(1, 10), (1, 50), (100, 10), (100, 50), (1000, 10), (1000, 50), (10000, 10),
               (10000, 50), (100, "2t"), (1000, "2t")]
CHECK_SAMPLE = 50  # keys per view compared byte for byte against feast_layout
FEAST_WRITE_BATCH = 5000


class Shape(common.ReadContenders):
    def __init__(self, rows: int, width, entities: int, client: Client, raw: redis.Redis,
                 feast: feast_venv.FeastSide | None):
        two = width == "2t"
        self.tables = list(data.TWO_TABLES) if two else [data.BY_WIDTH[width]]
        self.label = f"{rows}x(10+10), 2 tables" if two else f"{rows}x{width}"
        self.name = f"{rows}x{width}"
        self.rows = data.shape_rows(rows, entities, seed=rows * 1000 + (99 if two else width), two_tables=two)
        self.refs = [ref for t in self.tables for ref in common.refs(t)]
        self.cells = rows * len(self.refs)
        self.client, self.raw, self.feast = client, raw, feast
        self.layouts = [feast_layout.ViewLayout(t) for t in self.tables]
        # b's commands: one HMGET per (row, view), the key and field list built in advance.
        self.commands = [(layout.key(row[layout.join_key]), layout.read_fields)
                         for row in self.rows for layout in self.layouts]
        if feast is not None:
            self.feast_result = feast.ask("prepare", name=self.name, refs=self.refs, rows=self.rows)["result"]

    def check(self, event_us: int) -> None:
        """Every contender must return the same values, or the comparison means nothing."""
        ours = self.a()
        floor = self.b()
        ts = feast_layout.timestamp(event_us)
        for table, layout in zip(self.tables, self.layouts):
            join_key = layout.join_key
            ids = [row[join_key] for row in self.rows]
            replies = floor[self.layouts.index(layout)::len(self.layouts)]
            for i, name in enumerate(layout.names):
                expected = [data.read_back(i, e) for e in ids]
                if ours[f"{table}:{name}"] != expected:
                    raise AssertionError(f"{self.label}: feast-lua's {table}:{name} is not the data")
                if self.feast is not None and self.feast_result[f"{table}__{name}"] != expected:
                    raise AssertionError(f"{self.label}: Feast's {table}:{name} is not the data")
                stored = [feast_layout.value(data.feature_type(i), data.feature_value(i, e)) for e in ids]
                if [reply[i] for reply in replies] != stored:
                    raise AssertionError(f"{self.label}: the pipeline's {table}:{name} is not the data")
            if any(reply[-1] != ts for reply in replies):
                raise AssertionError(f"{self.label}: the pipeline's _ts:{table} is not the event time")
        statuses = {s for column in ours["statuses"].values() for s in column}
        if statuses != {FieldStatus.PRESENT}:
            raise AssertionError(f"{self.label}: expected every status PRESENT, got {statuses}")


def measure(shape: Shape, budget_s: float, max_rounds: int, min_rounds: int, reps: int) -> dict:
    local = {"a": shape.a, "b": shape.b}
    names = ["a", "b"] + (["c"] if shape.feast is not None else [])
    for _ in range(2):  # warm-up: script cache, registry caches, connection pools
        for name in local.values():
            name()
        if shape.feast is not None:
            shape.c_times(1)
    orders = list(itertools.permutations(names))
    times: dict[str, list[float]] = {n: [] for n in names}
    deadline = time.perf_counter() + budget_s
    for i in range(max_rounds):
        if i >= min_rounds and time.perf_counter() > deadline:
            break
        for name in orders[i % len(orders)]:
            if name == "c":
                times["c"].append(shape.c_times(1)[0])
            else:
                start = time.perf_counter_ns()
                local[name]()
                times[name].append((time.perf_counter_ns() - start) / 1e6)
    result = {"shape": shape.label, "cells": shape.cells, "rounds": len(times["a"])}
    for name in names:
        result[f"{name}_median"] = statistics.median(times[name])
        result[f"{name}_p99"] = common.percentile(times[name], 0.99)
    for other in names[1:]:
        ratios = [x / y for x, y in zip(times["a"], times[other])]
        result[f"a/{other}"] = statistics.median(ratios)
        result[f"a/{other}_p25"] = common.percentile(ratios, 0.25)
        result[f"a/{other}_p75"] = common.percentile(ratios, 0.75)
    result.update(server_cost(shape, result, names, reps))
    return result


def server_cost(shape: Shape, timed: dict, names: list[str], reps: int) -> dict:
    """Redis CPU per fetched field: each contender alone, `reps` batches of about 0.3 s each,
    in turns (a, b, c, a, b, c, ...); the median batch is reported."""
    cmd: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    out = {}
    for _ in range(reps):
        for name in names:
            n = max(3, min(300, math.ceil(300 / max(timed[f"{name}_median"], 0.01))))
            shape.raw.config_resetstat()
            cpu_before = common.main_thread_cpu_us(shape.raw)
            if name == "c":
                shape.c_times(n)
            else:
                run = getattr(shape, name)
                for _ in range(n):
                    run()
            cpu_after = common.main_thread_cpu_us(shape.raw)
            usec, calls = common.command_usec(shape.raw)
            fields = n * shape.cells
            cmd[name].append(usec / fields)
            cpu[name].append((cpu_after - cpu_before) / fields)
            out[f"{name}_commands"] = {k: v / n for k, v in calls.items()}
    for name in names:
        out[f"{name}_cmd_us_per_field"] = statistics.median(cmd[name])
        out[f"{name}_cpu_us_per_field"] = statistics.median(cpu[name])
    return out


def load(client: Client, raw: redis.Redis, feast: feast_venv.FeastSide | None, entities: int,
         event_us: int) -> None:
    common.apply_tables(client, data.TABLES)
    for table in data.TABLES:
        started = time.perf_counter()
        common.write_lua(client, table, range(entities), event_us)
        lua_s = time.perf_counter() - started
        layout = feast_layout.ViewLayout(table)
        started = time.perf_counter()
        if feast is None:
            layout.write(raw, range(entities), event_us)
            how = "feast_layout.py"
        else:
            for start in range(0, entities, FEAST_WRITE_BATCH):
                feast.ask("write", view=table, start=start, stop=min(entities, start + FEAST_WRITE_BATCH),
                          event_us=event_us)
            how = "Feast"
            sample = range(0, entities, max(1, entities // CHECK_SAMPLE))
            problems = layout.mismatches(raw, sample, event_us)
            if problems:
                raise AssertionError("Feast wrote other bytes than feast_layout.py: "
                                     + "; ".join(problems[:5]))
        print(f"  {table}: {entities} rows by feast-lua in {lua_s:.1f} s, by {how} in"
              f" {time.perf_counter() - started:.1f} s", file=sys.stderr)


def latency_table(results: list[dict], feast: bool) -> str:
    head = ["shape (rows x features)", "cells", "feast-lua median / p99 ms",
            "HMGET pipeline median / p99 ms"]
    if feast:
        head.append("Feast median / p99 ms")
    head.append("a/b (p25-p75)")
    if feast:
        head.append("a/c (p25-p75)")
    head.append("rounds")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results:
        cells = [r["shape"], str(r["cells"])]
        for name in ("a", "b", "c") if feast else ("a", "b"):
            cells.append(f"{r[f'{name}_median']:.3f} / {r[f'{name}_p99']:.3f}")
        for other in ("b", "c") if feast else ("b",):
            cells.append(f"{r[f'a/{other}']:.3f} ({r[f'a/{other}_p25']:.2f}-{r[f'a/{other}_p75']:.2f})")
        cells.append(str(r["rounds"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(results: list[dict], feast: bool) -> str:
    names = ("a", "b", "c") if feast else ("a", "b")
    who = " / ".join(names)
    lines = [f"| shape | commandstats us per field, {who} | a/b | main-thread CPU us per field, {who} "
             "| a/b | commands per request, a / b |", "|---|---:|---:|---:|---:|---|"]
    for r in results:
        cmd = " / ".join(f"{r[f'{n}_cmd_us_per_field']:.3f}" for n in names)
        cpu = " / ".join(f"{r[f'{n}_cpu_us_per_field']:.3f}" for n in names)
        counts = " / ".join(", ".join(f"{c} {k:g}" for c, k in sorted(r[f"{n}_commands"].items()))
                            for n in ("a", "b"))
        lines.append(f"| {r['shape']} | {cmd} | {r['a_cmd_us_per_field'] / r['b_cmd_us_per_field']:.2f} "
                     f"| {cpu} | {r['a_cpu_us_per_field'] / r['b_cpu_us_per_field']:.2f} | {counts} |")
    return "\n".join(lines)


def run(url: str, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    library_at_start = common.library_version()
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    entities = max(rows for rows, _ in shapes)
    budget_s, max_rounds, min_rounds = (6.0, 3000, 8) if args.quick else (20.0, 20000, 12)
    raw = redis.Redis.from_url(url)
    feast = None
    versions = {}
    try:
        if not args.no_feast:
            feast = feast_venv.FeastSide(feast_venv.ensure_venv(Path(args.feast_venv)))
            host_port = url.split("//", 1)[1].split("/", 1)[0]
            versions = feast.ask("init", redis=host_port, project=data.PROJECT, tables=list(data.TABLES))
        with Client(url, project=data.PROJECT) as client:
            started = time.perf_counter()
            event_us = common.event_us_now()
            load(client, raw, feast, entities, event_us)
            print(f"loaded {entities} entities x {len(data.TABLES)} tables in both layouts in"
                  f" {time.perf_counter() - started:.1f} s", file=sys.stderr)
            results = []
            for rows, width in shapes:
                shape = Shape(rows, width, entities, client, raw, feast)
                shape.check(event_us)
                r = measure(shape, budget_s, max_rounds, min_rounds, 2 if args.quick else 3)
                results.append(r)
                line = f"{r['shape']}: a {r['a_median']:.3f} ms, b {r['b_median']:.3f} ms"
                if feast is not None:
                    line += f", c {r['c_median']:.3f} ms, a/c {r['a/c']:.3f}"
                print(f"{line}, a/b {r['a/b']:.3f} over {r['rounds']} rounds", file=sys.stderr)
    finally:
        if feast is not None:
            feast.close()
        raw.close()
    elapsed = time.perf_counter() - began
    print(f"\n{common.environment(url)}")
    if common.library_version() != library_at_start:
        print(f"(the library changed during the run: it was at {library_at_start} at the start)")
    if versions:
        print(f"Feast venv: feast {versions['feast']}, redis-py {versions['redis_py']}, hiredis"
              f" {versions['hiredis']}, pandas {versions['pandas']}, Python {versions['python']}")
    print(f"{'quick' if args.quick else 'full'} mode, {elapsed:.0f} s\n")
    print(latency_table(results, feast is not None))
    print("\nRedis CPU per fetched field (each contender alone, after the rounds above):\n")
    print(cost_table(results, feast is not None))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": common.environment(url), "feast": versions,
                                               "mode": "quick" if args.quick else "full",
                                               "seconds": elapsed, "results": results}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 1000 rows, short time budgets")
    parser.add_argument("--no-feast", action="store_true", help="leave out contender (c), the feast package")
    parser.add_argument("--redis-url", help="use this Redis (it is written to, its stats are reset)")
    parser.add_argument("--feast-venv", default=str(feast_venv.DEFAULT_VENV),
                        help="where the Feast venv is (built there when missing)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    with common.redis_url(args.redis_url) as url:
        run(url, args)


if __name__ == "__main__":
    main()
