"""Storage layout evidence: the packed row against one hash field per feature (Feast's layout).

    python benchmarks/bench_layout.py [--quick] [--redis-url URL]

Both layouts hold the same entities and values, and both are read by a Lua script that returns
the same reply (msgpack [now_us, statuses, event_ts, values]), so the same Python code encodes
the keys and decodes the replies and only the layout differs:

  packed   one hash field per table: header + end offsets + msgpack values (feast_lua.rows),
           read by the shipped lua/read.lua through Client.get_online_features.
  fields   one hash field per feature (a 4-byte hash of "table:feature", as Feast names them)
           holding the msgpack value, plus a "_ts:<table>" field with the event timestamp as a
           big-endian i64 of microseconds; read by FIELDS_READ_LUA below, which does one HMGET
           per key and computes the same statuses. It lives here only, it is not shipped.

The field-layout copy lives in Redis database 1 under the very same key bytes, so key encoding
costs the same on both sides. Reported per shape:

* Redis CPU per call: INFO commandstats usec_per_call of evalsha, over batches of calls, with
  CONFIG RESETSTAT before each batch (this resets the server's statistics);
* end-to-end wall time of a call including to_dict(include_statuses=True);
* Redis used_memory per entity after loading N entities into an emptied server, per layout.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, ValueType  # noqa: E402
from feast_lua.keys import KeyEncoder  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.request import plan_read  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402
from feast_lua.values import encoder, timestamp_us  # noqa: E402

ENTITY = "driver_id"
TYPES = [ValueType.INT64, ValueType.DOUBLE, ValueType.FLOAT, ValueType.STRING, ValueType.BOOL]
FIELDS_DB = 1
SHAPES = [(100, 10), (1000, 10)]
WRITE_BATCH = 1000

# One key group only (the benchmark's tables all use driver_id), otherwise the contract of
# lua/read.lua: same reply, same status precedence (NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE,
# PRESENT), same coding style, so the comparison isolates the layout.
FIELDS_READ_LUA = b"""#!lua flags=no-writes
-- KEYS  N entity keys
-- ARGV  T, T x (timestamp field, max age us), F, F x (table index 1..T, feature field)
local T = tonumber(ARGV[1])
local F = tonumber(ARGV[2 + 2 * T])
local fields, max_age, ref_table = {}, {}, {}
for t = 1, T do
  fields[t] = ARGV[2 * t]
  max_age[t] = tonumber(ARGV[2 * t + 1])
