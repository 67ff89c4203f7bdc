"""Concurrent read/write load for the torn-read test: tests/test_consistency.py runs a short form,
stress/torn_reads.py the long form (docs/RELIABILITY.md).

The data: every logical entity i has features in three tables, in two Redis hashes:

    trips    (driver_id):   a INT64, b DOUBLE       hash {}fl:...driver_idi...:i
    ratings  (driver_id):   c INT64, d STRING       the same hash, another field
    profile  (driver_code): e INT64                 hash {}fl:...driver_codes...:"d<i>"

An update writes one version v into every feature of every table of an entity (a=c=e=v,
b=float(v), d=str(v), event timestamp BASE + v us). Writers send the write script's calls for the
three tables in one MULTI/EXEC, so the stored state of an entity is always one version: a reader
that sees two versions in one entity has torn the read, not the writer.

Readers request every feature of every entity in one request and count torn entities (two
versions, or a value that belongs to no version), and regressions (an entity whose version went
down between two reads of one reader: versions only grow, so that is a stale read). Two readers:

* `feast_lua`: Client.get_online_features, optionally split into several calls per request;
* `pipeline`: Feast's way, one non-transactional pipeline of HMGETs per table, executed table by
  table as Feast's online_read is called per feature view, over the same keys and packed rows.

Workers are separate processes (spawn), so the load is concurrent on both cores.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import msgpack
import redis

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType
from feast_lua.keys import entity_key
from feast_lua.loader import load_scripts
from feast_lua.rows import unpack_row
from feast_lua.write import plan_write

PROJECT = "default"
BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
ENTITIES = [Entity("driver_id", ValueType.INT64), Entity("driver_code", ValueType.STRING)]
TABLES = [
    FeatureTable("trips", ["driver_id"], [Feature("a", ValueType.INT64), Feature("b", ValueType.DOUBLE)]),
    FeatureTable("ratings", ["driver_id"], [Feature("c", ValueType.INT64), Feature("d", ValueType.STRING)]),
    FeatureTable("profile", ["driver_code"], [Feature("e", ValueType.INT64)]),
]
REFS = ["trips:a", "trips:b", "ratings:c", "ratings:d", "profile:e"]
# Ref order: which table each ref belongs to and how its value encodes a version.
VERSION_OF = [int, lambda x: int(x) if float(x) == int(x) else None, int, int, int]


def entity_row(i: int) -> dict[str, object]:
    return {"driver_id": i, "driver_code": f"d{i}"}


def table_row(table: str, i: int, version: int) -> dict[str, object]:
    ts = {"event_timestamp": BASE + timedelta(microseconds=version)}
    if table == "trips":
        return {"driver_id": i, "a": version, "b": float(version), **ts}
    if table == "ratings":
        return {"driver_id": i, "c": version, "d": str(version), **ts}
    return {"driver_code": f"d{i}", "e": version, **ts}


def row_version(values: list[object]) -> int | None:
    """The one version that every value of an entity row encodes, or None when torn."""
    try:
        versions = {fn(v) for fn, v in zip(VERSION_OF, values)}
    except (TypeError, ValueError):
        return None
    return versions.pop() if len(versions) == 1 and None not in versions else None


class AtomicWriter:
    """Writes one version into all three tables of some entities, in one MULTI/EXEC of write
    script calls (the calls feast-lua's write_rows would send, one per table)."""

    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url)
        self.client = Client(redis=self.redis)
        self.registry = self.client.registry.get(PROJECT, refresh=True)
        self.script = load_scripts()["write"]

    def write(self, updates: list[tuple[int, int]]) -> int:
        """updates: (entity, version) pairs. Returns rows written, all tables together."""
        pipe = self.redis.pipeline(transaction=True)
        for table in TABLES:
            spec = self.registry.tables[table.name]
            rows = [table_row(table.name, i, v) for i, v in updates]
            for keys, args in plan_write(self.registry, spec, rows).calls():
                pipe.execute_command("EVALSHA", self.script.sha, len(keys), *keys, *args)
        try:
            replies = pipe.execute()
        except redis.exceptions.NoScriptError:
            # Only before the first write; nothing in the transaction ran.
            self.redis.script_load(self.script.source)
            replies = pipe.execute()
        return sum(written for written, _ in replies)

    def close(self) -> None:
        self.redis.close()


def setup(url: str, entities: int) -> None:
    """Applies the schema and stores version 0 of every entity."""
    with Client(url) as client:
        client.apply([*ENTITIES, *TABLES])
    writer = AtomicWriter(url)
    writer.redis.script_load(writer.script.source)
    writer.write([(i, 0) for i in range(entities)])
    writer.close()


