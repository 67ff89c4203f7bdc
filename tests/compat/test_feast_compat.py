"""Differential test against the real feast package (0.67, its own venv): Feast applies a repo and
writes rows with write_to_online_store, feast-lua reads the same Redis in Feast's layout, and the
values agree cell by cell; where Feast's status is wrong (it reports PRESENT for never-written
entities, nulls, and rows past their ttl) feast-lua's is the correct one. Then the reverse: rows
feast-lua writes read back identically through Feast, byte for byte the same hash.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime, timedelta, timezone

import feast_wire
import pytest
import redis

from feast_lua import FeastDefinitions, FeastLayoutClient, FieldStatus
from feast_lua.constants import FEAST_NULL_TIMESTAMP_PROTO

pytestmark = pytest.mark.compat

PROJECT = "compat"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
FRESH = NOW - timedelta(minutes=5)
STALE = NOW - timedelta(days=3)

ENTITIES = [
    {"name": "driver", "join_key": "driver_id", "value_type": "INT64"},
    {"name": "customer", "join_key": "customer_id", "value_type": "STRING"},
    {"name": "device", "join_key": "device_id", "value_type": "INT32"},
    {"name": "session", "join_key": "session_id", "value_type": "BYTES"},
]
SCALARS = {"i32": "INT32", "i64": "INT64", "f32": "FLOAT", "f64": "DOUBLE", "s": "STRING",
           "b": "BYTES", "ok": "BOOL", "ts": "UNIX_TIMESTAMP"}
LISTS = {f"{name}_list": f"{kind}_LIST" for name, kind in SCALARS.items()}
VIEWS = [
    {"name": "driver_stats", "entities": ["driver"], "features": SCALARS, "ttl_seconds": 86400},
    {"name": "driver_lists", "entities": ["driver"], "features": LISTS, "ttl_seconds": 0},
    {"name": "customer_driver", "entities": ["customer", "driver"],
     "features": {"trips": "INT64", "last_city": "STRING"}, "ttl_seconds": 3600},
    {"name": "device_health", "entities": ["device"], "features": {"temp": "DOUBLE"}, "ttl_seconds": 86400},
    {"name": "session_stats", "entities": ["session"], "features": {"clicks": "INT32"}, "ttl_seconds": 0},
]


def scalars(k: int) -> dict:
    # Feast turns an integer column holding a null into float64 on its way to the store, so
    # INT64 values here are multiples of 1024 near 2^62, exact in a float64 (see the bytes test).
    return {"i32": -(2**31) + k, "i64": 2**62 + 1024 * k, "f32": 0.1 * k, "f64": -1e300 / (k + 1),
            "s": f"café ☕ {k}", "b": bytes([0, 255, k]), "ok": k % 2 == 0,
            "ts": datetime(2021, 4, 12, 10, 59, 42 + k, tzinfo=timezone.utc)}


def lists(k: int) -> dict:
    one = scalars(k)
    two = scalars(k + 1)
    out = {f"{name}_list": [one[name], two[name]] for name in SCALARS}
    out["s_list"] = []  # an empty list is a value, not a null
    return out


NULLS_STATS = {name: None for name in SCALARS}
NULLS_LISTS = {name: None for name in LISTS}

# driver_id -> (event time, driver_stats row, driver_lists row); driver 4 is never written.
DRIVERS = {
    1: (FRESH, scalars(1), lists(1)),
    2: (FRESH, NULLS_STATS, NULLS_LISTS),
    3: (STALE, scalars(3), lists(3)),
}
# (customer_id, driver_id) -> (event time, row); ("carol", 4) is never written.
PAIRS = {("alice", 1): (FRESH, {"trips": 7, "last_city": "Zürich"}),
         ("bob", 2): (NOW - timedelta(hours=2), {"trips": 3, "last_city": "Oslo"}),
         ("dan", 3): (FRESH, {"trips": None, "last_city": None})}
DEVICES = {-5: (FRESH, {"temp": 36.6}), 2**31 - 1: (STALE, {"temp": float("inf")})}
SESSIONS = {b"\x00s1": (STALE, {"clicks": 4}), b"s2": (FRESH, {"clicks": None})}
READ_ROWS = [
    {"driver_id": 1, "customer_id": "alice", "device_id": -5, "session_id": b"\x00s1"},
    {"driver_id": 2, "customer_id": "bob", "device_id": 2**31 - 1, "session_id": b"s2"},
    {"driver_id": 3, "customer_id": "dan", "device_id": 0, "session_id": b"s3"},
    {"driver_id": 4, "customer_id": "carol", "device_id": 7, "session_id": b""},
]
REFS = ([f"driver_stats:{n}" for n in SCALARS] + [f"driver_lists:{n}" for n in LISTS]
        + ["customer_driver:trips", "customer_driver:last_city", "device_health:temp",
           "session_stats:clicks"])


def _rows(view: str) -> list[dict]:
    if view == "driver_stats":
        return [{"driver_id": d, **stats, "event_timestamp": ts} for d, (ts, stats, _) in DRIVERS.items()]
    if view == "driver_lists":
        return [{"driver_id": d, **lst, "event_timestamp": ts} for d, (ts, _, lst) in DRIVERS.items()]
    if view == "customer_driver":
        return [{"customer_id": c, "driver_id": d, **row, "event_timestamp": ts}
                for (c, d), (ts, row) in PAIRS.items()]
    if view == "session_stats":
        return [{"session_id": k, **row, "event_timestamp": ts} for k, (ts, row) in SESSIONS.items()]
    return [{"device_id": d, **row, "event_timestamp": ts} for d, (ts, row) in DEVICES.items()]


def _stored(row: dict, ref: str) -> tuple[datetime, object] | None:
    """(event time, written value) of a cell, or None when nothing was written for it."""
    view, feature = ref.split(":")
    if view in ("driver_stats", "driver_lists"):
        entry = DRIVERS.get(row["driver_id"])
        if entry is None:
            return None
        return entry[0], (entry[1] if view == "driver_stats" else entry[2])[feature]
    if view == "customer_driver":
        entry = PAIRS.get((row["customer_id"], row["driver_id"]))
    elif view == "session_stats":
        entry = SESSIONS.get(row["session_id"])
    else:
        entry = DEVICES.get(row["device_id"])
    return None if entry is None else (entry[0], entry[1][feature])


def _view_ttl(view: str) -> timedelta:
    return timedelta(seconds=next(v["ttl_seconds"] for v in VIEWS if v["name"] == view))


def expected_status(row: dict, ref: str) -> FieldStatus:
    stored = _stored(row, ref)
    if stored is None:
        return FieldStatus.NOT_FOUND
    event, value = stored
    ttl = _view_ttl(ref.split(":")[0])
    if ttl and NOW - event > ttl:
        return FieldStatus.OUTSIDE_MAX_AGE
    return FieldStatus.NULL_VALUE if value is None else FieldStatus.PRESENT


def same(a: object, b: object) -> bool:
    """Equal values, floats compared as floats (the FLOAT column holds float32s on both sides)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def applied(feast):
    feast.ask("apply_repo", redis=feast.redis_address, project=PROJECT, entities=ENTITIES, views=VIEWS)
    return feast


