"""Hostile input, at the public API and at the scripts through raw EVALSHA / EVALSHA_RO.

Every case must end in a clear error (a FeastLuaError from the client; BADREQUEST, BADROW,
CONFLICT or WRONGTYPE from a script) or in a legitimate result, and an error must leave the
keyspace unchanged: each example compares a snapshot (every key's DUMP and TTL) before and
after. After each example the server must still answer, and at the end it must be the same
process with no script cached but the three of lua/: no input ever reached Redis as code.

Example counts scale with FEAST_LUA_EXAMPLES_SCALE (stress/fuzz.py runs the long form).
Known gaps are pinned by strict xfail tests at the end (docs/RELIABILITY.md, "Known gaps").
"""

from __future__ import annotations

import json
import re
import struct
import time
from datetime import datetime, timedelta, timezone

import msgpack
import pytest
import redis
from conftest import SEED_REFS, driver, driver_trips, trip_row
from helpers_redis import cached_scripts, examples, script_calls, snapshot
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from feast_lua import Entity, FeastLuaError, Feature, FeatureTable, ValueType
from feast_lua.keys import entity_key
from feast_lua.loader import load_scripts
from feast_lua.registry_store import registry_key
from feast_lua.rows import pack_row

SCRIPTS = load_scripts()
FUZZ = settings(max_examples=examples(200), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
NOW = datetime.now(timezone.utc)
NOT_A_HASH = b"{}fl:7:default9:driver_idi4:9999"  # a store-shaped key holding a string

# --- Hostile values -------------------------------------------------------------------------------

HOSTILE = [
    "", " ", "'", '"', "\n", "\r\n", "\t", "]]", "[[", "]=]", "[==[", "--", "--[[", "%", "%s", "%d",
    "%n", "%%", "\\", "\\0", "\x00", "\x7f", "é", "☕", "\u202e", "\ud800",
    "redis.call('FLUSHALL')", "]] redis.call('FLUSHALL') --[[", "'); redis.call('DEL', KEYS[1]) --",
    "os.exit()", "return 1", "${jndi:x}", "{}", "{}fl:", "{}fl:registry:7:default", "*", "?", "[a-z]",
    "*1\r\n$8\r\nFLUSHALL\r\n", "driver_trips", "driver_trips:rating", "driver_trips:", ":rating", ":",
    "a:b:c", "driver_id", "event_timestamp", "created_timestamp", "statuses", "default", "x" * 300,
]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=12),
    st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=4).map("".join),
)
hostile_bytes = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"\xff", b"\xc0", b"\x80abc", b"\xed\xa0\x80", b"\x00\x00", b"\xfe\xff"]),
    hostile_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
)
numbers = st.one_of(
    st.integers(-10, 10), st.integers(-(2**70), 2**70),
    st.sampled_from([2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, hostile_text, hostile_bytes,
    st.datetimes(timezones=st.one_of(st.none(), st.just(timezone.utc))),
    st.sampled_from([datetime.min, datetime.max, NOW + timedelta(days=365 * 300)]),
    st.timedeltas(), st.just(object()),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=3),
                            st.tuples(inner), st.frozensets(st.integers(), max_size=3)),
    max_leaves=8,
)


@pytest.fixture
def store(raw, client):
    """A seeded store: the registry, a few entities, and a store-shaped key that is not a hash."""
    client.apply([driver, driver_trips])
    client.write_rows("driver_trips", [trip_row(i) for i in range(5)])
    raw.set(NOT_A_HASH, b"plain string")
    for script in SCRIPTS.values():
        raw.script_load(script.source)
    raw.config_resetstat()
    pid = raw.info("server")["process_id"]
    yield raw
    assert raw.ping()
    assert raw.info("server")["process_id"] == pid  # the same server process: nothing crashed it
    assert cached_scripts(raw) == len(SCRIPTS)  # no input was ever cached as a script
    assert script_calls(raw)["eval"] == script_calls(raw)["eval_ro"] == 0


def restore(raw: redis.Redis, snap: dict) -> None:
    """Puts the keyspace back as in `snap` (the fixture's keys carry no TTL)."""
    for key in raw.scan_iter(count=1000):
        if key not in snap:
            raw.delete(key)
    for key, (dump, _) in snap.items():
        raw.restore(key, 0, dump, replace=True)