@dataclass
class Counts:
    reads: int = 0  # read requests, each over every entity
    entity_checks: int = 0  # entity rows checked
    torn_responses: int = 0  # read requests with at least one torn entity
    torn_entities: int = 0
    regressions: int = 0  # an entity's version went down between two reads of one reader
    writes: int = 0  # MULTI/EXEC transactions
    rows_written: int = 0
    errors: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # a few torn rows, for the report

    def add(self, other: Counts) -> None:
        for name in ("reads", "entity_checks", "torn_responses", "torn_entities", "regressions",
                     "writes", "rows_written"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        self.examples += other.examples[: max(0, 5 - len(self.examples))]


class _Checker:
    def __init__(self, entities: int):
        self.last = [0] * entities
        self.counts = Counts()

    def check(self, rows: list[list[object]]) -> None:
        torn = 0
        for i, values in enumerate(rows):
            version = row_version(values)
            if version is None:
                torn += 1
                if len(self.counts.examples) < 5:
                    self.counts.examples.append(f"entity {i}: {values}")
                continue
            if version < self.last[i]:
                self.counts.regressions += 1
            self.last[i] = max(self.last[i], version)
        self.counts.reads += 1
        self.counts.entity_checks += len(rows)
        self.counts.torn_entities += torn
        self.counts.torn_responses += bool(torn)


def read_feast_lua(client: Client, rows: list[dict]) -> list[list[object]]:
    response = client.get_online_features(REFS, rows)
    columns = response.to_dict()
    statuses = response.statuses()
    out = []
    for r in range(len(rows)):
        if any(statuses[ref][r] is not FieldStatus.PRESENT for ref in REFS):
            out.append([None] * len(REFS))  # never written or not PRESENT: counts as torn
        else:
            out.append([columns[ref][r] for ref in REFS])
    return out


class PipelineReader:
    """Feast's read path over the same keys: per table, one non-transactional pipeline of HMGET."""

    def __init__(self, url: str, entities: int):
        self.redis = redis.Redis.from_url(url)
        by_id = [entity_key(PROJECT, {"driver_id": (ValueType.INT64, i)}) for i in range(entities)]
        by_code = [entity_key(PROJECT, {"driver_code": (ValueType.STRING, f"d{i}")})
                   for i in range(entities)]
        self.keys = {"trips": by_id, "ratings": by_id, "profile": by_code}

    def read(self) -> list[list[object]]:
        per_table = {}
        for table in ("trips", "ratings", "profile"):
            pipe = self.redis.pipeline(transaction=False)
            for key in self.keys[table]:
                pipe.hmget(key, [table])
            per_table[table] = [_decode(reply[0]) for reply in pipe.execute()]
        return [t + r + p for t, r, p in zip(per_table["trips"], per_table["ratings"],
                                              per_table["profile"])]


def _decode(packed: bytes | None) -> list[object]:
    if packed is None:
        return [None]
    return [msgpack.unpackb(cell) for cell in unpack_row(packed).cells]


def reader_worker(url: str, kind: str, entities: int, seconds: float, max_cells_per_call: int | None,
                  stop_after_torn: int | None, stop, results) -> None:
    checker = _Checker(entities)
    rows = [entity_row(i) for i in range(entities)]
    try:
        if kind == "feast_lua":
            client = Client(url)
            if max_cells_per_call:
                client.max_cells_per_call = max_cells_per_call
            read = lambda: read_feast_lua(client, rows)  # noqa: E731
        else:
            read = PipelineReader(url, entities).read
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            checker.check(read())
            if stop_after_torn and checker.counts.torn_responses >= stop_after_torn:
                stop.set()
    except Exception as e:  # reported, and fails the test
        checker.counts.errors.append(f"{kind} reader: {e!r}")
    results.put(checker.counts)


def writer_worker(url: str, index: int, writers: int, entities: int, seconds: float,
                  version_base: int, stop, results) -> None:
    counts = Counts()
    rng = random.Random(index)
    step = 0
    try:
        writer = AtomicWriter(url)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            batch = rng.sample(range(entities), rng.randint(1, min(5, entities)))
            updates = []
            for i in batch:
                step += 1
                updates.append((i, version_base + step * writers + index + 1))  # unique per writer
            counts.rows_written += writer.write(updates)
            counts.writes += 1
        writer.close()
    except Exception as e:
        counts.errors.append(f"writer {index}: {e!r}")
    results.put(counts)


def run_load(url: str, kind: str, seconds: float, readers: int = 2, writers: int = 2,
             entities: int = 40, max_cells_per_call: int | None = None,
             stop_after_torn: int | None = None, version_base: int = 0) -> Counts:
    """Runs `writers` writer and `readers` reader processes against an entity set made with
    setup(). Readers stop after `seconds` (or once one saw `stop_after_torn` torn responses);
    writers run until the readers are done. With max_cells_per_call, odd-numbered feast_lua
    readers split each request into calls of that many cells. Writers' versions start above
    `version_base`: a later run must pass a base above the versions an earlier one stored."""
    ctx = multiprocessing.get_context("spawn")
    readers_stop, writers_stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    writer_procs = [
        ctx.Process(target=writer_worker,
                    args=(url, w, writers, entities, seconds + 60, version_base, writers_stop,
                          results))
        for w in range(writers)
    ]
    reader_procs = [
        ctx.Process(target=reader_worker,
                    args=(url, kind, entities, seconds, max_cells_per_call if r % 2 else None,
                          stop_after_torn, readers_stop, results))
        for r in range(readers)
    ]
    for p in writer_procs + reader_procs:
        p.start()
    total = Counts()
    try:
        for _ in reader_procs:
            total.add(results.get(timeout=seconds + 60))
        writers_stop.set()
        for _ in writer_procs:
            total.add(results.get(timeout=60))
    finally:
        readers_stop.set()
        writers_stop.set()
        for p in writer_procs + reader_procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    return total