def feast_write_all(side, redis_server) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    for view in VIEWS:
        side.ask("write_rows", view=view["name"], rows=feast_wire.encode(_rows(view["name"])))


@pytest.fixture
def feast_written(applied, redis_server):
    """A database holding exactly what Feast wrote (tests after it may write more)."""
    feast_write_all(applied, redis_server)
    return applied


@pytest.fixture(scope="module")
def definitions(applied) -> FeastDefinitions:
    """Read from the Feast repo itself (describe_repo runs in Feast's venv)."""
    return FeastDefinitions.from_dict(applied.ask("describe")["definitions"])


@pytest.fixture
def lua(definitions, redis_server):
    with FeastLayoutClient(definitions, redis_server.url) as client:
        yield client


def test_definitions_from_the_repo_match_what_was_applied(definitions):
    assert definitions.project == PROJECT
    assert {e.join_key: e.value_type.name for e in definitions.entities.values()} == {
        e["join_key"]: e["value_type"] for e in ENTITIES}
    for view in VIEWS:
        loaded = definitions.view(view["name"])
        assert {n: t.name for n, t in loaded.features.items()} == view["features"]
        assert loaded.ttl_us == view["ttl_seconds"] * 1_000_000
        joins = {e["name"]: e["join_key"] for e in ENTITIES}
        assert sorted(loaded.join_keys) == sorted(joins[e] for e in view["entities"])


