"""Blocking budget: how long one read or write script call holds Redis, by call size.

    python benchmarks/bench_budget.py [--quick] [--redis-url URL] [--target-ms 25]

A script blocks every other client of the server while it runs, so the client splits requests:
Client(max_cells_per_call=..., max_rows_per_write=...). This benchmark times single calls of
lua/read.lua and lua/write.lua of growing size, bypassing the client's splitting, and reads the
time each call spent inside Redis from INFO commandstats (CONFIG RESETSTAT before each call,
so the script's usec is that one call's). SLOWLOG with slowlog-log-slower-than 0 would also log
every command a script runs, which slows the script itself by up to about 25%. The client-side
round trip of the same calls is printed beside it.

The calls of one size run back to back after a warm-up call, so each pays about its own share
of Lua's incremental garbage collection (a big call's garbage is otherwise collected during the
calls that follow it, whatever their size).

* read: cells per call (entity rows x refs) with 1 and 10 refs of bench_f10 and 50 refs of
  bench_f50 (bench_data.py's tables and values), every cell PRESENT. The 1-ref case shows the
  cost of a row;
* write: rows per call at 10 and 50 features, each call replacing stored rows with newer ones
  (the most expensive path: HGET, header parse, HSET for every row).

Per script it fits  time = per_row * rows + per_cell * cells  to the medians (least squares),
then prints the largest call that stays under --target-ms, and what the client's defaults cost.

Last, whole requests through the client with its default limits (10,000 rows x 1, 10 and 50
refs; write_rows of 10,000 rows at 10 and 50 features): how many script calls each became, and
the longest of them by SLOWLOG, with slowlog-log-slower-than 1000 for that part only (the
commands a script runs take microseconds, so at 1 ms only whole script calls are logged; a
call under 1 ms is not logged at all).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.request import plan_read  # noqa: E402
from feast_lua.write import plan_write  # noqa: E402

READ_REFS = {1: 10, 10: 10, 50: 50}  # refs per request -> features of the table they come from
WRITE_FEATURES = (10, 50)
FULL = {"read_cells": (1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
        "write_rows": (250, 500, 1_000, 2_000, 5_000, 10_000), "reps": 7}
QUICK = {"read_cells": (1_000, 10_000, 50_000), "write_rows": (500, 2_000, 5_000), "reps": 3}
SPLIT_ROWS = 10_000  # rows of the whole requests sent through the client
SLOWLOG_US = 1000


class Timer:
    """Times one script call inside Redis (commandstats) and its round trip on the client."""

    def __init__(self, raw: redis.Redis):
        self.raw = raw

    def call(self, client: Client, script: str, keys: list, args: list) -> tuple[float, float]:
        """(ms inside Redis, ms round trip) of one EVALSHA or EVALSHA_RO."""
        self.raw.config_resetstat()
        start = time.perf_counter()
        client.loader.call(script, keys, args)
        wall = (time.perf_counter() - start) * 1e3
        calls, usec = common.script_usec(self.raw)
        if calls != 1:
            raise RuntimeError(f"expected one script call in commandstats, found {calls}")
        return usec / 1e3, wall


def summary(kind: str, width: int, rows: int, samples: list[tuple[float, float]]) -> dict:
    server = [s for s, _ in samples]
    return {
        "kind": kind, "width": width, "rows": rows, "cells": rows * width,
        "median_ms": statistics.median(server), "max_ms": max(server),
        "wall_ms": statistics.median(w for _, w in samples), "reps": len(samples),
    }


def bench_reads(client: Client, timer: Timer, cells_list, reps: int) -> list[dict]:
    registry = client.registry.get(client.project)
    out = []
    for width, features in READ_REFS.items():
        refs = parse_refs(common.refs(data.BY_WIDTH[features])[:width])
        for cells in cells_list:
            rows = cells // width
            plan = plan_read(registry, refs, [{data.DRIVER: e} for e in range(rows)])
            client.loader.call("read", plan.keys, plan.args)  # warm-up, loads the script once
            samples = [timer.call(client, "read", plan.keys, plan.args) for _ in range(reps)]
            out.append(summary("read", width, rows, samples))
            print(f"read {width} refs x {rows} rows: {out[-1]['median_ms']:.1f} ms", file=sys.stderr)
    return out


def bench_writes(client: Client, timer: Timer, rows_list, reps: int, event) -> list[dict]:
    """Every call carries a newer event timestamp than the last, so every row is replaced."""
    out = []
    calls = 0
    for features in WRITE_FEATURES:
        table = data.BY_WIDTH[features]
        for rows in rows_list:
            samples = []
            for rep in range(reps + 1):  # the first call is a warm-up
                calls += 1
                registry = client.registry.get(client.project)
                plan = plan_write(registry, registry.tables[table],
                                  common.rows_at(table, range(rows), event + timedelta(seconds=calls)))
                # One call with every row: the write script's KEYS and ARGV (field, TTL ms, rows).
                keys, args = plan.keys, [table.encode(), 0, *plan.rows]
                if rep:
                    samples.append(timer.call(client, "write", keys, args))
                else:
                    client.loader.call("write", keys, args)
            out.append(summary("write", features, rows, samples))
            print(f"write {features} features x {rows} rows: {out[-1]['median_ms']:.1f} ms",
                  file=sys.stderr)
    return out


def split_requests(client: Client, raw: redis.Redis, reps: int, event) -> list[dict]:
    """Whole requests through the client's own splitting; the longest call by SLOWLOG."""
    entity_rows = [{data.DRIVER: e} for e in range(SPLIT_ROWS)]
    stamps = iter(range(1, 1_000_000))  # every write newer than the last, so every row is replaced

    def read(refs: list[str]) -> None:
        client.get_online_features(refs, entity_rows)

    def write(table: str) -> None:
        event_at = event + timedelta(seconds=next(stamps))
        client.write_rows(table, common.rows_at(table, range(SPLIT_ROWS), event_at))

    requests = [(f"read {SPLIT_ROWS} rows x {width} refs",
                 functools.partial(read, common.refs(data.BY_WIDTH[features])[:width]))
                for width, features in READ_REFS.items()]
    requests += [(f"write {SPLIT_ROWS} rows x {features} features",
                  functools.partial(write, data.BY_WIDTH[features])) for features in WRITE_FEATURES]
    old = raw.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    raw.config_set("slowlog-log-slower-than", SLOWLOG_US)
    out = []
    try:
        for label, request in requests:
            request()  # warm-up
            raw.slowlog_reset()
            raw.config_resetstat()
            walls = []
            for _ in range(reps):
                start = time.perf_counter()
                request()
                walls.append((time.perf_counter() - start) * 1e3)
            calls, usec = common.script_usec(raw)
            logged = [e["duration"] / 1e3 for e in raw.slowlog_get(4096)
                      if e["command"].split(b" ", 1)[0].upper().startswith(b"EVALSHA")]
            out.append({"request": label, "calls": calls / reps, "mean_ms": usec / calls / 1e3,
                        "max_ms": max(logged, default=None), "logged": len(logged),
                        "wall_ms": statistics.median(walls), "reps": reps})
            print(f"{label}: {out[-1]['calls']:g} calls, longest {out[-1]['max_ms']} ms", file=sys.stderr)
    finally:
        raw.config_set("slowlog-log-slower-than", old)
    return out


