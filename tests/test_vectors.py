"""The cross-language test vectors (tests/vectors/*.json) still hold for the Python implementation.

Offline: keys, msgpack values, packed rows, registry documents and the KEYS/ARGV of every script
call are rebuilt from the vectors' inputs and compared byte for byte, and the recorded replies
decode to the recorded responses. Live: the recorded calls are replayed with EVALSHA against a
fresh redis-server loaded with the shipped scripts, and must give the recorded reply bytes (the
read reply's now_us masked), the recorded error replies, and, through the Python Client, the
recorded responses. Regenerate with `.venv/bin/python tests/vectors/generate.py` (docs/PROTOCOL.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import struct
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgpack
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) from the checkout
    sys.path.insert(0, str(ROOT))

from feast_lua import Client, Entity, Feature, FeatureTable, ValueType  # noqa: E402
from feast_lua.keys import KeyEncoder  # noqa: E402
from feast_lua.loader import load_scripts  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.registry import empty, merge  # noqa: E402
from feast_lua.registry_store import registry_key  # noqa: E402
from feast_lua.request import plan_read  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse, decode_reply  # noqa: E402
from feast_lua.rows import pack_row, unpack_row  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402
from feast_lua.values import NIL, encoder  # noqa: E402
from feast_lua.write import plan_write  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
UTC = timezone.utc
KEYS = json.loads((VECTORS / "keys.json").read_text(encoding="utf-8"))
ROWS = json.loads((VECTORS / "rows.json").read_text(encoding="utf-8"))
REQUESTS = json.loads((VECTORS / "requests.json").read_text(encoding="utf-8"))
SCENARIOS = {s["name"]: s for s in REQUESTS["scenarios"]}
# The read reply: 0x94 (array of 4), then now_us as 0xd3 + 8 bytes; those 8 bytes are masked.
NOW_AT = slice(2, 10)
YEAR_2020_US = 1_577_836_800_000_000
YEAR_2099_US = 4_070_908_800_000_000


def _resp_client():
    """The generator's raw RESP client, so error replies are compared as Redis sends them."""
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.Resp, module.RespError


Resp, RespError = _resp_client()

# ------------------------------------------------------------------------------------------------
# Typed JSON -> Python (the inverse of the generator's to_json, written independently)
# ------------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z")


def parse_ts(text: str) -> datetime:
    m = _RFC3339.fullmatch(text)
    assert m, f"not an RFC 3339 timestamp with 6 fractional digits: {text!r}"
    return datetime(*map(int, m.groups()), tzinfo=UTC)


def from_json(value_type: ValueType, value: object) -> object:
    if value is None:
        return None
    if value_type.is_list:
        assert isinstance(value, list)
        return [from_json(value_type.element, v) for v in value]
    if value_type in (ValueType.INT32, ValueType.INT64):
        assert isinstance(value, int) or re.fullmatch(r"-?\d+", value)  # type: ignore[arg-type]
        return int(value)  # type: ignore[arg-type]
    if value_type in (ValueType.FLOAT, ValueType.DOUBLE):
        assert isinstance(value, (int, float)) or value in ("NaN", "Infinity", "-Infinity")
        return float(value)  # type: ignore[arg-type]
    if value_type is ValueType.BYTES:
        return bytes.fromhex(value)  # type: ignore[arg-type]
    if value_type is ValueType.UNIX_TIMESTAMP:
        return parse_ts(value)  # type: ignore[arg-type]
    if value_type is ValueType.STRING:
        assert isinstance(value, str)
        return value
    assert value_type is ValueType.BOOL and isinstance(value, bool)
    return value