end
for f = 1, F do
  ref_table[f] = tonumber(ARGV[1 + 2 * T + 2 * f])
  fields[T + f] = ARGV[2 + 2 * T + 2 * f]
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local NOT_FOUND, OUTSIDE_MAX_AGE = string.char(3), string.char(4)
local NULL_VALUE, PRESENT = string.char(2), string.char(1)
local NIL = string.char(0xc0)
local NO_TS = string.rep('\\0', 8)
local statuses, stamps, values = {}, {}, {}
local found, fresh = {}, {}
for r = 0, #KEYS - 1 do
  local got = redis.call('HMGET', KEYS[r + 1], unpack(fields))
  for t = 1, T do
    local ts = got[t]
    if ts then
      local ev = struct.unpack('>i8', ts)
      found[t] = true
      fresh[t] = max_age[t] == 0 or now - ev <= max_age[t]
      stamps[r * T + t] = ts
    else
      found[t] = false
      stamps[r * T + t] = NO_TS
    end
  end
  for f = 1, F do
    local t = ref_table[f]
    local v = got[T + f]
    local status, value = NOT_FOUND, NIL
    if found[t] and v then
      if not fresh[t] then
        status = OUTSIDE_MAX_AGE
      elseif v == NIL then
        status = NULL_VALUE
      else
        status, value = PRESENT, v
      end
    end
    statuses[#statuses + 1] = status
    values[#values + 1] = value
  end
end
local function array_header(n)
  if n < 16 then return string.char(0x90 + n) end
  if n < 65536 then return struct.pack('>BI2', 0xdc, n) end
  return struct.pack('>BI4', 0xdd, n)
end
local function bin_header(n)
  if n < 256 then return struct.pack('>BB', 0xc4, n) end
  if n < 65536 then return struct.pack('>BI2', 0xc5, n) end
  return struct.pack('>BI4', 0xc6, n)
end
local status_bytes = table.concat(statuses)
local stamp_bytes = table.concat(stamps)
return string.char(0x94) .. struct.pack('>Bi8', 0xd3, now)
  .. bin_header(#status_bytes) .. status_bytes
  .. bin_header(#stamp_bytes) .. stamp_bytes
  .. array_header(#values) .. table.concat(values)
"""


def feature_name(i: int) -> str:
    return f"f{i:02d}_{TYPES[i % len(TYPES)].name.lower()}"


def feature_value(i: int, entity_id: int) -> object:
    kind = TYPES[i % len(TYPES)]
    if kind is ValueType.INT64:
        return entity_id * 7 + i
    if kind is ValueType.DOUBLE:
        return entity_id / 3.0 + i
    if kind is ValueType.FLOAT:
        return (entity_id % 1000) / 8.0
    if kind is ValueType.STRING:
        return f"value-{entity_id % 997}-{i}"
    return entity_id % 2 == 0


def table_name(features: int) -> str:
    return f"bench_f{features}"


def table_def(features: int) -> FeatureTable:
    return FeatureTable(
        name=table_name(features),
        entities=[ENTITY],
        features=[Feature(feature_name(i), TYPES[i % len(TYPES)]) for i in range(features)],
        max_age=timedelta(days=1),
    )


def feast_field(table: str, feature: str) -> bytes:
    """Feast names a feature's hash field by a 4-byte murmur3 hash of "table:feature"."""
    return hashlib.blake2b(f"{table}:{feature}".encode(), digest_size=4).digest()


def ts_field(table: str) -> bytes:
    return f"_ts:{table}".encode()


def load_packed(client: Client, features: int, entities: int, event: datetime) -> None:
    names = [feature_name(i) for i in range(features)]
    for start in range(0, entities, WRITE_BATCH):
        rows = [{ENTITY: e, "event_timestamp": event,
                 **{n: feature_value(i, e) for i, n in enumerate(names)}}
                for e in range(start, min(entities, start + WRITE_BATCH))]
        client.write_rows(table_name(features), rows)


def load_fields(raw: redis.Redis, project: str, features: int, entities: int, event: datetime):
    table = table_name(features)
    key_encoder = KeyEncoder(project, [ENTITY], {ENTITY: ValueType.INT64})
    encoders = [encoder(TYPES[i % len(TYPES)]) for i in range(features)]
    fields = [feast_field(table, feature_name(i)) for i in range(features)]
    stamp = timestamp_us(event).to_bytes(8, "big", signed=True)
    for start in range(0, entities, WRITE_BATCH):
        pipe = raw.pipeline(transaction=False)
        for e in range(start, min(entities, start + WRITE_BATCH)):
            mapping = {f: enc(feature_value(i, e)) for i, (f, enc) in enumerate(zip(fields, encoders))}
            mapping[ts_field(table)] = stamp
            pipe.hset(key_encoder.key({ENTITY: e}, 0), mapping=mapping)
        pipe.execute()


class Contenders:
    """The two read paths for one shape; both return to_dict(include_statuses=True)."""

    def __init__(self, client: Client, fields_db: redis.Redis, sha: str, rows: int, features: int):
        table = table_name(features)
        self.client, self.fields_db, self.sha = client, fields_db, sha
        self.refs = [f"{table}:{feature_name(i)}" for i in range(features)]
        step = max(1, 997 // rows)  # spread the rows over the loaded ids
        self.entity_rows = [{ENTITY: (i * step) % 1000} for i in range(rows)]

    def packed(self) -> dict:
        response = self.client.get_online_features(self.refs, self.entity_rows)
        return response.to_dict(include_statuses=True)

    def fields(self) -> dict:
        refs = parse_refs(self.refs)
        plan = plan_read(self.client.registry.get(self.client.project), refs, self.entity_rows)
        args: list = [len(plan.tables)]
        for spec in plan.tables:
            args += [ts_field(spec.name), spec.max_age_us]
        args.append(len(refs))
        for ref, t in zip(refs, plan.ref_tables):
            args += [t + 1, feast_field(ref.table, ref.feature)]
        reply = self.fields_db.execute_command("EVALSHA", self.sha, len(plan.keys), *plan.keys, *args)
        return GetOnlineFeaturesResponse(plan, [reply]).to_dict(include_statuses=True)


def evalsha_stats(raw: redis.Redis) -> tuple[int, int]:
    stats = raw.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return stats["calls"], stats["usec"]


def speed(client: Client, raw: redis.Redis, fields_db: redis.Redis, sha: str,
          rows: int, features: int, rounds: int, calls: int) -> dict:
    contenders = Contenders(client, fields_db, sha, rows, features)
    packed, fields = contenders.packed(), contenders.fields()
    if packed != fields:
        raise AssertionError(f"{rows}x{features}: the two layouts return different responses")
    if {s for col in packed["statuses"].values() for s in col} != {FieldStatus.PRESENT}:
        raise AssertionError(f"{rows}x{features}: expected every cell PRESENT")
    runs = {"packed": contenders.packed, "fields": contenders.fields}
    server = {name: [] for name in runs}
    wall = {name: [] for name in runs}
    for r in range(rounds):
        order = ("packed", "fields") if r % 2 == 0 else ("fields", "packed")
        for name in order:
            raw.config_resetstat()
            took = []
            for _ in range(calls):
                start = time.perf_counter_ns()
                runs[name]()
                took.append((time.perf_counter_ns() - start) / 1e3)
            n, usec = evalsha_stats(raw)
            server[name].append(usec / n)
            wall[name].append(statistics.median(took))
    return {
        "shape": f"{rows}x{features}",
        **{f"{name}_server_us": statistics.median(server[name]) for name in runs},
        **{f"{name}_wall_us": statistics.median(wall[name]) for name in runs},
        "server_ratio": statistics.median(p / f for p, f in zip(server["packed"], server["fields"])),
        "wall_ratio": statistics.median(p / f for p, f in zip(wall["packed"], wall["fields"])),
        "rounds": rounds,
        "calls": calls,
    }


def memory(url: str, features: int, entities: int, event: datetime) -> dict:
    """used_memory per entity after loading `entities` entities into an emptied server."""
    raw = redis.Redis.from_url(url)
    out: dict = {"features": features, "entities": entities}
    for layout in ("packed", "fields"):
        raw.flushall()
        with Client(url) as client:
            client.apply([Entity(ENTITY, ValueType.INT64), table_def(features)])
            before = raw.info("memory")["used_memory"]
            if layout == "packed":
                load_packed(client, features, entities, event)
            else:
                load_fields(raw, client.project, features, entities, event)
            after = raw.info("memory")["used_memory"]
            key = KeyEncoder(client.project, [ENTITY], {ENTITY: ValueType.INT64}).key({ENTITY: 7}, 0)
        out[f"{layout}_bytes"] = (after - before) / entities
        out[f"{layout}_usage"] = raw.memory_usage(key, samples=0)
        out[f"{layout}_encoding"] = raw.object("encoding", key).decode()
    raw.flushall()
    raw.close()
    return out


def run(url: str, quick: bool) -> None:
    rounds, calls = (6, 20) if quick else (20, 40)
    raw = redis.Redis.from_url(url)
    raw.flushall()
    fields_db = redis.Redis.from_url(url, db=FIELDS_DB)
    sha = fields_db.script_load(FIELDS_READ_LUA)
    event = datetime.now(timezone.utc) - timedelta(minutes=5)
    speeds = []
    with Client(url) as client:
        client.apply([Entity(ENTITY, ValueType.INT64), table_def(10)])
        load_packed(client, 10, 1000, event)
        load_fields(fields_db, client.project, 10, 1000, event)
        for rows, features in SHAPES:
            speeds.append(speed(client, raw, fields_db, sha, rows, features, rounds, calls))
            print(f"speed {speeds[-1]}", file=sys.stderr)
    raw.flushall()
    memory_runs = [(10, 20_000 if quick else 100_000), (50, 5_000 if quick else 20_000)]
    memories = []
    for features, entities in memory_runs:
        memories.append(memory(url, features, entities, event))
        print(f"memory {memories[-1]}", file=sys.stderr)
    fields_db.close()
    raw.close()
    print(f"\nRedis {redis.Redis.from_url(url).info('server')['redis_version']},"
          f" {'quick' if quick else 'full'} mode, {rounds} rounds of {calls} calls per layout\n")
    print("| shape | packed Redis us/call | fields Redis us/call | ratio packed/fields (Redis) "
          "| packed wall ms | fields wall ms | ratio packed/fields (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in speeds:
        print(f"| {s['shape']} | {s['packed_server_us']:.0f} | {s['fields_server_us']:.0f}"
              f" | {s['server_ratio']:.2f} | {s['packed_wall_us'] / 1e3:.3f}"
              f" | {s['fields_wall_us'] / 1e3:.3f} | {s['wall_ratio']:.2f} |")
    print("\n| features | entities | packed bytes/entity | fields bytes/entity | packed/fields "
          "| MEMORY USAGE of one key, packed / fields | encoding packed / fields |")
    print("|---:|---:|---:|---:|---:|---|---|")
    for m in memories:
        print(f"| {m['features']} | {m['entities']} | {m['packed_bytes']:.0f}"
              f" | {m['fields_bytes']:.0f} | {m['packed_bytes'] / m['fields_bytes']:.2f}"
              f" | {m['packed_usage']} / {m['fields_usage']}"
              f" | {m['packed_encoding']} / {m['fields_encoding']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, fewer entities")
    parser.add_argument("--redis-url", help="use this Redis: it is FLUSHALLed and its stats reset")
    args = parser.parse_args()
    if args.redis_url:
        run(args.redis_url, args.quick)
        return
    with RedisServer() as server:
        run(server.url, args.quick)


if __name__ == "__main__":
    main()
