"""Storage layout evidence: the packed row against one hash field per feature (Feast's layout).

    python benchmarks/bench_layout.py [--quick] [--redis-url URL]

Both layouts hold the same entities and values (bench_data.py's bench_f10 and bench_f50). Each
reader is a Lua script returning the same reply (msgpack [now_us, statuses, event_ts, values]),
so the same Python code encodes the keys and decodes the replies, and the responses are checked
equal before timing:

  packed   one hash field per table: header, per-slot status bytes, end offsets, msgpack values
           (feast_lua.rows), read by the shipped lua/read.lua through Client.get_online_features.
  fields   one hash field per feature, named as Feast names them (feast_layout.field: 4-byte
           murmur3 of "table:feature"), holding the msgpack value, plus a "_ts:<table>" field
           with the event timestamp as a big-endian i64 of microseconds; read by
           FIELDS_READ_LUA below (benchmark-only), one HMGET per key, same statuses.

Only the layout differs from Feast's: values stay msgpack, so both replies decode alike (see
bench_vs_feast.py and bench_memory.py for Feast's own bytes). The field-layout copy lives in
Redis database 1 under the very same key bytes, so key encoding costs the same on both sides.
Reported per shape:

* Redis CPU per call: INFO commandstats usec of evalsha/evalsha_ro over batches of calls, with
  CONFIG RESETSTAT before each batch (this resets the server's statistics);
* end-to-end wall time of a call including to_dict(include_statuses=True);
* Redis used_memory per entity after loading N entities into an emptied server, per layout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common  # noqa: E402
import bench_data as data  # noqa: E402
import feast_layout  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, FieldStatus, ValueType  # noqa: E402
from feast_lua.keys import entity_key  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.request import plan_read  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse, decode_reply  # noqa: E402
from feast_lua.values import encoder  # noqa: E402

FIELDS_DB = 1
SHAPES = [(100, 10), (1000, 10)]
ENTITIES = 1000  # loaded for the speed shapes
WRITE_BATCH = 1000

# One key group only (the benchmark's tables all use driver_id), otherwise the contract of
# lua/read.lua: same reply, same status precedence (NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE,
# PRESENT). It reads cell by cell, as the shipped script did before it sliced runs of refs.
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
LAYOUTS = ("packed", "fields")


def lua_key(entity_id: int) -> bytes:
    """The key feast-lua stores an entity under; the field layout uses the same bytes."""
    return entity_key(data.PROJECT, {data.DRIVER: (ValueType.INT64, entity_id)})


def load_fields(raw: redis.Redis, table: str, entities: int, event_us: int) -> None:
    names = data.feature_names(table)
    encoders = [encoder(ValueType[data.feature_type(i)]) for i in range(len(names))]
    fields = [feast_layout.field(table, n) for n in names]
    ts_field = feast_layout.ts_field(table)
    stamp = event_us.to_bytes(8, "big", signed=True)
    for start in range(0, entities, WRITE_BATCH):
        pipe = raw.pipeline(transaction=False)
        for e in range(start, min(entities, start + WRITE_BATCH)):
            row = data.row(table, e)
            mapping = {f: enc(row[n]) for f, enc, n in zip(fields, encoders, names)}
            mapping[ts_field] = stamp
            pipe.hset(lua_key(e), mapping=mapping)
        pipe.execute()


class Contenders:
    """The read paths for one shape; each returns to_dict(include_statuses=True)."""

    def __init__(self, client: Client, fields_db: redis.Redis, sha: str, rows: int, features: int):
        self.client, self.fields_db, self.sha = client, fields_db, sha
        self.refs = common.refs(data.BY_WIDTH[features])
        self.entity_rows = data.shape_rows(rows, ENTITIES, seed=rows)
        self.runs = {"packed": self.packed, "fields": self.fields}

    def packed(self) -> dict:
        response = self.client.get_online_features(self.refs, self.entity_rows)
        return response.to_dict(include_statuses=True)

    def fields(self) -> dict:
        refs = parse_refs(self.refs)
        plan = plan_read(self.client.registry.get(self.client.project), refs, self.entity_rows)
        args: list = [len(plan.tables)]
        for spec in plan.tables:
            args += [feast_layout.ts_field(spec.name), spec.max_age_us]
        args.append(len(refs))
        for ref, t in zip(refs, plan.ref_tables):
            args += [t + 1, feast_layout.field(ref.table, ref.feature)]
        reply = self.fields_db.execute_command("EVALSHA", self.sha, len(plan.keys), *plan.keys, *args)
        return GetOnlineFeaturesResponse(plan, [decode_reply(reply)]).to_dict(include_statuses=True)


def speed(client: Client, raw: redis.Redis, fields_db: redis.Redis, sha: str,
          rows: int, features: int, rounds: int, calls: int) -> dict:
    """Rounds of `calls` calls per contender, in a rotating order; ratios are per round."""
    contenders = Contenders(client, fields_db, sha, rows, features)
    answers = [run() for run in contenders.runs.values()]
    if any(answer != answers[0] for answer in answers):
        raise AssertionError(f"{rows}x{features}: the layouts return different responses")
    if {s for col in answers[0]["statuses"].values() for s in col} != {FieldStatus.PRESENT}:
        raise AssertionError(f"{rows}x{features}: expected every cell PRESENT")
    server: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    wall: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for r in range(rounds):
        shift = r % len(LAYOUTS)
        for name in LAYOUTS[shift:] + LAYOUTS[:shift]:
            raw.config_resetstat()
            took = []
            for _ in range(calls):
                start = time.perf_counter_ns()
                contenders.runs[name]()
                took.append((time.perf_counter_ns() - start) / 1e3)
            n, usec = common.script_usec(raw)
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


def memory(url: str, features: int, entities: int, event_us: int) -> dict:
    """used_memory per entity after loading `entities` entities into an emptied server."""
    table = data.BY_WIDTH[features]
    raw = redis.Redis.from_url(url)
    out: dict = {"features": features, "entities": entities}
    for layout in ("packed", "fields"):
        raw.flushall()
        with Client(url, project=data.PROJECT) as client:
            common.apply_tables(client, [table])
            before = raw.info("memory")["used_memory"]
            if layout == "packed":
                common.write_lua(client, table, range(entities), event_us)
            else:
                load_fields(raw, table, entities, event_us)
            after = raw.info("memory")["used_memory"]
        key = lua_key(7)
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
    event_us = common.event_us_now()
    table = data.BY_WIDTH[10]
    speeds = []
    with Client(url, project=data.PROJECT) as client:
        common.apply_tables(client, [table])
        common.write_lua(client, table, range(ENTITIES), event_us)
        load_fields(fields_db, table, ENTITIES, event_us)
        for rows, features in SHAPES:
            speeds.append(speed(client, raw, fields_db, sha, rows, features, rounds, calls))
            print(f"speed {speeds[-1]}", file=sys.stderr)
    raw.flushall()
    memory_runs = [(10, 20_000 if quick else 100_000), (50, 5_000 if quick else 20_000)]
    memories = []
    for features, entities in memory_runs:
        memories.append(memory(url, features, entities, event_us))
        print(f"memory {memories[-1]}", file=sys.stderr)
    fields_db.close()
    raw.close()
    print(f"\n{common.environment(url)}\n{'quick' if quick else 'full'} mode, {rounds} rounds of"
          f" {calls} calls per layout; ratios are against fields, per round\n")
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
    with common.redis_url(args.redis_url) as url:
        run(url, args.quick)


if __name__ == "__main__":
    main()