def same(a: object, b: object) -> bool:
    """Equality that tells -0.0 from 0.0 and bool from int."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, float) and isinstance(b, float)
                and struct.pack(">d", a) == struct.pack(">d", b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def hexes(items: list) -> list[str]:
    return [(b"%d" % x if isinstance(x, int) else x).hex() for x in items]


def build_objects(objects: list[dict]) -> list:
    out: list = []
    for o in objects:
        if o["kind"] == "entity":
            out.append(Entity(o["name"], ValueType[o["value_type"]], o["description"]))
        else:
            out.append(FeatureTable(
                o["name"], o["entities"],
                [Feature(f["name"], ValueType[f["value_type"]]) for f in o["features"]],
                max_age=timedelta(microseconds=o["max_age_us"])))
    return out


def write_rows(registry, step: dict) -> list[dict]:
    spec = registry.tables[step["table"]]
    rows = []
    for r in step["rows"]:
        row: dict = {}
        for k, v in r.items():
            if k in ("event_timestamp", "created_timestamp"):
                row[k] = parse_ts(v)
            elif k in spec.features:
                row[k] = from_json(spec.features[k].value_type, v)
            else:
                row[k] = from_json(registry.entities[k].value_type, v)
        rows.append(row)
    return rows


def entity_rows(step: dict) -> list[dict]:
    types = {k: ValueType[t] for k, t in step["entity_types"].items()}
    return [{k: from_json(types[k], v) for k, v in r.items()} for r in step["entity_rows"]]


def max_age(step: dict) -> dict | None:
    ages = step["max_age_override_us"]
    return None if ages is None else {k: timedelta(microseconds=v) for k, v in ages.items()}


def masked(reply: bytes) -> bytes:
    assert reply[:2] == b"\x94\xd3", f"read reply does not start with 94 d3: {reply[:10].hex()}"
    now_us = struct.unpack(">q", reply[NOW_AT])[0]
    # The vectors' statuses assume a clock between 2020 and 2099 (requests.json "determinism").
    assert YEAR_2020_US < now_us < YEAR_2099_US, f"server clock {now_us} us is out of range"
    return reply[:2] + bytes(8) + reply[10:]


def check_response(response: GetOnlineFeaturesResponse, expected: dict) -> None:
    statuses = response.statuses()
    values = response.to_dict()
    stamps = response.event_timestamps()
    assert list(statuses) == list(expected)
    for ref, want in expected.items():
        vt = ValueType[want["value_type"]]
        assert [s.name for s in statuses[ref]] == want["statuses"], ref
        got_values, want_values = values[ref], [from_json(vt, v) for v in want["values"]]
        assert same(got_values, want_values), (ref, got_values, want_values)
        want_stamps = [None if t is None else parse_ts(t) for t in want["event_timestamps"]]
        assert stamps[ref] == want_stamps, ref


# ------------------------------------------------------------------------------------------------
# keys.json
# ------------------------------------------------------------------------------------------------


def test_documented_key_example_is_literal():
    first = KEYS["keys"][0]
    assert bytes.fromhex(first["key_hex"]) == b"{}fl:7:default9:driver_idi4:1001"
    assert bytes.fromhex(KEYS["registry_keys"][0]["key_hex"]) == b"{}fl:registry:7:default"


@pytest.mark.parametrize("vector", KEYS["keys"], ids=lambda v: v["description"][:60])
def test_entity_key(vector):
    types = {e["join_key"]: ValueType[e["value_type"]] for e in vector["entities"]}
    values = {e["join_key"]: from_json(types[e["join_key"]], e["value"])
              for e in vector["entities"]}
    key = KeyEncoder(vector["project"], list(types), types, vector.get("colocate")).key(values, 0)
    assert key.hex() == vector["key_hex"]


@pytest.mark.parametrize("vector", KEYS["registry_keys"], ids=lambda v: v["project"])
def test_registry_key(vector):
    assert registry_key(vector["project"]).hex() == vector["key_hex"]


# ------------------------------------------------------------------------------------------------
# rows.json
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", ROWS["values"], ids=lambda v: v["description"][:60])
def test_value_encoding(vector):
    vt = ValueType[vector["value_type"]]
    packed = encoder(vt)(from_json(vt, vector["value"]))
    assert packed.hex() == vector["msgpack_hex"]
    decoded = msgpack.unpackb(packed, timestamp=3)
    assert same(decoded, from_json(vt, vector["decoded"]))


def _cell(cell: dict) -> bytes:
    if cell["value_type"] is None:
        return NIL
    vt = ValueType[cell["value_type"]]
    value = cell["value"]
    if isinstance(value, dict):  # rows.json "repeat_form"
        return encoder(vt)(value["repeat"] * value["count"])
    return encoder(vt)(from_json(vt, value))


@pytest.mark.parametrize("vector", ROWS["rows"], ids=lambda v: v["description"][:60])
def test_packed_row(vector):
    event_us = int(vector["event_ts_us"])
    created_us = int(vector["created_ts_us"])
    assert event_us == (parse_ts(vector["event_timestamp"]) - datetime(1970, 1, 1, tzinfo=UTC)) \
        // timedelta(microseconds=1)
    cells = [_cell(c) for c in vector["cells"]]
    for cell, encoded in zip(vector["cells"], cells):
        if cell["msgpack_hex"] is not None:
            assert encoded.hex() == cell["msgpack_hex"]
    packed = pack_row(event_us, created_us, cells)
    layout = vector["layout"]
    assert packed.hex().startswith(layout["format_hex"] + layout["event_ts_hex"]
                                   + layout["created_ts_hex"] + layout["slot_count_hex"]
                                   + layout["statuses_hex"] + layout["end_offsets_hex"])
    nulls = [cell == b"\xc0" for cell in cells]
    assert bytes.fromhex(layout["statuses_hex"]) == bytes(2 if null else 1 for null in nulls)
    if "packed_hex" in vector:
        assert packed.hex() == vector["packed_hex"]
    else:
        assert len(packed) == vector["packed_length"]
        assert hashlib.sha256(packed).hexdigest() == vector["packed_sha256"]
        assert packed[:64].hex() == vector["packed_head_hex"]
    assert unpack_row(packed) == (event_us, created_us, bytes.fromhex(layout["statuses_hex"]), cells)


# ------------------------------------------------------------------------------------------------
# requests.json, offline: registry documents, KEYS/ARGV, reply decoding
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_calls_offline(name):
    scenario = SCENARIOS[name]
    registry = empty(scenario["project"])
    for step in scenario["steps"]:
        if step["op"] == "apply":
            updated = merge(registry, build_objects(step["objects"]))
            (call,) = step["calls"]
            assert call["keys_hex"] == [registry_key(scenario["project"]).hex()]
            assert call["argv_hex"] == hexes([registry.version, updated.to_json().encode()])
            assert json.loads(updated.to_json()) == step["registry_after"]
            assert call["reply"] == updated.version
            registry = updated
        elif step["op"] == "write":
            plan = plan_write(registry, registry.tables[step["table"]], write_rows(registry, step))
            calls = plan.calls(step["ttl_ms"], step["max_rows_per_call"])
            assert [(hexes(k), hexes(a)) for k, a in calls] == [
                (c["keys_hex"], c["argv_hex"]) for c in step["calls"]]
        else:
            plan = plan_read(registry, parse_refs(step["feature_refs"]), entity_rows(step),
                             max_age(step))
            assert [t.name for t in plan.tables] == step["tables"]
            calls = plan.calls(step["max_cells_per_call"])
            assert [(hexes(k), hexes(a)) for k, a in calls] == [
                (c["keys_hex"], c["argv_hex"]) for c in step["calls"]]
            replies = [bytes.fromhex(c["reply_hex"]) for c in step["calls"]]
            check_response(GetOnlineFeaturesResponse(plan, [decode_reply(r) for r in replies]),
                           step["expected"])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_reply_parts_match_reply(name):
    """reply_parts (for readers of the JSON) agree with reply_hex and with each other."""
    for step in SCENARIOS[name]["steps"]:
        if step["op"] != "read":
            continue
        refs, tables = len(step["feature_refs"]), len(step["tables"])
        for call in step["calls"]:
            now, statuses, stamps, values = msgpack.unpackb(bytes.fromhex(call["reply_hex"]),
                                                           timestamp=3)
            parts = call["reply_parts"]
            rows = len(call["keys_hex"]) // len(step["key_groups"])
            assert now == 0 and len(statuses) == rows * refs and len(stamps) == 8 * rows * tables
            assert list(statuses) == parts["statuses"]
            assert list(struct.unpack(f">{rows * tables}q", stamps)) == parts["event_ts_us"]
            assert [msgpack.unpackb(bytes.fromhex(v), timestamp=3) for v in
                    parts["values_msgpack_hex"]] == values
            for status, cell in zip(parts["statuses"], parts["values_msgpack_hex"]):
                assert (status == 1) == (cell != "c0")


# ------------------------------------------------------------------------------------------------
# requests.json, live: replay against a real redis-server
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with RedisServer() as s:
        yield s


@pytest.fixture
def conn(server):
    c = Resp(server.port)
    c.ok("FLUSHALL")
    c.ok("SCRIPT", "FLUSH")
    shas = {}
    for name, script in load_scripts().items():
        shas[name] = c.ok("SCRIPT", "LOAD", script.source).decode()
        assert shas[name] == script.sha == json.loads(
            (ROOT / "lua" / "manifest.json").read_text())["scripts"][name]["sha1"]
    c.shas = shas
    yield c
    c.ok("CONFIG", "SET", "maxmemory", "0")
    c.close()


def replay(conn, call: dict) -> object:
    keys = [bytes.fromhex(k) for k in call["keys_hex"]]
    argv = [bytes.fromhex(a) for a in call["argv_hex"]]
    return conn.call(call["command"], conn.shas[call["script"]], len(keys), *keys, *argv)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_replay(conn, name):
    for step in SCENARIOS[name]["steps"]:
        for call in step["calls"]:
            reply = replay(conn, call)
            assert not isinstance(reply, RespError), reply.line
            if step["op"] == "read":
                assert masked(reply).hex() == call["reply_hex"]
            else:
                assert reply == call["reply"]
        if step["op"] == "write" and step["ttl_ms"] > 0:
            for call in step["calls"]:
                for key in call["keys_hex"]:
                    assert 0 < conn.ok("PTTL", bytes.fromhex(key)) <= step["ttl_ms"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_through_client(conn, server, name):
    """The same scenario through the public Client API gives the recorded responses."""
    scenario = SCENARIOS[name]
    reads = [s for s in scenario["steps"] if s["op"] == "read"]
    cells = {s["max_cells_per_call"] for s in reads}
    assert len(cells) == 1
    with Client(server.url, project=scenario["project"], max_cells_per_call=cells.pop()) as client:
        for step in scenario["steps"]:
            if step["op"] == "apply":
                registry = client.apply(build_objects(step["objects"]))
                assert json.loads(registry.to_json()) == step["registry_after"]
            elif step["op"] == "write":
                ttl = timedelta(milliseconds=step["ttl_ms"]) if step["ttl_ms"] else None
                result = client.write_rows(step["table"], write_rows(registry, step), ttl=ttl)
                assert (result.written, result.skipped) == (step["result"]["written"],
                                                            step["result"]["skipped"])
            else:
                response = client.get_online_features(step["feature_refs"], entity_rows(step),
                                                       max_age=max_age(step))
                check_response(response, step["expected"])
                assert YEAR_2020_US < response.server_time_us < YEAR_2099_US


@pytest.mark.parametrize("case", REQUESTS["errors"], ids=lambda c: c["description"][:60])
def test_error_reply(conn, case):
    for command in case["setup"]:
        if "args_hex" in command:
            conn.ok(*command["command"], *[bytes.fromhex(a) for a in command["args_hex"]])
        else:
            conn.ok(*command["command"])
    try:
        reply = replay(conn, case)
    finally:
        for command in case["setup"]:
            if "undo" in command:
                conn.ok(*command["undo"])
    if "reply_hex" in case:
        assert isinstance(reply, bytes)
        assert masked(reply).hex() == case["reply_hex"]
    else:
        assert isinstance(reply, RespError), f"expected an error, got {reply!r}"
        if "error" in case:
            assert reply.line == case["error"]
        else:
            assert reply.line.startswith(case["error_prefix"]), reply.line
    for key in case.get("keys_absent_after_hex", []):
        assert conn.ok("EXISTS", bytes.fromhex(key)) == 0


def test_redis_py_sees_the_same_read_reply(server):
    """The bulk reply redis-py returns is the same bytes the raw RESP replay compares."""
    step = SCENARIOS["worked_example"]["steps"][-1]
    (call,) = step["calls"]
    client = redis.Redis.from_url(server.url)
    try:
        client.flushall()
        for s in SCENARIOS["worked_example"]["steps"][:2]:
            for c in s["calls"]:
                client.eval(load_scripts()[c["script"]].source, len(c["keys_hex"]),
                            *[bytes.fromhex(k) for k in c["keys_hex"]],
                            *[bytes.fromhex(a) for a in c["argv_hex"]])
        assert client.script_load(load_scripts()["read"].source) == load_scripts()["read"].sha
        reply = client.evalsha(load_scripts()["read"].sha, 1, bytes.fromhex(call["keys_hex"][0]),
                               *[bytes.fromhex(a) for a in call["argv_hex"]])
        assert masked(reply).hex() == call["reply_hex"]
    finally:
        client.close()


@pytest.mark.parametrize("case", REQUESTS["stream_writes"], ids=lambda c: c["description"][:60])
def test_stream_write_replay(conn, case):
    """stream_write against a stream built by the recorded setup commands gives the recorded
    replies, errors and stored rows."""
    for command in case["setup"]:
        conn.ok(*[bytes.fromhex(a) for a in command["args_hex"]])
    for call in case["calls"]:
        reply = replay(conn, call)
        if "reply" in call:
            assert reply == call["reply"]
        else:
            assert isinstance(reply, RespError), f"expected an error, got {reply!r}"
            if "error" in call:
                assert reply.line == call["error"]
            else:
                assert reply.line.startswith(call["error_prefix"]), reply.line
    for key, stored in case["stored_after_hex"].items():
        got = conn.ok("HGET", bytes.fromhex(key), b"driver_trips")
        assert (got.hex() if got is not None else None) == stored
    if "pending_after" in case:
        assert conn.ok("XPENDING", b"events", b"workers")[0] == case["pending_after"]