def fit(results: list[dict]) -> tuple[float, float]:
    """Least squares for median_ms = per_row * rows + per_cell * cells (ms per row, per cell)."""
    rr = sum(r["rows"] ** 2 for r in results)
    cc = sum(r["cells"] ** 2 for r in results)
    rc = sum(r["rows"] * r["cells"] for r in results)
    ry = sum(r["rows"] * r["median_ms"] for r in results)
    cy = sum(r["cells"] * r["median_ms"] for r in results)
    det = rr * cc - rc * rc
    return (ry * cc - cy * rc) / det, (cy * rr - ry * rc) / det


def report(reads: list[dict], writes: list[dict], target_ms: float, quick: bool) -> None:
    print(f"\n{'quick' if quick else 'full'} mode; ms per call inside Redis (INFO commandstats)\n")
    print("| script | refs or features per row | rows per call | cells per call | median ms "
          "| max ms | round trip ms | calls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in [*reads, *writes]:
        print(f"| {r['kind']} | {r['width']} | {r['rows']} | {r['cells']} | {r['median_ms']:.2f}"
              f" | {r['max_ms']:.2f} | {r['wall_ms']:.2f} | {r['reps']} |")
    print("\n| script | us per row | us per cell |")
    print("|---|---:|---:|")
    models = {}
    for kind, results in (("read", reads), ("write", writes)):
        models[kind] = fit(results)
        print(f"| {kind} | {models[kind][0] * 1e3:.2f} | {models[kind][1] * 1e3:.3f} |")
    print(f"\nLargest call under {target_ms:g} ms by the fit, and the cost of the client defaults:\n")
    print("| script | refs or features per row | largest rows per call | largest cells per call "
          "| one call at the client default |")
    print("|---|---:|---:|---:|---:|")
    for kind, widths in (("read", READ_REFS), ("write", WRITE_FEATURES)):
        per_row, per_cell = models[kind]
        for width in widths:
            rows = int(target_ms / (per_row + per_cell * width))
            default_rows, label = default_rows_per_call(kind, width)
            cost = per_row * default_rows + per_cell * default_rows * width
            print(f"| {kind} | {width} | {rows} | {rows * width} | {cost:.1f} ms"
                  f" ({default_rows} rows, {label}) |")


def report_split(results: list[dict]) -> None:
    print("\nWhole requests through the client (default limits); longest call by SLOWLOG"
          f" (calls under {SLOWLOG_US / 1e3:g} ms are not logged):\n")
    print("| request | script calls per request | mean ms per call (commandstats) "
          "| longest call ms (SLOWLOG) | calls logged | request round trip ms | requests |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        longest = "< 1" if r["max_ms"] is None else f"{r['max_ms']:.2f}"
        print(f"| {r['request']} | {r['calls']:g} | {r['mean_ms']:.2f} | {longest} | {r['logged']}"
              f" | {r['wall_ms']:.1f} | {r['reps']} |")


def default_rows_per_call(kind: str, width: int) -> tuple[int, str]:
    """Rows in one call of a one-key-group request split with Client()'s default limits.

    The defaults are read from Client.__init__, whichever limits this version has.
    """
    defaults = Client.__init__.__kwdefaults__ or {}
    names = {"read": ("max_cells_per_call", "max_keys_per_call"),
             "write": ("max_rows_per_write", "max_cells_per_write")}[kind]
    limits = {name: defaults[name] for name in names if name in defaults}
    per_row = {"max_cells_per_call": width, "max_cells_per_write": width}
    rows = min(limit // per_row.get(name, 1) for name, limit in limits.items())
    return max(1, rows), ", ".join(f"{name}={limit}" for name, limit in limits.items())


def run(url: str, quick: bool, target_ms: float) -> None:
    plan = QUICK if quick else FULL
    raw = redis.Redis.from_url(url)
    event_us = common.event_us_now()
    with Client(url, project=data.PROJECT) as client:
        common.apply_tables(client, [data.BY_WIDTH[f] for f in WRITE_FEATURES])
        for features in WRITE_FEATURES:  # enough entities for the largest read and write
            widths = [w for w, f in READ_REFS.items() if f == features]
            needed = max(max(plan["read_cells"]) // min(widths), max(plan["write_rows"]), SPLIT_ROWS)
            common.write_lua(client, data.BY_WIDTH[features], range(needed), event_us)
        timer = Timer(raw)
        reads = bench_reads(client, timer, plan["read_cells"], plan["reps"])
        writes = bench_writes(client, timer, plan["write_rows"], plan["reps"],
                              common.as_datetime(event_us) + timedelta(minutes=1))
        split = split_requests(client, raw, plan["reps"], common.as_datetime(event_us) + timedelta(minutes=2))
    raw.close()
    print(f"\n{common.environment(url)}")
    report(reads, writes, target_ms, quick)
    report_split(split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    parser.add_argument("--redis-url", help="use this Redis (it is written to, stats are reset)")
    parser.add_argument("--target-ms", type=float, default=25.0, help="budget for one call")
    args = parser.parse_args()
    with common.redis_url(args.redis_url) as url:
        run(url, args.quick, args.target_ms)


if __name__ == "__main__":
    main()
