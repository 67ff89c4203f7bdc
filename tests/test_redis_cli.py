"""The scripts are the API: requests typed by hand from docs/PROTOCOL.md into `redis-cli` give the
same reply bytes as the Python client's loader.

The server is filled by the Python client with the seed example (feast_lua.demo.run). Every
redis-cli request below is written out literally from PROTOCOL.md ("Key encoding", "Read request",
the worked example), not computed by feast_lua; the test then checks that the Python client
builds the same KEYS/ARGV and gets byte-identical replies, now_us masked.

redis-cli prints a bulk string reply raw (`--raw`) as its exact bytes plus one "\\n"; `--no-raw`
prints it quoted with escapes, which is decoded here as a cross-check. Binary arguments (a packed
row) go in through `-x`, which takes the last argument from stdin byte for byte.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from feast_lua import Client
from feast_lua.demo import REFS, run
from feast_lua.refs import parse_refs
from feast_lua.request import plan_read

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = json.loads((ROOT / "lua" / "manifest.json").read_text())["scripts"]
READ_SHA = MANIFEST["read"]["sha1"]
WRITE_SHA = MANIFEST["write"]["sha1"]
DAY_US = "86400000000"

# By hand, from PROTOCOL.md: key = "{}fl:" netstr("default") netstr("driver_id") "i" netstr(id).
KEY = {
    1001: "{}fl:7:default9:driver_idi4:1001",
    1002: "{}fl:7:default9:driver_idi4:1002",
    1003: "{}fl:7:default9:driver_idi4:1003",
    1004: "{}fl:7:default9:driver_idi4:1004",
    1005: "{}fl:7:default9:driver_idi4:1005",
}
# G=1, T=1, table 1 = driver_trips in group 1 with its max age, F refs as (table 1, slot).
ARGV_RATING = ["1", "1", "driver_trips", "1", DAY_US, "1", "1", "2"]
ARGV_ALL = ["1", "1", "driver_trips", "1", DAY_US, "3", "1", "0", "1", "1", "1", "2"]
ARGV_ALL_NO_MAX_AGE = ["1", "1", "driver_trips", "1", "0", "3", "1", "0", "1", "1", "1", "2"]

# (numkeys and KEYS, ARGV, the same request for the Python client: refs, entity ids, max age)
REQUESTS = {
    "worked_example": ([KEY[1001]], ARGV_RATING, (["driver_trips:rating"], [1001], None)),
    "seed_all_refs": ([KEY[i] for i in (1001, 1002, 1003, 1004)], ARGV_ALL,
                      (REFS, [1001, 1002, 1003, 1004], None)),
    "max_age_lifted": ([KEY[1003], KEY[1004], KEY[1001]], ARGV_ALL_NO_MAX_AGE,
                       (REFS, [1003, 1004, 1001], {"driver_trips": timedelta(0)})),
}


def redis_cli(port: int, *args: str, raw: bool = True, stdin: bytes | None = None) -> bytes:
    mode = ["-x"] if stdin is not None else []
    done = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port),
                           "--raw" if raw else "--no-raw", *mode, *args],
                          input=stdin, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def raw_bulk(out: bytes) -> bytes:
    """--raw prints a bulk string's bytes, then one newline."""
    assert out.endswith(b"\n"), out
    return out[:-1]


_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", "\\": b"\\", '"': b'"'}


def quoted_bulk(out: bytes) -> bytes:
    """--no-raw prints "..." with \\xNN and C escapes (redis' sdscatrepr); undo them."""
    text = out.decode("ascii").rstrip("\n")
    assert text.startswith('"') and text.endswith('"'), text
    parts = re.findall(r'\\x([0-9a-f]{2})|\\(.)|([^\\])', text[1:-1], re.S)
    return b"".join(bytes.fromhex(h) if h else _ESCAPES[e] if e else c.encode("latin-1")
                    for h, e, c in parts)


def masked(reply: bytes) -> bytes:
    """now_us is bytes 1..9 after 0x94: 0xd3 and 8 bytes, which differ on every call."""
    assert reply[:2] == b"\x94\xd3", reply[:10].hex()
    return reply[:2] + bytes(8) + reply[10:]