def test_reads_what_feast_wrote_with_correct_statuses(feast_written, lua):
    theirs = feast_written.ask("online", refs=REFS, rows=feast_wire.encode(READ_ROWS))
    feast_values = feast_wire.decode(theirs["values"])
    ours = lua.get_online_features(REFS, READ_ROWS)
    values = ours.to_dict()
    statuses = ours.statuses()
    stamps = ours.event_timestamps()
    feast_wrong = 0
    for ref in REFS:
        for r, row in enumerate(READ_ROWS):
            want = expected_status(row, ref)
            where = f"{ref} row {row}"
            assert statuses[ref][r] == want, where
            stored = _stored(row, ref)
            if want == FieldStatus.PRESENT:
                assert same(values[ref][r], feast_values[ref][r]), (where, values[ref][r])
                assert feast_values[ref][r] is not None, where
            else:
                assert values[ref][r] is None, where
            if want == FieldStatus.OUTSIDE_MAX_AGE and stored[1] is not None:
                # Feast 0.67 ignores the ttl online and serves the stale value.
                assert feast_values[ref][r] is not None, where
            if want in (FieldStatus.NOT_FOUND, FieldStatus.NULL_VALUE):
                assert feast_values[ref][r] is None, where
            if stored is not None:
                assert stamps[ref][r] == stored[0], where
            if theirs["statuses"][ref][r] != want.name:
                feast_wrong += 1
    # The reason this mode exists: Feast's own statuses are wrong for many of these cells.
    assert feast_wrong > 0


def test_stale_values_feast_serves_are_the_written_ones(feast_written, lua):
    """Where feast-lua says OUTSIDE_MAX_AGE, Feast (ignoring ttl) still serves the stored value; with
    the ttl check lifted, feast-lua serves the same value."""
    refs = [f"driver_stats:{n}" for n in SCALARS]
    rows = [{"driver_id": 3}]
    theirs = feast_wire.decode(feast_written.ask("online", refs=refs, rows=feast_wire.encode(rows))["values"])
    ours = lua.get_online_features(refs, rows)
    assert set(ours.statuses()[refs[0]]) == {FieldStatus.OUTSIDE_MAX_AGE}
    fresh_defs = FeastDefinitions.from_dict({
        **lua.definitions.to_dict(),
        "views": [{**v, "ttl_seconds": 0} for v in lua.definitions.to_dict()["views"]]})
    with FeastLayoutClient(fresh_defs, lua.redis) as unlimited:
        lifted = unlimited.get_online_features(refs, rows).to_dict()
    for ref in refs:
        assert same(lifted[ref][0], theirs[ref][0]), ref
        assert theirs[ref][0] is not None


