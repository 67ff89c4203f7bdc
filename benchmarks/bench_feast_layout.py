"""feast-lua in Feast's layout against Feast itself, on data Feast wrote.

    python benchmarks/bench_feast_layout.py [--quick] [--redis-url URL] [--json FILE]

One command, end to end: it starts a throwaway redis-server from docker/redis.conf (unless given
--redis-url), builds the Feast venv on first use (benchmarks/.feast-venv, see feast_venv.py),
has Feast apply a repo and write bench_f10 and bench_f50 (bench_data.py: 10 and 50 features of
INT64, DOUBLE, FLOAT, STRING and BOOL, entity driver_id) with write_to_online_store, reads the
definitions back out of Feast's registry (FeastDefinitions.from_dict of describe_repo), checks
that the contenders return the same values, and prints one table.

Contenders, on the same rows of the same Redis, taking turns one request at a time in every order:

  a  feast-lua, Feast layout: FeastLayoutClient.get_online_features(refs, rows)
     .to_dict(include_statuses=True), one EVALSHA_RO of feast_read, Value protos decoded in Python
  b  the floor: a redis-py + hiredis pipeline (transaction=False) of one HMGET per entity key
     with the fields Feast's read asks for (features + _ts:<view>), built before timing, nothing
     decoded
  c  Feast: store.get_online_features(features=refs, entity_rows=rows).to_dict(), timed inside
     its venv's process (feast_side.py), so the pipe to it is not in the time

Ratios are medians of per-round ratios (p25-p75 beside them); p99 is nearest-rank.
"""

from __future__ import annotations

import argparse
import itertools
import json
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

from feast_lua import FeastDefinitions, FeastLayoutClient, FieldStatus  # noqa: E402

QUICK_SHAPES = [(1, 10), (100, 10), (1000, 10)]
FULL_SHAPES = [(1, 10), (100, 10), (1000, 10), (100, 50), (1000, 50)]
TABLES = ["bench_f10", "bench_f50"]
FEAST_WRITE_BATCH = 5000


class Shape(common.ReadContenders):
    def __init__(self, rows: int, width: int, entities: int, client: FeastLayoutClient,
                 raw: redis.Redis, feast: feast_venv.FeastSide):
        self.table = data.BY_WIDTH[width]
        self.label = self.name = f"{rows}x{width}"
        self.rows = data.shape_rows(rows, entities, seed=rows * 1000 + width)
        self.refs = common.refs(self.table)
        self.client, self.raw, self.feast = client, raw, feast
        layout = feast_layout.ViewLayout(self.table)
        self.commands = [(layout.key(row[layout.join_key]), layout.read_fields) for row in self.rows]
        self.feast_result = feast.ask("prepare", name=self.label, refs=self.refs, rows=self.rows)["result"]

    def check(self) -> None:
        ours = self.a()
        for i, name in enumerate(data.feature_names(self.table)):
            expected = [data.read_back(i, row[data.DRIVER]) for row in self.rows]
            if ours[f"{self.table}:{name}"] != expected:
                raise AssertionError(f"{self.label}: feast-lua's {name} is not the data")
            if self.feast_result[f"{self.table}__{name}"] != expected:
                raise AssertionError(f"{self.label}: Feast's {name} is not the data")
        statuses = {s for column in ours["statuses"].values() for s in column}
        if statuses != {FieldStatus.PRESENT}:
            raise AssertionError(f"{self.label}: expected every status PRESENT, got {statuses}")


