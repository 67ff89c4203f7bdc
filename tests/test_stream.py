"""Stream ingestion: push(), the StreamWorker, the stream_write script and `feast-lua stream-worker`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from conftest import NOW, SEED_REFS, trip_row
from helpers_redis import snapshot

from feast_lua import ScriptError, ValueTypeError, WriteResult
from feast_lua.cli import main
from feast_lua.keys import entity_key
from feast_lua.rows import pack_row
from feast_lua.stream import StreamWorker
from feast_lua.types import ValueType

STREAM, GROUP, DEAD = b"events", b"workers", b"events:dead-letter"


def key(driver_id: int) -> bytes:
    return entity_key("default", {"driver_id": (ValueType.INT64, driver_id)})


def event(driver_id: int, rating: float = 4.5, ts=None, table="driver_trips", **extra) -> dict:
    row = {"driver_id": driver_id, "average_daily_rides": 3.5, "maximum_daily_rides": 9,
           "rating": rating, "event_timestamp": (ts or NOW).isoformat(), **extra}
    return {"table": table, "row": json.dumps(row)}


def add(raw, *events: dict) -> list[bytes]:
    return [raw.xadd(STREAM, e) for e in events]


def ratings(client, ids) -> list:
    return client.get_online_features(["driver_trips:rating"], [{"driver_id": i} for i in ids]).to_dict()[
        "driver_trips:rating"]


def worker(client, name="w1", **options) -> StreamWorker:
    options.setdefault("block_ms", 0)
    return StreamWorker(client, STREAM, GROUP, name, **options)


def pending(raw) -> int:
    return raw.xpending(STREAM, GROUP)["pending"]


def test_events_are_applied_and_readable(seeded, raw):
    add(raw, event(1, 4.0), event(2, 3.0, ts=NOW - timedelta(seconds=1)),
        {"table": "driver_trips", "project": "default",
         "row": json.dumps({"driver_id": 3, "average_daily_rides": None, "maximum_daily_rides": 1,
                            "rating": 2.0, "event_timestamp": int(NOW.timestamp() * 1e6),
                            "created_timestamp": "2021-01-01T00:00:00Z"})})
    result = worker(seeded).step()
    assert (result.read, result.written, result.skipped, result.dead_lettered) == (3, 3, 0, 0)
    assert ratings(seeded, [1, 2, 3]) == [4.0, 3.0, 2.0]
    d = seeded.get_online_features(SEED_REFS, [{"driver_id": 3}]).to_dict(include_statuses=True)
    assert d["statuses"]["driver_trips:average_daily_rides"][0].name == "NULL_VALUE"
    assert pending(raw) == 0


def test_newest_wins_across_out_of_order_events_and_replays_change_nothing(seeded, raw):
    add(raw, event(1, 3.0, ts=NOW), event(1, 1.0, ts=NOW - timedelta(hours=1)),
        event(1, 5.0, ts=NOW + timedelta(hours=1)), event(1, 2.0, ts=NOW))
    w = worker(seeded, batch=2)
    total = w.run(max_batches=3)
    assert (total.read, total.written, total.skipped) == (4, 2, 2)
    assert ratings(seeded, [1]) == [5.0]
    before = {k: v for k, v in snapshot(raw).items() if k not in (STREAM,)}
    add(raw, event(1, 9.0, ts=NOW + timedelta(hours=1)), event(1, 9.0, ts=NOW))  # replays
    result = w.step()
    assert (result.written, result.skipped) == (0, 2)
    assert {k: v for k, v in snapshot(raw).items() if k not in (STREAM,)} == before


def test_a_batch_over_two_tables_and_projects_applies_each_with_its_ttl(seeded, raw):
    from conftest import customer

    from feast_lua import Feature, FeatureTable

    profile = FeatureTable("profile", ["customer_id"], [Feature("tags", ValueType.STRING_LIST),
                                                        Feature("avatar", ValueType.BYTES)])
    seeded.apply([customer, profile])
    seeded.apply([customer, profile], project="other")
    row = {"customer_id": "c1", "tags": ["a", "b"], "avatar": "AAH/",
           "event_timestamp": 1_700_000_000_000_000}
    add(raw, event(1, 4.0), {"table": "profile", "row": json.dumps(row)}, event(2, 3.0),
        {"table": "profile", "project": "other", "row": json.dumps({**row, "tags": ["z"]})})
    result = worker(seeded, ttl=timedelta(hours=1)).step()
    assert (result.written, result.dead_lettered) == (4, 0) and pending(raw) == 0
    assert ratings(seeded, [1, 2]) == [4.0, 3.0]
    for project, tags in (("default", ["a", "b"]), ("other", ["z"])):
        got = seeded.get_online_features(["profile:tags", "profile:avatar"], [{"customer_id": "c1"}],
                                         project=project, max_age={"profile": timedelta(0)}).to_dict()
        assert got["profile:tags"] == [tags] and got["profile:avatar"] == [b"\x00\x01\xff"]
        assert raw.pttl(entity_key(project, {"customer_id": (ValueType.STRING, "c1")})) > 0
    assert raw.pttl(key(1)) > 0


def test_a_dead_workers_batch_is_reclaimed_and_applied_once(seeded, raw):
    ids = add(raw, event(1, 4.0), event(2, 3.0))
    dying = worker(seeded, "dying")
    dying.ensure_group()
    # It read the batch and died before applying or acking anything.
    assert len(raw.xreadgroup(GROUP, "dying", {STREAM: ">"}, count=10)[0][1]) == 2
    assert pending(raw) == 2 and ratings(seeded, [1, 2]) == [None, None]
    survivor = worker(seeded, "survivor", min_idle_ms=0)
    result = survivor.step()
    assert (result.claimed, result.written) == (2, 2)
    assert ratings(seeded, [1, 2]) == [4.0, 3.0] and pending(raw) == 0
    # The "dead" worker comes back and applies what it read: nothing is pending any more, so the
    # script applies nothing and acks nothing.
    events = dying.process(raw.xrange(STREAM))
    assert (events.written, events.skipped, events.not_pending) == (0, 0, 2)
    assert survivor.step().read == 0
    assert ids == [i for i, _ in raw.xrange(STREAM)]


def test_min_idle_keeps_a_live_workers_entries(seeded, raw):
    add(raw, event(1))
    worker(seeded, "a").ensure_group()
    raw.xreadgroup(GROUP, "a", {STREAM: ">"})
    assert worker(seeded, "b", min_idle_ms=60_000).step().read == 0
    assert pending(raw) == 1


def test_malformed_events_are_dead_lettered_and_good_ones_apply(seeded, raw):
    bad = [
        ({"table": "driver_trips", "row": "{not json"}, "not JSON"),
        ({"table": "no_such_table", "row": "{}"}, "no_such_table"),
        ({"row": json.dumps({"driver_id": 1})}, "'table'"),
        ({"table": "driver_trips"}, "'row'"),
        ({"table": "driver_trips", "row": json.dumps({"driver_id": 5, "rating": 1.0,
                                                     "event_timestamp": NOW.isoformat()})},
         "average_daily_rides"),
        (event(6, rating="high"), "rating"),
        (event(7, colour="red"), "colour"),
        ({"table": "driver_trips", "row": json.dumps({**json.loads(event(8)["row"]),
                                                     "event_timestamp": "yesterday"})}, "RFC 3339"),
        ({"table": "driver_trips", "row": json.dumps({**json.loads(event(9)["row"]),
                                                     "driver_id": "9"})}, "driver_id"),
        ({"table": "driver_trips", "project": "nope", "row": event(10)["row"]}, "nope"),
        ({"table": "driver_trips", "row": "[1, 2]"}, "JSON object"),
    ]
    ids = add(raw, event(1, 4.0), *[fields for fields, _ in bad], event(2, 3.0))
    result = worker(seeded).step()
    assert (result.read, result.written, result.dead_lettered) == (len(bad) + 2, 2, len(bad))
    assert ratings(seeded, [1, 2]) == [4.0, 3.0]
    assert pending(raw) == 0
    letters = raw.xrange(DEAD)
    assert len(letters) == len(bad)
    for (_, fields), (original, reason), entry_id in zip(letters, bad, ids[1:-1]):
        assert fields[b"id"] == entry_id and fields[b"stream"] == STREAM
        assert reason in fields[b"reason"].decode(), (reason, fields[b"reason"])
        for name, value in original.items():
            assert fields[name.encode()] == value.encode()


def test_an_unwritable_key_dead_letters_only_its_event(seeded, raw):
    raw.set(key(2), "a string")
    add(raw, event(1, 4.0), event(2, 3.0), event(3, 2.0))
    result = worker(seeded, dead_letter_stream="dlq").step()
    assert (result.written, result.dead_lettered) == (2, 1)
    assert ratings(seeded, [1, 3]) == [4.0, 2.0]
    (_, fields), = raw.xrange("dlq")
    assert b"WRONGTYPE" in fields[b"reason"] and pending(raw) == 0


def test_stream_write_is_all_or_nothing(seeded, raw):
    worker(seeded).ensure_group()
    ids = add(raw, event(1), event(2))
    raw.xreadgroup(GROUP, "w1", {STREAM: ">"})
    ok = pack_row(int(NOW.timestamp() * 1e6), 0, [b"\xc0"] * 3)
    loader = seeded.loader
    before = snapshot(raw)

    def call(keys, args):
        return loader.call("stream_write", [STREAM, *keys], [GROUP, b"driver_trips", 0, *args])

    with pytest.raises(ScriptError, match="BADROW 2"):
        call([key(1), key(2)], [2, *ids, ok, ok[:-1]])
    raw.set(key(2), "x")
    before = snapshot(raw)
    with pytest.raises(ScriptError, match="WRONGTYPE"):
        call([key(1), key(2)], [2, *ids, ok, ok])
    with pytest.raises(ScriptError, match="BADREQUEST"):
        call([key(1)], [2, *ids, ok, ok])
    for bad_id in (b"1-x", b"01-0", b"1-00", b"1", b"-1-0"):
        with pytest.raises(ScriptError, match="BADREQUEST.*event id"):
            call([key(1)], [1, bad_id, ok])
    with pytest.raises(ScriptError, match="NOGROUP"):
        loader.call("stream_write", [STREAM, key(1)], [b"other", b"driver_trips", 0, 1, ids[0], ok])
    assert snapshot(raw) == before and pending(raw) == 2
    raw.delete(key(2))
    assert call([key(1), key(2), key(1)], [3, *ids, ids[0], ok, ok, ok]) == [2, 0, 2, 1]
    assert pending(raw) == 0
    assert call([key(1)], [1, ids[0], ok]) == [0, 0, 0, 1]  # acked: not applied again


def test_a_stream_key_of_another_type_is_a_clear_error(seeded, raw):
    from feast_lua.stream import StreamError

    raw.set(STREAM, "not a stream")
    with pytest.raises(StreamError, match="events"):
        worker(seeded).step()


def test_push(seeded, raw):
    assert seeded.push("driver_trips", trip_row(1, rating=4.0)) == WriteResult(1, 0)
    assert seeded.push("driver_trips", [trip_row(1, rating=1.0, ts=NOW - timedelta(seconds=1)),
                                        trip_row(2, rating=2.0)], ttl=timedelta(hours=1)) == WriteResult(1, 1)
    assert ratings(seeded, [1, 2]) == [4.0, 2.0]
    assert raw.pttl(key(2)) > 0 and raw.pttl(key(1)) == -1
    with pytest.raises(ValueTypeError, match="rating"):
        seeded.push("driver_trips", trip_row(3, rating="x"))


def test_cli_help_and_a_short_run(seeded, raw, redis_server, capsys):
    result = subprocess.run([sys.executable, "-m", "feast_lua.cli", "stream-worker", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--dead-letter" in result.stdout and "--max-batches" in result.stdout
    add(raw, event(1, 4.0), {"table": "driver_trips", "row": "nope"})
    assert main(["stream-worker", "--stream", "events", "--group", "workers", "--consumer", "c1",
                 "--dead-letter", "dead", "--redis-url", redis_server.url, "--max-batches", "2",
                 "--block-ms", "1"]) == 0
    out, err = capsys.readouterr()
    assert "written 1" in out and "dead-lettered 1" in out and "not JSON" in err
    assert ratings(seeded, [1]) == [4.0] and raw.xlen("dead") == 1


def test_a_worker_killed_mid_stream_leaves_every_event_applied_exactly_once(seeded, raw, redis_server):
    """SIGKILL a real worker process mid-stream; a second worker reclaims and finishes. Each event
    is one HSET on its own entity, so HSET calls == events means no event was applied twice, and
    the survivor writes exactly what the dead worker had not acknowledged."""
    events = 3_000
    pipe = raw.pipeline(transaction=False)
    for i in range(events):
        pipe.xadd(STREAM, event(i, rating=(i % 50) / 4))
    pipe.execute()
    raw.xgroup_create(STREAM, GROUP, id="0")
    raw.config_resetstat()
    doomed = subprocess.Popen(
        [sys.executable, "-m", "feast_lua.cli", "stream-worker", "--stream", "events", "--group",
         "workers", "--consumer", "doomed", "--redis-url", redis_server.url, "--batch", "25",
         "--block-ms", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            group = raw.xinfo_groups(STREAM)[0]
            if group["entries-read"] and group["entries-read"] - group["pending"] >= 300:
                break
            time.sleep(0.002)
        os.kill(doomed.pid, signal.SIGKILL)
    finally:
        doomed.wait(10)
    group = raw.xinfo_groups(STREAM)[0]
    unacked = group["pending"] + (events - group["entries-read"])
    assert 0 < unacked < events, group  # killed mid-stream

    survivor = worker(seeded, "survivor", min_idle_ms=0, batch=500)
    total = survivor.run(max_batches=100, stop=lambda: pending(raw) == 0
                         and raw.xinfo_groups(STREAM)[0]["lag"] == 0)
    assert total.not_pending == 0 and total.dead_lettered == 0
    assert total.written == unacked
    assert raw.info("commandstats")["cmdstat_hset"]["calls"] == events
    assert pending(raw) == 0 and raw.xlen(DEAD) == 0
    assert ratings(seeded, range(events)) == [(i % 50) / 4 for i in range(events)]


@pytest.mark.parametrize("limits,calls", [
    ({}, 1),
    ({"max_rows_per_write": 2}, 3),
    ({"max_cells_per_write": 6}, 3),  # driver_trips has 3 slots: 2 rows per call
    ({"max_bytes_per_write": 1}, 5),  # every row alone
])
def test_the_worker_splits_its_script_calls_by_the_write_budget(seeded, raw, redis_server, limits, calls):
    from feast_lua import Client

    add(raw, *[event(i, float(i)) for i in range(5)])
    with Client(redis_server.url, **limits) as client:
        w = worker(client)
        w.ensure_group()
        raw.script_load(client.loader.scripts["stream_write"].source)  # no NOSCRIPT round in the count
        raw.config_resetstat()
        result = w.step()
        stats = raw.info("commandstats")
    assert (result.read, result.written) == (5, 5)
    assert stats["cmdstat_evalsha"]["calls"] == calls
    assert ratings(seeded, range(5)) == [0.0, 1.0, 2.0, 3.0, 4.0]