def test_feast_lua_writes_read_back_identically_through_feast(applied, lua, redis_server):
    raw = redis.Redis.from_url(redis_server.url)
    raw.flushall()
    for view in VIEWS:
        assert lua.write_rows(view["name"], _rows(view["name"])).written == len(_rows(view["name"]))
    theirs = feast_wire.decode(applied.ask("online", refs=REFS, rows=feast_wire.encode(READ_ROWS))["values"])
    ours = lua.get_online_features(REFS, READ_ROWS).to_dict()
    for ref in REFS:
        for r, row in enumerate(READ_ROWS):
            stored = _stored(row, ref)
            if stored is None or stored[1] is None:
                assert theirs[ref][r] is None, (ref, row)
                continue
            # Feast serves every written value (it ignores ttl), and it equals ours where fresh.
            assert theirs[ref][r] is not None, (ref, row)
            if expected_status(row, ref) == FieldStatus.PRESENT:
                assert same(ours[ref][r], theirs[ref][r]), (ref, row, ours[ref][r], theirs[ref][r])


def test_feast_lua_writes_the_same_bytes_as_feast(applied, lua, redis_server):
    raw = redis.Redis.from_url(redis_server.url)
    snapshots = []
    for writer in ("feast", "feast-lua"):
        raw.flushall()
        for view in VIEWS:
            rows = _rows(view["name"])
            if writer == "feast":
                applied.ask("write_rows", view=view["name"], rows=feast_wire.encode(rows))
            else:
                lua.write_rows(view["name"], rows)
        snapshots.append({key: raw.hgetall(key) for key in raw.keys("*")})
    feast_snapshot, lua_snapshot = snapshots
    # One known difference: a null UNIX_TIMESTAMP that Feast took from pandas is NaT, which it
    # stores as unix_timestamp_val -2^63; feast-lua stores every null as the empty Value. Both
    # read back as None through Feast (test above) and as NULL_VALUE through feast-lua.
    for fields in feast_snapshot.values():
        for name, value in fields.items():
            if value == FEAST_NULL_TIMESTAMP_PROTO:
                fields[name] = b""
    assert len(feast_snapshot) == len(DRIVERS) + len(PAIRS) + len(DEVICES) + len(SESSIONS)
    differing = [(key, field.hex(), lua_snapshot.get(key, {}).get(field), value)
                 for key, fields in feast_snapshot.items() for field, value in fields.items()
                 if lua_snapshot.get(key, {}).get(field) != value]
    assert not differing
    assert lua_snapshot == feast_snapshot


def test_newest_wins_against_rows_feast_wrote(feast_written, lua):
    older = [{**row, "event_timestamp": row["event_timestamp"] - timedelta(seconds=1)}
             for row in _rows("driver_stats")]
    assert lua.write_rows("driver_stats", older).skipped == len(older)
    newer = [{**_rows("driver_stats")[0], "i64": -1, "event_timestamp": NOW}]
    assert lua.write_rows("driver_stats", newer).written == 1
    theirs = feast_wire.decode(feast_written.ask(
        "online", refs=["driver_stats:i64"], rows=[{"driver_id": 1}])["values"])
    assert theirs["driver_stats:i64"] == [-1]


def test_rows_ingested_from_a_dataframe_read_back_through_feast(applied, lua, redis_server):
    pd = pytest.importorskip("pandas")
    redis.Redis.from_url(redis_server.url).flushall()
    rows = [{"driver_id": d, **scalars(d), "event_timestamp": FRESH} for d in (11, 12, 13)]
    result = lua.ingest("driver_stats", pd.DataFrame(rows), chunk_rows=2)
    assert (result.written, result.rejected) == (3, 0)
    refs = [f"driver_stats:{n}" for n in SCALARS]
    entity_rows = [{"driver_id": d} for d in (11, 12, 13)]
    theirs = feast_wire.decode(applied.ask("online", refs=refs, rows=entity_rows)["values"])
    for ref in refs:
        expected = [row[ref.split(":")[1]] for row in rows]
        if ref.endswith(":f32"):  # stored as float32 by both
            expected = [struct.unpack("<f", struct.pack("<f", v))[0] for v in expected]
        assert all(same(a, b) for a, b in zip(theirs[ref], expected)), (ref, theirs[ref], expected)
