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
  {"op": "apply_repo", "redis": "127.0.0.1:6379", "project": "compat",
   "entities": [{"name": "driver", "join_key": "driver_id", "value_type": "INT64"}, ...],
   "views": [{"name": "v", "entities": ["driver"], "features": {"f": "INT64_LIST", ...},
              "ttl_seconds": 86400}], "key_ttl_seconds": null}
      any entities and views, every value type feast-lua knows -> {"repo": path, "feast": version}
  {"op": "write_rows", "view": "v", "rows": [{"driver_id": 1, "f": [1, 2], "event_timestamp": ...}]}
      store.write_to_online_store(view, DataFrame(rows)) -> {"s": seconds}
  {"op": "online", "refs": ["v:f", ...], "rows": [{"driver_id": 1}, ...]}
      get_online_features(...) -> {"values": {ref: [...]}, "statuses": {ref: ["PRESENT", ...]}}
  {"op": "describe"}
      feast_lua/feast_layout/repo.py's describe_repo() of the applied repo, run here with feast
  {"op": "quit"}

Values in rows and replies travel as feast_wire.py encodes them (bytes and datetimes tagged).

Every timing is of `store.get_online_features(features=refs, entity_rows=rows).to_dict()`
alone, on perf_counter_ns, so the pipe round trip to the parent is not in it. Answers to
errors are {"error": "..."}. Nothing here imports the feast_lua package: it is not installed in
this venv (`describe` loads the one file feast_lua/feast_layout/repo.py by path; it imports only
feast).
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
import feast_wire  # noqa: E402

os.environ.setdefault("FEAST_USAGE", "False")

FEAST_TYPES = {"INT64": "Int64", "DOUBLE": "Float64", "FLOAT": "Float32", "STRING": "String",
               "BOOL": "Bool", "INT32": "Int32", "BYTES": "Bytes", "UNIX_TIMESTAMP": "UnixTimestamp"}
REPO_PY = Path(__file__).resolve().parent.parent / "feast_lua" / "feast_layout" / "repo.py"


def feast_type(name: str):
    """feast.types for a feast-lua ValueType name: scalars, and X_LIST as Array(X)."""
    from feast import types as feast_types

    if name.endswith("_LIST"):
        return feast_types.Array(getattr(feast_types, FEAST_TYPES[name[: -len("_LIST")]]))
    return getattr(feast_types, FEAST_TYPES[name])


def write_repo_yaml(folder: Path, project: str, redis: str, key_ttl_seconds: int | None = None) -> None:
    online = f'  type: redis\n  connection_string: "{redis}"\n'
    if key_ttl_seconds:
        online += f"  key_ttl_seconds: {key_ttl_seconds}\n"
    (folder / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry:\n  registry_type: file\n"
        f"  path: {folder / 'registry.db'}\n  cache_ttl_seconds: 86400\n"
        f"online_store:\n{online}offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n")


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
        write_repo_yaml(self.dir, project, redis)
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

    def apply_repo(self, redis: str, project: str, entities: list[dict], views: list[dict],
                   key_ttl_seconds: int | None = None) -> dict:
        """A repo of any entities and views (value types named as feast-lua's ValueType)."""
        import feast
        import pandas as pd
        from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType

        self.close()
        self.dir = Path(tempfile.mkdtemp(prefix="feast-lua-compat-"))
        write_repo_yaml(self.dir, project, redis, key_ttl_seconds)
        made = {e["name"]: Entity(name=e["name"], join_keys=[e["join_key"]],
                                  value_type=ValueType[e["value_type"]]) for e in entities}
        join_types = {e["join_key"]: e["value_type"] for e in entities}
        objects: list = list(made.values())
        for v in views:
            join_keys = [made[name].join_key for name in v["entities"]]
            source_path = self.dir / f"{v['name']}.parquet"
            # The offline source is never read; a file with the key and timestamp columns will do.
            pd.DataFrame({**{k: [] for k in join_keys}, "event_timestamp": pd.Series(
                [], dtype="datetime64[ns, UTC]")}).to_parquet(source_path)
            objects.append(FeatureView(
                name=v["name"], entities=[made[name] for name in v["entities"]],
                ttl=timedelta(seconds=v["ttl_seconds"]),
                schema=[Field(name=k, dtype=feast_type(join_types[k])) for k in join_keys]
                + [Field(name=n, dtype=feast_type(t)) for n, t in v["features"].items()],
                source=FileSource(path=str(source_path), timestamp_field="event_timestamp"),
                online=True))
        self.store = FeatureStore(repo_path=str(self.dir))
        self.store.apply(objects)
        return {"repo": str(self.dir), "feast": feast.__version__}

    def write_rows(self, view: str, rows: list[dict]) -> dict:
        import pandas as pd

        decoded = feast_wire.decode(rows)
        # Object columns keep Python values as they are (ints stay ints next to a None).
        df = pd.DataFrame({name: pd.Series([r[name] for r in decoded], dtype=object)
                           for name in decoded[0]})
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
        began = time.perf_counter()
        self.store.write_to_online_store(view, df)
        return {"s": time.perf_counter() - began}

    def online(self, refs: list[str], rows: list[dict]) -> dict:
        response = self.store.get_online_features(features=refs, entity_rows=feast_wire.decode(rows),
                                                  full_feature_names=True)
        values = response.to_dict()
        names = list(response.proto.metadata.feature_names.val)
        statuses = {}
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        for name, column in zip(names, response.proto.results):
            statuses[name.replace("__", ":", 1)] = [FieldStatus.Name(s) for s in column.statuses]
        return {"values": {ref: feast_wire.encode(values[ref.replace(":", "__", 1)]) for ref in refs},
                "statuses": {ref: statuses[ref] for ref in refs}}

    def describe(self) -> dict:
        import importlib.util

        spec = importlib.util.spec_from_file_location("feast_lua_repo", REPO_PY)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return {"definitions": module.describe_repo(str(self.dir))}

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
