"""Memory: Redis used_memory per entity, feast-lua's layout against Feast's, 1M entities x 10 features.

    python benchmarks/bench_memory.py [--quick] [--no-feast] [--entities N] [--redis-url URL]

The same entities of bench_f10 (entity driver_id, 10 features: INT64, DOUBLE, FLOAT, STRING of
about 12 bytes, BOOL, twice; project "bench") are loaded into the same Redis one layout after the
other, with FLUSHALL before each:

  feast-lua  Client.apply + Client.write_rows in batches of 20,000 rows: one hash per entity
             with one packed field per table.
  Feast      one hash per entity keyed serialize_entity_key(v3) + project, one field per
             feature (4-byte murmur3 of "view:feature") holding a Value proto, plus
             _ts:<view> holding a protobuf Timestamp. Written by the real feast
             (store.write_to_online_store, in the Feast venv, see feast_venv.py), after a
             byte-for-byte check of 1,000 entities against feast_layout.py; with --no-feast,
             or --python-writer, written by feast_layout.py with redis-py pipelines instead
             (the same bytes, much faster).

Bytes per entity = (used_memory after loading - used_memory just before) / entities. The "just
before" is measured after FLUSHALL (and, for feast-lua, after apply, whose registry is a few
hundred bytes). Default 1,000,000 entities; --quick: 100,000.

A third row is the floor of any layout with one hash per entity: the same keys as feast-lua's,
each a hash of one field "bench_f10" holding one byte. What it costs is Redis's per-key overhead
(main-dict entry and bucket, key sds, hash object, listpack header), which both layouts pay.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import feast_layout  # noqa: E402
import feast_venv  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, FieldStatus, ValueType  # noqa: E402
from feast_lua.keys import entity_key  # noqa: E402

TABLE = "bench_f10"
CHECK_ENTITIES = 1000
FEAST_BATCH = 50_000


def used_memory(r: redis.Redis) -> int:
    return r.info("memory")["used_memory"]


def flush(r: redis.Redis) -> int:
    r.flushall()
    time.sleep(0.2)  # let lazily freed memory go, if any
    return used_memory(r)


def key_facts(r: redis.Redis, key: bytes) -> dict:
    return {"key_bytes": len(key), "fields": r.hlen(key), "memory_usage": r.memory_usage(key, samples=0),
            "encoding": r.object("encoding", key).decode()}


def load_lua(r: redis.Redis, url: str, entities: int, event_us: int) -> dict:
    before = flush(r)
    with Client(url, project=data.PROJECT) as client:
        common.apply_tables(client, [TABLE])
        before = used_memory(r)
        started = time.perf_counter()
        common.write_lua(client, TABLE, range(entities), event_us)
        seconds = time.perf_counter() - started
        after = used_memory(r)
        ids = list(range(0, entities, max(1, entities // 100)))
        reply = client.get_online_features(common.refs(TABLE), [{data.DRIVER: e} for e in ids])
        columns = reply.to_dict(include_statuses=True)
        assert {s for c in columns["statuses"].values() for s in c} == {FieldStatus.PRESENT}
        for i, name in enumerate(data.feature_names(TABLE)):
            assert columns[f"{TABLE}:{name}"] == [data.read_back(i, e) for e in ids], name
    sample = entity_key(data.PROJECT, {data.DRIVER: (ValueType.INT64, entities // 2)})
    return {"layout": "feast-lua", "writer": "Client.write_rows", "bytes": after - before,
            "seconds": seconds, "keys": r.dbsize(), **key_facts(r, sample)}


def load_floor(r: redis.Redis, entities: int) -> dict:
    """One hash per entity under feast-lua's keys, holding a single 1-byte field."""
    before = flush(r)
    started = time.perf_counter()
    for start in range(0, entities, 10_000):
        pipe = r.pipeline(transaction=False)
        for e in range(start, min(entities, start + 10_000)):
            pipe.hset(entity_key(data.PROJECT, {data.DRIVER: (ValueType.INT64, e)}), TABLE, b"x")
        pipe.execute()
    seconds = time.perf_counter() - started
    after = used_memory(r)
    sample = entity_key(data.PROJECT, {data.DRIVER: (ValueType.INT64, entities // 2)})
    return {"layout": "floor: 1 field of 1 byte", "writer": "redis-py HSET", "bytes": after - before,
            "seconds": seconds, "keys": r.dbsize(), **key_facts(r, sample)}


def load_feast(r: redis.Redis, url: str, entities: int, event_us: int, python: Path | None,
               python_writer: bool) -> dict:
    layout = feast_layout.ViewLayout(TABLE)
    check = "not checked against feast (--no-feast)"
    side = None
    try:
        if python is not None:
            side = feast_venv.FeastSide(python)
            host_port = url.split("//", 1)[1].split("/", 1)[0]
            side.ask("init", redis=host_port, project=data.PROJECT, tables=[TABLE])
            flush(r)
            side.ask("write", view=TABLE, start=0, stop=CHECK_ENTITIES, event_us=event_us)
            problems = layout.mismatches(r, range(CHECK_ENTITIES), event_us)
            if problems or r.dbsize() != CHECK_ENTITIES:
                raise AssertionError("Feast wrote other bytes than feast_layout.py: "
                                     + "; ".join(problems[:5]))
            check = f"byte-exact against feast's own write for {CHECK_ENTITIES} entities"
        before = flush(r)
        started = time.perf_counter()
        if side is not None and not python_writer:
            writer = "feast write_to_online_store"
            for start in range(0, entities, FEAST_BATCH):
                side.ask("write", view=TABLE, start=start, stop=min(entities, start + FEAST_BATCH),
                         event_us=event_us)
        else:
            writer = "feast_layout.py (redis-py)"
            layout.write(r, range(entities), event_us, batch=5000)
        seconds = time.perf_counter() - started
        after = used_memory(r)
    finally:
        if side is not None:
            side.close()
    problems = layout.mismatches(r, range(0, entities, max(1, entities // 100)), event_us)
    assert not problems, problems[:3]
    return {"layout": "Feast", "writer": writer, "check": check, "bytes": after - before,
            "seconds": seconds, "keys": r.dbsize(), **key_facts(r, layout.key(entities // 2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 entities instead of 1,000,000")
    parser.add_argument("--entities", type=int, help="number of entities")
    parser.add_argument("--no-feast", action="store_true",
                        help="no Feast venv: Feast's layout by feast_layout.py")
    parser.add_argument("--python-writer", action="store_true",
                        help="check against feast, but load Feast's layout with feast_layout.py")
    parser.add_argument("--feast-venv", default=str(feast_venv.DEFAULT_VENV))
    parser.add_argument("--redis-url", help="use this Redis (it is FLUSHALLed)")
    args = parser.parse_args()
    entities = args.entities or (100_000 if args.quick else 1_000_000)
    python = None if args.no_feast else feast_venv.ensure_venv(Path(args.feast_venv))
    began = time.perf_counter()
    with common.redis_url(args.redis_url) as url:
        r = redis.Redis.from_url(url)
        event_us = common.event_us_now()
        results = [load_lua(r, url, entities, event_us),
                   load_feast(r, url, entities, event_us, python, args.python_writer),
                   load_floor(r, entities)]
        for x in results:
            print(f"  {x['layout']}: {x['bytes'] / entities:.1f} bytes/entity, loaded in {x['seconds']:.1f} s"
                  f" by {x['writer']}", file=sys.stderr)
        info = r.info("memory")
        flush(r)
        env = common.environment(url)
        r.close()
    print(f"\n{env}; allocator {info['mem_allocator']}\n{entities} entities x 10 features,"
          f" {time.perf_counter() - began:.0f} s in all. Feast's layout: {results[1]['check']}.\n")
    print("| layout | written by | used_memory bytes/entity | keys | key bytes | fields/key "
          "| MEMORY USAGE of one key | encoding | load s |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for x in results:
        print(f"| {x['layout']} | {x['writer']} | {x['bytes'] / entities:.1f} | {x['keys']} "
              f"| {x['key_bytes']} | {x['fields']} | {x['memory_usage']} | {x['encoding']} "
              f"| {x['seconds']:.1f} |")
    print(f"\nfeast-lua / Feast: {results[0]['bytes'] / results[1]['bytes']:.3f};"
          f" floor / Feast: {results[2]['bytes'] / results[1]['bytes']:.3f}")


if __name__ == "__main__":
    main()
