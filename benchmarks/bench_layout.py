"""Storage layout evidence: the packed row against one hash field per feature (Feast's layout).

    python benchmarks/bench_layout.py [--quick] [--redis-url URL]

Both layouts hold the same entities and values. Each reader is a Lua script returning the same
reply (msgpack [now_us, statuses, event_ts, values]), so the same Python code encodes the keys
and decodes the replies, and the responses are checked equal before timing:

  packed   one hash field per table: header + end offsets + msgpack values (feast_lua.rows),
           read by the shipped lua/read.lua through Client.get_online_features.
  packed*  the same packed rows, read by PACKED_ONCE_LUA below (benchmark-only): the shipped
           script's logic for one key group, except that it unpacks a row's end offsets with one
           struct.unpack per row instead of one per cell. It separates what the layout costs
           from what the shipped script's code costs.
  fields   one hash field per feature (a 4-byte hash of "table:feature", as Feast names them)
           holding the msgpack value, plus a "_ts:<table>" field with the event timestamp as a
           big-endian i64 of microseconds; read by FIELDS_READ_LUA below (benchmark-only), one
           HMGET per key, same statuses, same coding style as the shipped script.

The field-layout copy lives in Redis database 1 under the very same key bytes, so key encoding
costs the same on both sides. Reported per shape:

* Redis CPU per call: INFO commandstats usec of evalsha/evalsha_ro over batches of calls, with
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


# The shipped read script's ARGV, restricted to one key group (G = 1), and its reply.
PACKED_ONCE_LUA = b"""#!lua flags=no-writes
-- KEYS  N entity keys
-- ARGV  1, T, T x (table field, 1, max age us), F, F x (table index 1..T, slot)
local T = tonumber(ARGV[2])
local F = tonumber(ARGV[3 + 3 * T])
local fields, max_age, ref_table, ref_slot = {}, {}, {}, {}
for t = 1, T do
  fields[t] = ARGV[3 * t]
  max_age[t] = tonumber(ARGV[3 * t + 2])
end
for f = 1, F do
  ref_table[f] = tonumber(ARGV[2 + 3 * T + 2 * f])
  ref_slot[f] = tonumber(ARGV[3 + 3 * T + 2 * f])
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local NOT_FOUND, OUTSIDE_MAX_AGE = string.char(3), string.char(4)
local NULL_VALUE, PRESENT = string.char(2), string.char(1)
local NIL = string.char(0xc0)
local NO_TS = string.rep('\\0', 8)
local ENDS_FMT = {}  -- (width, slot count) -> struct format of all end offsets
local function ends_format(w, n)
  local key = w * 65536 + n
  local fmt = ENDS_FMT[key]
  if not fmt then
    fmt = '>' .. string.rep(w == 2 and 'I2' or 'I4', n)
    ENDS_FMT[key] = fmt
  end
  return fmt