@pytest.fixture
def seeded_demo(raw, redis_server):
    """Scripts loaded by redis-cli from the files, then the seed example written by Python."""
    for name, spec in MANIFEST.items():
        sha = redis_cli(redis_server.port, "SCRIPT", "LOAD", stdin=(ROOT / "lua" / spec["file"]).read_bytes())
        assert sha == spec["sha1"].encode() + b"\n", name
    with Client(redis_server.url) as client:
        run(client)
        yield client


@pytest.mark.parametrize("name", list(REQUESTS))
def test_hand_built_read_matches_python(seeded_demo, redis_server, name):
    keys, argv, (refs, ids, max_age) = REQUESTS[name]
    client = seeded_demo
    rows = [{"driver_id": i} for i in ids]

    # The Python client plans the same KEYS and ARGV...
    plan = plan_read(client.registry.get("default"), parse_refs(refs), rows, max_age)
    ((py_keys, py_argv),) = plan.calls()
    assert py_keys == [k.encode() for k in keys]
    assert [b"%d" % a if isinstance(a, int) else a for a in py_argv] == [a.encode() for a in argv]

    # ...and its loader (EVALSHA_RO) gets the same bytes as redis-cli, with either command.
    expected = masked(client.loader.call("read", py_keys, py_argv))
    for command in ("EVALSHA_RO", "EVALSHA"):
        out = redis_cli(redis_server.port, command, READ_SHA, str(len(keys)), *keys, *argv)
        assert masked(raw_bulk(out)) == expected, command
    quoted = redis_cli(redis_server.port, "EVALSHA_RO", READ_SHA, str(len(keys)), *keys, *argv, raw=False)
    assert masked(quoted_bulk(quoted)) == expected

    # The bytes say what the Python client's response says.
    reply = raw_bulk(redis_cli(redis_server.port, "EVALSHA_RO", READ_SHA, str(len(keys)), *keys, *argv))
    assert reply[10] == 0xC4  # statuses: bin 8, n, then n status bytes
    statuses = list(reply[12:12 + reply[11]])
    response = client.get_online_features(refs, rows, max_age=max_age)
    by_ref = response.statuses()
    assert statuses == [int(by_ref[ref][r]) for r in range(len(rows)) for ref in refs]


def test_worked_example_bytes(seeded_demo, redis_server):
    """PROTOCOL.md's worked example on the seed data, where 1001 is fresh: rating 4.8 as float32."""
    out = raw_bulk(redis_cli(redis_server.port, "EVALSHA_RO", READ_SHA, "1", KEY[1001], *ARGV_RATING))
    assert len(out) == 29
    assert out[10:13] == bytes.fromhex("c40101")  # statuses: bin of 1 byte, PRESENT
    assert out[13:15] == bytes.fromhex("c408")  # event_ts: bin of 8 bytes
    assert out[23:] == bytes.fromhex("91ca") + struct.pack(">f", 4.8)  # array of 1: float 32


def test_write_by_hand_then_read_by_python(seeded_demo, redis_server):
    """The packed row of PROTOCOL.md's example, sent through redis-cli -x, reads back in Python."""
    row = bytes.fromhex("01" "00035d013b37e000" "8000000000000000" "0003" "010101" "0005" "0006" "000b"
                        "ca41480000" "1e" "ca40980000")
    args = ["EVALSHA", WRITE_SHA, "1", KEY[1005], "driver_trips", "0"]
    assert redis_cli(redis_server.port, *args, stdin=row) == b"1\n0\n"  # [written, skipped]
    assert redis_cli(redis_server.port, *args, stdin=row) == b"0\n1\n"  # a replay is skipped
    assert seeded_demo.redis.hget(KEY[1005], "driver_trips") == row
    response = seeded_demo.get_online_features(REFS, [{"driver_id": 1005}],
                                               max_age={"driver_trips": timedelta(0)})
    assert response.to_dict() == {"driver_id": [1005], REFS[0]: [12.5], REFS[1]: [30], REFS[2]: [4.75]}
    stale = seeded_demo.get_online_features(REFS, [{"driver_id": 1005}])
    assert {ref: [s.name for s in v] for ref, v in stale.statuses().items()} == {
        ref: ["OUTSIDE_MAX_AGE"] for ref in REFS}