def outcome(fn):
    try:
        return fn(), None
    except FeastLuaError as e:
        return None, e


def check_clear(error: Exception) -> None:
    """A clear error says what is wrong in words, not just a type name."""
    assert isinstance(error, FeastLuaError), repr(error)
    assert len(str(error)) >= 10, repr(error)


# --- The public API ---------------------------------------------------------------------------------

refs_inputs = st.one_of(
    st.lists(st.one_of(st.sampled_from(SEED_REFS), hostile_text, anything), max_size=6),
    st.lists(st.sampled_from(SEED_REFS), min_size=1, max_size=3, unique=True),
    anything,
    st.just([f"driver_trips:f{i}" for i in range(5_000)]),
)
entity_rows_inputs = st.one_of(
    st.lists(st.dictionaries(st.one_of(st.just("driver_id"), hostile_text), anything, max_size=3),
             max_size=5),
    st.lists(st.fixed_dictionaries({"driver_id": st.one_of(st.integers(-5, 10), anything)}),
             min_size=1, max_size=5),
    anything,
    st.builds(lambda n, v: [{"driver_id": v}] * n, st.sampled_from([0, 1, 20_000]),
              st.one_of(st.integers(0, 10), anything)),
)
projects = st.one_of(st.none(), st.just("default"), st.just("other"), hostile_text, anything)
max_ages = st.one_of(st.none(), st.dictionaries(st.sampled_from(["driver_trips", "x"]),
                                                st.timedeltas(timedelta(0), timedelta(days=3650)),
                                                max_size=2))


@FUZZ
@given(refs=refs_inputs, rows=entity_rows_inputs, project=projects, max_age=max_ages)
def test_get_online_features_with_hostile_input(store, client, refs, rows, project, max_age):
    before = snapshot(store)
    response, error = outcome(lambda: client.get_online_features(refs, rows, project=project,
                                                                 max_age=max_age))
    if error is not None:
        check_clear(error)
    else:
        assert len(response) == len(rows)
        response.to_dict(include_statuses=True, include_event_timestamps=True)
    assert snapshot(store) == before


row_keys = st.one_of(st.sampled_from(["driver_id", "average_daily_rides", "maximum_daily_rides",
                                      "rating", "event_timestamp", "created_timestamp"]), hostile_text)