end
local statuses, stamps, values = {}, {}, {}
local row, ends, vstart, fresh = {}, {}, {}, {}
for r = 0, #KEYS - 1 do
  local got = redis.call('HMGET', KEYS[r + 1], unpack(fields))
  for t = 1, T do
    local packed = got[t]
    if packed then
      local fmt, ev, _, n = struct.unpack('>Bi8i8I2', packed)
      local w = fmt == 1 and 2 or 4
      row[t], vstart[t] = packed, 19 + n * w
      ends[t] = { struct.unpack(ends_format(w, n), packed, 20) }
      fresh[t] = max_age[t] == 0 or now - ev <= max_age[t]
      stamps[r * T + t] = string.sub(packed, 2, 9)
    else
      row[t] = false
      stamps[r * T + t] = NO_TS
    end
  end
  for f = 1, F do
    local t, slot = ref_table[f], ref_slot[f]
    local packed = row[t]
    local status, value = NOT_FOUND, NIL
    if packed and slot < #ends[t] then
      if not fresh[t] then
        status = OUTSIDE_MAX_AGE
      else
        local e = ends[t]
        local vs = vstart[t]
        local v = string.sub(packed, vs + (e[slot] or 0) + 1, vs + e[slot + 1])
        if v == NIL then status = NULL_VALUE else status, value = PRESENT, v end
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
LAYOUTS = ("packed", "packed*", "fields")


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
    """The read paths for one shape; each returns to_dict(include_statuses=True)."""

    def __init__(self, client: Client, fields_db: redis.Redis, shas: dict[str, str],
                 rows: int, features: int):
        table = table_name(features)
        self.client, self.fields_db, self.shas = client, fields_db, shas
        self.refs = [f"{table}:{feature_name(i)}" for i in range(features)]
        step = max(1, 997 // rows)  # spread the rows over the loaded ids
        self.entity_rows = [{ENTITY: (i * step) % 1000} for i in range(rows)]
        self.runs = {"packed": self.packed, "packed*": self.packed_once, "fields": self.fields}

    def packed(self) -> dict:
        response = self.client.get_online_features(self.refs, self.entity_rows)
        return response.to_dict(include_statuses=True)

    def packed_once(self) -> dict:
        refs = parse_refs(self.refs)
        plan = plan_read(self.client.registry.get(self.client.project), refs, self.entity_rows)
        reply = self.client.redis.execute_command(
            "EVALSHA", self.shas["packed*"], len(plan.keys), *plan.keys, *plan.args)
        return GetOnlineFeaturesResponse(plan, [reply]).to_dict(include_statuses=True)

    def fields(self) -> dict:
        refs = parse_refs(self.refs)
        plan = plan_read(self.client.registry.get(self.client.project), refs, self.entity_rows)
        args: list = [len(plan.tables)]
        for spec in plan.tables:
            args += [ts_field(spec.name), spec.max_age_us]
        args.append(len(refs))
        for ref, t in zip(refs, plan.ref_tables):
            args += [t + 1, feast_field(ref.table, ref.feature)]
        reply = self.fields_db.execute_command(
            "EVALSHA", self.shas["fields"], len(plan.keys), *plan.keys, *args)
        return GetOnlineFeaturesResponse(plan, [reply]).to_dict(include_statuses=True)


def evalsha_stats(raw: redis.Redis) -> tuple[int, int]:
    """Script calls and usec since the last CONFIG RESETSTAT (the client may use EVALSHA_RO)."""
    stats = raw.info("commandstats")
    found = [stats.get(c, {"calls": 0, "usec": 0}) for c in ("cmdstat_evalsha", "cmdstat_evalsha_ro")]
    return sum(s["calls"] for s in found), sum(s["usec"] for s in found)


def speed(client: Client, raw: redis.Redis, fields_db: redis.Redis, shas: dict[str, str],
          rows: int, features: int, rounds: int, calls: int) -> dict:
    """Rounds of `calls` calls per contender, in a rotating order; ratios are per round."""
    contenders = Contenders(client, fields_db, shas, rows, features)
    answers = [run() for run in contenders.runs.values()]
    if any(answer != answers[0] for answer in answers):
        raise AssertionError(f"{rows}x{features}: the layouts return different responses")
    if {s for col in answers[0]["statuses"].values() for s in col} != {FieldStatus.PRESENT}:
        raise AssertionError(f"{rows}x{features}: expected every cell PRESENT")
    server: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    wall: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for r in range(rounds):
        for name in LAYOUTS[r % 3:] + LAYOUTS[: r % 3]:
            raw.config_resetstat()
            took = []
            for _ in range(calls):
                start = time.perf_counter_ns()
                contenders.runs[name]()
                took.append((time.perf_counter_ns() - start) / 1e3)
            n, usec = evalsha_stats(raw)
            server[name].append(usec / n)
            wall[name].append(statistics.median(took))
    out: dict = {"shape": f"{rows}x{features}"}
    for name in LAYOUTS:
        out[name] = {
            "server_us": statistics.median(server[name]),
            "wall_us": statistics.median(wall[name]),
            "server_ratio": statistics.median(a / b for a, b in zip(server[name], server["fields"])),
            "wall_ratio": statistics.median(a / b for a, b in zip(wall[name], wall["fields"])),
        }
    return out


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
    shas = {"fields": fields_db.script_load(FIELDS_READ_LUA),
            "packed*": raw.script_load(PACKED_ONCE_LUA)}
    event = datetime.now(timezone.utc) - timedelta(minutes=5)
    speeds = []
    with Client(url) as client:
        client.apply([Entity(ENTITY, ValueType.INT64), table_def(10)])
        load_packed(client, 10, 1000, event)
        load_fields(fields_db, client.project, 10, 1000, event)
        for rows, features in SHAPES:
            speeds.append(speed(client, raw, fields_db, shas, rows, features, rounds, calls))
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
          f" {'quick' if quick else 'full'} mode, {rounds} rounds of {calls} calls per layout;"
          " ratios are against fields, per round\n")
    print("| shape | reader | Redis us/call | ratio (Redis) | wall ms/call | ratio (wall) |")
    print("|---|---|---:|---:|---:|---:|")
    for s in speeds:
        for name in LAYOUTS:
            r = s[name]
            print(f"| {s['shape']} | {name} | {r['server_us']:.0f} | {r['server_ratio']:.2f}"
                  f" | {r['wall_us'] / 1e3:.3f} | {r['wall_ratio']:.2f} |")
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
