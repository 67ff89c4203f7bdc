"""Contender (c): the real feast package, driven one command at a time. Runs in the Feast venv.

    benchmarks/.feast-venv/bin/python benchmarks/feast_side.py   (started by feast_venv.FeastSide)

It reads one JSON object per line on stdin and answers each with one JSON line on stdout, so
the parent can interleave Feast's requests with its own, on the same Redis, one at a time:

  {"op": "init", "redis": "127.0.0.1:6379", "project": "bench", "tables": ["bench_f10", ...]}
      writes a Feast repo into a temp dir (feature_store.yaml: provider local, registry a local
      file, online_store redis at that address, entity_key_serialization_version 3), defines
      the entities (INT64) and one FeatureView per table (ttl 1 day, over a dummy FileSource)
      and runs store.apply. -> {"feast": version, "redis": redis-py version, ...}
  {"op": "write", "view": "bench_f10", "start": 0, "stop": 1000, "event_us": ...}
      store.write_to_online_store(view, df) for entity ids start..stop-1 -> {"s": seconds}
  {"op": "prepare", "name": "100x10", "refs": ["bench_f10:f00_int64", ...], "rows": [{...}]}
      keeps a request and runs it once -> {"result": get_online_features(...).to_dict()}
  {"op": "run", "name": "100x10", "n": 1}
      runs the kept request n times, timed one by one -> {"ms": [per call]}
  {"op": "quit"}

Every timing is of `store.get_online_features(features=refs, entity_rows=rows).to_dict()`
alone, on perf_counter_ns, so the pipe round trip to the parent is not in it. Answers to
errors are {"error": "..."}. Nothing here imports feast_lua: it is not installed in this venv.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_data as data  # noqa: E402

os.environ.setdefault("FEAST_USAGE", "False")

FEAST_TYPES = {"INT64": "Int64", "DOUBLE": "Float64", "FLOAT": "Float32", "STRING": "String",
               "BOOL": "Bool"}


class FeastSide:
    def __init__(self) -> None:
        self.dir: Path | None = None
        self.store = None
        self.requests: dict[str, tuple[list[str], list[dict]]] = {}

    def init(self, redis: str, project: str, tables: list[str]) -> dict:
        import feast
        import pandas as pd
        import redis as redis_py
        from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
        from feast import types as feast_types

        self.dir = Path(tempfile.mkdtemp(prefix="feast-lua-bench-feast-"))
        (self.dir / "feature_store.yaml").write_text(
            f"project: {project}\n"
            "provider: local\n"
            "registry:\n"
            "  registry_type: file\n"
            f"  path: {self.dir / 'registry.db'}\n"
            "  cache_ttl_seconds: 86400\n"
            "online_store:\n"
            "  type: redis\n"
            f'  connection_string: "{redis}"\n'
            "offline_store:\n"
            "  type: file\n"
            "entity_key_serialization_version: 3\n"
        )
        entities = {}
        views = []
        for table in tables:
            join_key, _ = data.TABLES[table]
            if join_key not in entities:
                entities[join_key] = Entity(name=join_key, join_keys=[join_key],
                                            value_type=ValueType.INT64)
            names = data.feature_names(table)
            # A one-row parquet file with the view's columns: never read, but a real source.
            source_path = self.dir / f"{table}.parquet"
            sample = {join_key: [0], **data.row(table, 0), "event_timestamp": [datetime.now(timezone.utc)]}
            pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in sample.items()}).to_parquet(
                source_path)
            views.append(FeatureView(
                name=table,
                entities=[entities[join_key]],
                ttl=timedelta(seconds=data.MAX_AGE_S),
                schema=[Field(name=join_key, dtype=feast_types.Int64)] + [
                    Field(name=n, dtype=getattr(feast_types, FEAST_TYPES[data.feature_type(i)]))
                    for i, n in enumerate(names)],
                source=FileSource(path=str(source_path), timestamp_field="event_timestamp"),
                online=True,
            ))
        self.store = FeatureStore(repo_path=str(self.dir))
        self.store.apply([*entities.values(), *views])
        import hiredis

        return {"feast": feast.__version__, "redis_py": redis_py.__version__,
                "hiredis": hiredis.__version__, "pandas": pd.__version__,
                "python": sys.version.split()[0]}

    def write(self, view: str, start: int, stop: int, event_us: int) -> dict:
        import pandas as pd

        event = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=event_us)
        join_key, _ = data.TABLES[view]
        names = data.feature_names(view)
        ids = range(start, stop)
        columns = {join_key: list(ids)}
        for i, name in enumerate(names):
            columns[name] = [data.feature_value(i, e) for e in ids]
        columns["event_timestamp"] = [event] * len(ids)
        df = pd.DataFrame(columns)
        began = time.perf_counter()
        self.store.write_to_online_store(view, df)
        return {"s": time.perf_counter() - began}

    def call(self, name: str) -> dict:
        refs, rows = self.requests[name]
        return self.store.get_online_features(features=refs, entity_rows=rows,
                                              full_feature_names=True).to_dict()

    def prepare(self, name: str, refs: list[str], rows: list[dict]) -> dict:
        self.requests[name] = (refs, rows)
        return {"result": self.call(name)}

    def run(self, name: str, n: int) -> dict:
        refs, rows = self.requests[name]
        store = self.store
        took = []
        for _ in range(n):
            start = time.perf_counter_ns()
            store.get_online_features(features=refs, entity_rows=rows, full_feature_names=True).to_dict()
            took.append((time.perf_counter_ns() - start) / 1e6)
        return {"ms": took}

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    side = FeastSide()
    out = sys.stdout
    sys.stdout = sys.stderr  # anything feast prints goes to stderr, never into the replies
    try:
        for line in sys.stdin:
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            try:
                reply = getattr(side, op)(**command)
            except Exception as e:  # the parent decides: it shows the error and stops
                reply = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        side.close()


if __name__ == "__main__":
    main()