@st.composite
def write_rows_inputs(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:  # rows of random columns
        return draw(st.lists(st.dictionaries(row_keys, anything, max_size=6), max_size=4))
    if kind == 1:  # valid rows with one cell replaced by something hostile
        rows = [trip_row(i) for i in range(draw(st.integers(1, 3)))]
        target = draw(st.sampled_from(rows))
        target[draw(row_keys)] = draw(anything)
        return rows
    if kind == 2:
        return draw(anything)
    return [trip_row(1)] * 3000 + [draw(anything)]  # a huge batch, bad at the very end


@FUZZ
@given(table=st.one_of(st.just("driver_trips"), hostile_text, anything), rows=write_rows_inputs(),
       project=projects, ttl=st.one_of(st.none(), st.timedeltas(), anything))
def test_write_rows_with_hostile_input(store, client, table, rows, project, ttl):
    before = snapshot(store)
    result, error = outcome(lambda: client.write_rows(table, rows, project=project, ttl=ttl))
    if error is not None:
        check_clear(error)
        assert snapshot(store) == before
    else:
        assert result.written + result.skipped == len(rows)
        restore(store, before)


value_types = st.one_of(st.sampled_from(list(ValueType)), hostile_text, anything)


@FUZZ
@given(data=st.data(), project=projects)
def test_apply_with_hostile_input(store, client, data, project):
    before = snapshot(store)

    def build_and_apply():
        kind = data.draw(st.integers(0, 3), label="kind")
        if kind == 0:
            objects = Entity(data.draw(hostile_text, label="entity"), data.draw(value_types, label="type"))
        elif kind == 1:
            features = [Feature(data.draw(hostile_text, label="feature"), data.draw(value_types, label="ft"))]
            objects = FeatureTable(data.draw(hostile_text, label="table"),
                                   data.draw(st.one_of(st.just(["driver_id"]), anything), label="entities"),
                                   features, data.draw(st.one_of(st.none(), anything), label="max_age"))
        elif kind == 2:  # an entity in use changing type, a table changing entities
            objects = data.draw(st.sampled_from([
                [Entity("driver_id", ValueType.STRING)],
                [Entity("rider", ValueType.INT64),
                 FeatureTable("driver_trips", ["rider"], [Feature("rating", ValueType.FLOAT)])],
                [FeatureTable("driver_trips", ["driver_id"], [])],
            ]), label="conflict")
        else:
            objects = data.draw(anything, label="objects")
        return client.apply(objects, project=project)

    try:
        build_and_apply()
    except FeastLuaError as e:
        check_clear(e)
        assert snapshot(store) == before
        return
    restore(store, before)  # a valid definition (a random name can be one)


# --- The scripts, through raw EVALSHA ------------------------------------------------------------

def numeral(n: int) -> bytes:
    return b"%d" % n


BAD_NUMERALS = [b"", b"-1", b"1e3", b" 1", b"1 ", b"0x1", b"1.0", b"+1", b"\xff", b"inf", b"nan",
                b"00", b"9007199254740993", b"99999999999999999999"]
argv_numbers = st.one_of(st.integers(0, 8).map(numeral), st.sampled_from(BAD_NUMERALS),
                         st.integers(0, 2**53).map(numeral))
small_numbers = st.one_of(st.integers(0, 8).map(numeral), st.sampled_from(BAD_NUMERALS))
key_choices = st.one_of(
    st.sampled_from([entity_key("default", {"driver_id": (ValueType.INT64, i)}) for i in range(6)]),
    st.just(registry_key("default")), st.just(b"{}fl:7:default"), hostile_bytes,
)


@st.composite
def mutated(draw, argv: list[bytes]) -> list[bytes]:
    """Wrong ARGV counts and misplaced values: drop, duplicate or insert elements."""
    argv = list(argv)
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["drop", "dup", "insert", "replace"]))
        i = draw(st.integers(0, len(argv)))
        if op == "drop" and argv:
            del argv[min(i, len(argv) - 1)]
        elif op == "dup" and argv:
            argv.insert(i, argv[min(i, len(argv) - 1)])
        elif op in ("insert", "replace"):
            value = draw(st.one_of(small_numbers, hostile_bytes))
            if op == "replace" and argv:
                argv[min(i, len(argv) - 1)] = value
            else:
                argv.insert(i, value)
    return argv


@st.composite
def read_calls(draw):
    tables = draw(st.integers(0, 4))
    groups = draw(st.integers(1, 3))
    argv = [draw(st.one_of(st.just(numeral(groups)), small_numbers)),
            draw(st.one_of(st.just(numeral(tables)), small_numbers, st.just(b"1001")))]
    for _ in range(tables):
        argv += [draw(st.one_of(st.just(b"driver_trips"), hostile_bytes)),
                 draw(st.one_of(st.integers(0, groups + 1).map(numeral), small_numbers)),
                 draw(argv_numbers)]
    refs = draw(st.integers(0, 5))
    argv.append(draw(st.one_of(st.just(numeral(refs)), small_numbers)))
    for _ in range(refs):
        argv += [draw(st.one_of(st.integers(0, tables + 1).map(numeral), small_numbers)),
                 draw(st.one_of(st.integers(0, 4).map(numeral), argv_numbers))]
    argv = draw(mutated(argv))
    keys = draw(st.lists(st.one_of(key_choices, st.just(NOT_A_HASH)), max_size=3 * groups))
    if draw(st.integers(0, 20)) == 0:
        keys = keys * 2_000  # thousands of keys
    return keys, argv


def too_many_groups(argv: list[bytes]) -> bool:
    """ARGV[1] above 10,000: the read script allocates per key group before it checks that each
    has a table (test_read_script_refuses_more_key_groups_than_tables, xfail)."""
    return bool(argv) and re.fullmatch(rb"\d{1,16}", argv[0]) is not None and int(argv[0]) > 10_000


def raw_call(raw: redis.Redis, command: str, sha: str, keys: list[bytes], argv: list[bytes]):
    try:
        return raw.execute_command(command, sha, len(keys), *keys, *argv), None
    except redis.exceptions.ResponseError as e:
        return None, e


def error_code(error: Exception) -> str:
    # redis-py strips some codes into exception types; WRONGTYPE stays in the message.
    text = str(error)
    return text.split(" ", 1)[0]