def measure(shape: Shape, budget_s: float, max_rounds: int, min_rounds: int) -> dict:
    for _ in range(3):  # warm-up: script cache, plan cache, connection pools
        shape.a()
        shape.b()
        shape.c_times(1)
    times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    orders = list(itertools.permutations("abc"))
    deadline = time.perf_counter() + budget_s
    for i in range(max_rounds):
        if i >= min_rounds and time.perf_counter() > deadline:
            break
        for name in orders[i % len(orders)]:
            if name == "c":
                times["c"].append(shape.c_times(1)[0])
                continue
            run = shape.a if name == "a" else shape.b
            start = time.perf_counter_ns()
            run()
            times[name].append((time.perf_counter_ns() - start) / 1e6)
    result: dict = {"shape": shape.label, "rounds": len(times["a"])}
    for name, samples in times.items():
        result[f"{name}_median"] = statistics.median(samples)
        result[f"{name}_p99"] = common.percentile(samples, 0.99)
    for num, den in (("c", "a"), ("a", "b")):
        ratios = [x / y for x, y in zip(times[num], times[den])]
        result[f"{num}/{den}"] = statistics.median(ratios)
        result[f"{num}/{den}_p25"] = common.percentile(ratios, 0.25)
        result[f"{num}/{den}_p75"] = common.percentile(ratios, 0.75)
    return result


def table(results: list[dict]) -> str:
    lines = ["| shape (rows x features) | feast-lua, Feast layout: median / p99 ms "
             "| HMGET pipeline: median / p99 ms | Feast: median / p99 ms | Feast / feast-lua (p25-p75) "
             "| feast-lua / pipeline (p25-p75) | rounds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        cells = [r["shape"]] + [f"{r[f'{n}_median']:.3f} / {r[f'{n}_p99']:.3f}" for n in "abc"]
        for ratio in ("c/a", "a/b"):
            cells.append(f"{r[ratio]:.2f} ({r[f'{ratio}_p25']:.2f}-{r[f'{ratio}_p75']:.2f})")
        cells.append(str(r["rounds"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(url: str, args: argparse.Namespace) -> None:
    began = time.perf_counter()
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    entities = max(rows for rows, _ in shapes)
    budget_s, max_rounds, min_rounds = (5.0, 2000, 8) if args.quick else (20.0, 20000, 12)
    raw = redis.Redis.from_url(url)
    with feast_venv.FeastSide(feast_venv.ensure_venv(Path(args.feast_venv))) as feast:
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        versions = feast.ask("init", redis=host_port, project=data.PROJECT, tables=TABLES)
        event_us = common.event_us_now()
        for view in TABLES:
            for start in range(0, entities, FEAST_WRITE_BATCH):
                feast.ask("write", view=view, start=start, stop=min(entities, start + FEAST_WRITE_BATCH),
                          event_us=event_us)
        definitions = FeastDefinitions.from_dict(feast.ask("describe")["definitions"])
        results = []
        with FeastLayoutClient(definitions, raw) as client:
            for rows, width in shapes:
                shape = Shape(rows, width, entities, client, raw, feast)
                shape.check()
                r = measure(shape, budget_s, max_rounds, min_rounds)
                results.append(r)
                print(f"{r['shape']}: feast-lua {r['a_median']:.3f} ms, pipeline {r['b_median']:.3f} ms,"
                      f" Feast {r['c_median']:.3f} ms, Feast/feast-lua {r['c/a']:.2f}", file=sys.stderr)
    raw.close()
    elapsed = time.perf_counter() - began
    print(f"\n{common.environment(url)}")
    print(f"Feast venv: feast {versions['feast']}, redis-py {versions['redis_py']}, hiredis"
          f" {versions['hiredis']}, Python {versions['python']}")
    print(f"{'quick' if args.quick else 'full'} mode, {elapsed:.0f} s\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": common.environment(url), "feast": versions,
                                               "results": results}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1, 100 and 1000 rows x 10, short budgets")
    parser.add_argument("--redis-url", help="use this Redis (it is flushed first)")
    parser.add_argument("--feast-venv", default=str(feast_venv.DEFAULT_VENV))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with common.redis_url(args.redis_url) as url:
        redis.Redis.from_url(url).flushall()
        run(url, args)


if __name__ == "__main__":
    main()