@FUZZ
@given(call=read_calls(), command=st.sampled_from(["EVALSHA_RO", "EVALSHA"]))
def test_read_script_with_hostile_calls(store, call, command):
    keys, argv = call
    assume(not too_many_groups(argv))
    before = snapshot(store)
    reply, error = raw_call(store, command, SCRIPTS["read"].sha, keys, argv)
    if error is not None:
        assert error_code(error) in ("BADREQUEST", "BADROW", "WRONGTYPE"), str(error)
    else:
        now, statuses, stamps, values = msgpack.unpackb(reply)
        assert len(statuses) == len(values) and len(stamps) % 8 == 0
    assert snapshot(store) == before
    assert store.ping()


def row_bytes():
    """Packed rows: valid ones, and valid ones broken in one place."""
    cells = st.lists(st.one_of(st.just(b"\xc0"), st.binary(min_size=1, max_size=6),
                               st.integers(-5, 5).map(msgpack.packb)), max_size=4)
    valid = st.builds(pack_row, st.integers(-(2**62), 2**62), st.integers(-(2**63), 2**63 - 1), cells)

    @st.composite
    def broken(draw):
        row = bytearray(draw(valid))
        how = draw(st.sampled_from(["truncate", "flip", "format", "count", "extend"]))
        if how == "truncate":
            del row[draw(st.integers(0, len(row))):]
        elif how == "flip" and row:
            i = draw(st.integers(0, len(row) - 1))
            row[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "format":
            row[0] = draw(st.integers(0, 255))
        elif how == "count":
            row[17:19] = struct.pack(">H", draw(st.integers(0, 65535)))
        else:
            row += draw(st.binary(min_size=1, max_size=4))
        return bytes(row)

    return st.one_of(valid, broken(), hostile_bytes)


@st.composite
def write_calls(draw):
    rows = draw(st.lists(row_bytes(), max_size=4))
    keys = draw(st.lists(key_choices, min_size=len(rows), max_size=len(rows)))
    argv = [draw(st.one_of(st.just(b"driver_trips"), hostile_bytes)),
            draw(st.one_of(st.just(b"0"), argv_numbers)), *rows]
    return keys, draw(mutated(argv))


@FUZZ
@given(call=write_calls())
def test_write_script_with_hostile_calls(store, call):
    keys, argv = call
    before = snapshot(store)
    reply, error = raw_call(store, "EVALSHA", SCRIPTS["write"].sha, keys, argv)
    if error is not None:
        assert error_code(error) in ("BADREQUEST", "BADROW", "WRONGTYPE"), str(error)
        assert snapshot(store) == before
    else:
        written, skipped = reply
        assert written + skipped == len(keys)
        restore(store, before)
    assert store.ping()
    # EVALSHA_RO never runs the write script.
    _, error = raw_call(store, "EVALSHA_RO", SCRIPTS["write"].sha, keys, argv)
    assert error is not None and "write flag" in str(error)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def registry_put_calls(draw):
    version = draw(st.integers(0, 3))
    doc = draw(json_values)
    if draw(st.booleans()):
        doc = {**(doc if isinstance(doc, dict) else {}), "format": draw(st.sampled_from([1, 1, 2, "1", 1.5])),
               "version": draw(st.sampled_from([version + 1, version, "x", version + 1.0]))}
    encoded = draw(st.one_of(st.just(json.dumps(doc).encode()), hostile_bytes,
                             st.just(json.dumps(doc).encode()[:-1]), st.just(b"[" * 5_000)))
    argv = [draw(st.one_of(st.just(numeral(version)), small_numbers)), encoded]
    keys = draw(st.lists(st.one_of(st.just(registry_key("fuzz")), key_choices, st.just(NOT_A_HASH)),
                         min_size=0, max_size=2))
    return keys, draw(mutated(argv))


@FUZZ
@given(call=registry_put_calls())
def test_registry_put_script_with_hostile_calls(store, call):
    keys, argv = call
    before = snapshot(store)
    reply, error = raw_call(store, "EVALSHA", SCRIPTS["registry_put"].sha, keys, argv)
    if error is not None:
        assert error_code(error) in ("BADREQUEST", "CONFLICT", "WRONGTYPE"), str(error)
        assert snapshot(store) == before
        return
    # Accepted: what the script checks holds, read the way any client reads the document.
    doc = json.loads(argv[1])
    assert doc["format"] == 1 and doc["version"] == int(argv[0]) + 1 == reply
    restore(store, before)


# --- No input reaches a script as code -----------------------------------------------------------

def test_hostile_strings_are_stored_and_read_back_as_data(raw, client):
    customer = Entity("customer_id", ValueType.STRING)
    notes = FeatureTable("notes", ["customer_id"], [Feature("text", ValueType.STRING),
                                                    Feature("raw", ValueType.BYTES)])
    client.apply([customer, notes])
    for script in SCRIPTS.values():  # the count below is then every shipped script, and no more
        raw.script_load(script.source)
    raw.config_resetstat()
    values = [s for s in HOSTILE if s != "\ud800"]
    rows = [{"customer_id": v, "text": v[::-1], "raw": v.encode() + b"\xff\x00",
             "event_timestamp": NOW} for v in values]
    assert client.write_rows("notes", rows).written == len(set(values))
    got = client.get_online_features(["notes:text", "notes:raw"], [{"customer_id": v} for v in values])
    assert got.to_dict()["notes:text"] == [v[::-1] for v in values]
    assert got.to_dict()["notes:raw"] == [v.encode() + b"\xff\x00" for v in values]
    expected = {entity_key("default", {"customer_id": (ValueType.STRING, v)}) for v in values}
    assert set(raw.scan_iter()) == expected | {registry_key("default")}  # nothing else touched
    assert cached_scripts(raw) == len(SCRIPTS)
    assert script_calls(raw)["eval"] == script_calls(raw)["eval_ro"] == 0


# --- Gaps found by fuzzing, now fixed: each pins its fix ----------------------------------------

def test_read_script_refuses_more_key_groups_than_tables(store):
    start = time.monotonic()
    _, error = raw_call(store, "EVALSHA_RO", SCRIPTS["read"].sha, [],
                        [b"200000", b"1", b"t", b"1", b"0", b"1", b"1", b"0"])
    elapsed = time.monotonic() - start
    # Refused up front, since every key group has a table (G <= T): nothing is allocated per group.
    assert error is not None and "ARGV[1]" in str(error) and elapsed < 0.01


def test_write_script_leaves_nothing_when_a_key_is_not_a_hash(store, client):
    registry = client.registry.get("default")
    from feast_lua.write import plan_write

    plan = plan_write(registry, registry.tables["driver_trips"],
                      [trip_row(1, rating=1.0, ts=NOW + timedelta(days=1)), trip_row(9999)])
    keys, argv = plan.calls()[0]
    assert keys[1] == NOT_A_HASH
    before = snapshot(store)
    _, error = raw_call(store, "EVALSHA", SCRIPTS["write"].sha, keys, argv)
    assert error is not None and "WRONGTYPE" in str(error)
    assert snapshot(store) == before


@pytest.mark.parametrize("doc", [
    {"tables": []},
    {"project": "default", "entities": {}, "tables": {"t": {}}},
    {"project": "default", "entities": {"e": {"value_type": "NOPE"}}, "tables": {}},
    {"project": 5, "entities": [], "tables": "x"},
])
def test_registry_put_refuses_documents_of_the_wrong_shape(store, doc):
    key = registry_key("shape")
    before = snapshot(store)
    _, error = raw_call(store, "EVALSHA", SCRIPTS["registry_put"].sha, [key],
                        [b"0", json.dumps({"format": 1, "version": 1, **doc}).encode()])
    assert error is not None and "BADREQUEST" in str(error)
    assert snapshot(store) == before


def test_a_malformed_stored_registry_gives_a_clear_error(raw, client):
    raw.hset(registry_key("default"), mapping={"version": 1, "doc": b'{"format": 1, "version": 1}'})
    with pytest.raises(FeastLuaError, match="malformed"):
        client.get_online_features(SEED_REFS, [{"driver_id": 1}])


def test_a_bad_max_age_override_raises_a_feast_lua_error(raw, client):
    client.apply([driver, driver_trips])
    with pytest.raises(FeastLuaError):
        client.get_online_features(SEED_REFS, [{"driver_id": 1}], max_age={"driver_trips": 60})
