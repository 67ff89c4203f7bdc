"""Generates the cross-language test vectors in tests/vectors/ from the Python implementation.

Usage, from the repository root:

    .venv/bin/python tests/vectors/generate.py           # rewrite keys.json, rows.json, requests.json
    .venv/bin/python tests/vectors/generate.py --check   # exit 1 if a file would change

keys.json and rows.json come from feast_lua alone. requests.json also needs redis-server on the
PATH: the scenarios run against a throwaway server (feast_lua.server.RedisServer), every script
call going over a raw RESP connection, so the recorded replies are the exact bytes Redis sends.
The only clock-dependent bytes of any recorded reply, the read script's now_us, is zeroed (see
"comparison" in requests.json). The output is deterministic: regenerating without a code change
rewrites identical files. The vectors are documented in docs/PROTOCOL.md ("Test vectors") and
checked by tests/test_vectors.py.

The generator also checks every status it was designed to produce (the `expect` entries below),
so a scenario cannot silently stop covering what it claims to cover.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import socket
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

from feast_lua import constants as c  # noqa: E402
from feast_lua.keys import KeyEncoder  # noqa: E402
from feast_lua.loader import load_scripts  # noqa: E402
from feast_lua.refs import parse_refs  # noqa: E402
from feast_lua.registry import empty, merge  # noqa: E402
from feast_lua.registry_store import registry_key  # noqa: E402
from feast_lua.request import DEFAULT_MAX_CELLS_PER_CALL, plan_read  # noqa: E402
from feast_lua.response import GetOnlineFeaturesResponse, decode_reply  # noqa: E402
from feast_lua.rows import pack_row  # noqa: E402
from feast_lua.schema import Entity, Feature, FeatureTable  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402
from feast_lua.types import ValueType  # noqa: E402
from feast_lua.values import encoder, timestamp_us  # noqa: E402
from feast_lua.write import plan_write  # noqa: E402

UTC = timezone.utc
VT = ValueType
MAX_SAFE_INT = 2**53 - 1
NO_CREATED = -(2**63)
ROW_HEADER_SIZE = c.ROW_HEADER_SIZE

# ------------------------------------------------------------------------------------------------
# Typed JSON: how the vectors write values whose type is given next to them (docs/PROTOCOL.md).
# ------------------------------------------------------------------------------------------------


def rfc3339(value: datetime) -> str:
    """Always UTC, always 6 fractional digits, always "Z": 2000-01-01T00:00:00.000000Z."""
    v = value.astimezone(UTC)
    return (f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            f".{v.microsecond:06d}Z")


def ts(text: str) -> datetime:
    """The inverse of rfc3339 for the literals in this file."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def to_json(value_type: ValueType, value: object) -> object:
    if value is None:
        return None
    if value_type.is_list:
        return [to_json(value_type.element, v) for v in value]  # type: ignore[union-attr]
    if value_type in (VT.INT32, VT.INT64):
        return value if abs(value) <= MAX_SAFE_INT else str(value)  # type: ignore[arg-type]
    if value_type in (VT.FLOAT, VT.DOUBLE):
        f = float(value)  # type: ignore[arg-type]
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if value_type is VT.BYTES:
        return bytes(value).hex()  # type: ignore[arg-type]
    if value_type is VT.UNIX_TIMESTAMP:
        return rfc3339(value)  # type: ignore[arg-type]
    return value  # STRING, BOOL


def display(data: bytes) -> str:
    """A readable rendering of bytes, for humans only: printable ASCII as is, the rest \\xNN."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def arg_bytes(arg: object) -> bytes:
    """How redis-py (and the RESP client below) sends one argument: ints as decimal ASCII."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, str):
        return arg.encode()
    raise TypeError(arg)


# ------------------------------------------------------------------------------------------------
# A minimal RESP2 client, so replies (errors included) are recorded exactly as Redis sends them.
# ------------------------------------------------------------------------------------------------


class RespError(Exception):
    """An error reply; `line` is the text after the leading '-'."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


class Resp:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def call(self, *args: object) -> object:
        """Sends one command; returns the reply, or a RespError object for an error reply."""
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            data = arg_bytes(a)
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _reply(self) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._more()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError(f"unexpected RESP line {line!r}")

    def ok(self, *args: object) -> object:
        reply = self.call(*args)
        if isinstance(reply, RespError):
            raise reply
        return reply


def load_all_scripts(conn: Resp) -> dict[str, str]:
    """SCRIPT LOAD every shipped script, checking Redis agrees with lua/manifest.json."""
    shas = {}
    for name, script in load_scripts().items():
        sha = conn.ok("SCRIPT", "LOAD", script.source).decode()  # type: ignore[union-attr]
        if sha != script.sha:
            raise SystemExit(f"Redis computed {sha} for {name}, the manifest says {script.sha}")
        shas[name] = sha
    return shas


# ------------------------------------------------------------------------------------------------
# keys.json
# ------------------------------------------------------------------------------------------------

KEY_CASES: list[tuple[str, str, list[tuple[str, ValueType, object]]]] = [
    ("the documented example: INT64 driver 1001 in project default", "default",
     [("driver_id", VT.INT64, 1001)]),
    ("int 1 and string \"1\" differ by the type tag", "default", [("id", VT.INT64, 1)]),
    ("string \"1\"", "default", [("id", VT.STRING, "1")]),
    ("INT32 uses the same \"i\" form as INT64", "default", [("id", VT.INT32, 1)]),
    ("zero", "default", [("driver_id", VT.INT64, 0)]),
    ("negative int: a leading '-', no padding", "default", [("driver_id", VT.INT64, -42)]),
    ("INT64 minimum", "default", [("driver_id", VT.INT64, -(2**63))]),
    ("INT64 maximum", "default", [("driver_id", VT.INT64, 2**63 - 1)]),
    ("INT32 minimum", "default", [("zone", VT.INT32, -(2**31))]),
    ("INT32 maximum", "default", [("zone", VT.INT32, 2**31 - 1)]),
    ("empty string: netstr length 0", "default", [("customer_id", VT.STRING, "")]),
    ("ASCII string", "default", [("customer_id", VT.STRING, "alice")]),
    ("unicode string: the length counts UTF-8 bytes, not characters", "default",
     [("customer_id", VT.STRING, "café ☕")]),
    ("CJK and a 4-byte emoji", "default", [("customer_id", VT.STRING, "日本🚗")]),
    ("a value with '{', '}' and ':' stays inert: the key's hash tag is the leading {}", "default",
     [("customer_id", VT.STRING, "{user}:9:x")]),
    ("a value that looks like a key fragment cannot impersonate a separator", "default",
     [("customer_id", VT.STRING, "a9:driver_idi1:1")]),
    ("bytes, raw", "default", [("device_id", VT.BYTES, b"\x00\x01\xfe\xff")]),
    ("empty bytes", "default", [("device_id", VT.BYTES, b"")]),
    ("bytes holding '{'", "default", [("device_id", VT.BYTES, b"{tag}")]),
    ("composite key: join keys sorted by name (customer_id < driver_id)", "default",
     [("driver_id", VT.INT64, 1001), ("customer_id", VT.STRING, "alice")]),
    ("composite key of three, mixed types, given in reverse order", "default",
     [("zone", VT.INT32, -3), ("device_id", VT.BYTES, b"\xca\xfe"), ("customer_id", VT.STRING, "bob")]),
    ("names sort by byte value: '-' < digits < upper case < '_' < lower case", "default",
     [("b", VT.INT64, 1), ("_a", VT.INT64, 2), ("B", VT.INT64, 3), ("a-1", VT.INT64, 4),
      ("a1", VT.INT64, 5)]),
    ("another project: the project is part of every key", "fraud_detection",
     [("driver_id", VT.INT64, 1001)]),
]

# (description, project, parts, co-located join key): the hash tag replaces the empty "{}".
COLOCATED_KEY_CASES: list[tuple[str, str, list[tuple[str, ValueType, object]], str]] = [
    ("co-located: customer alice's own key", "default", [("customer_id", VT.STRING, "alice")],
     "customer_id"),
    ("co-located: alice's account 7 shares her tag", "default",
     [("customer_id", VT.STRING, "alice"), ("account_id", VT.INT64, 7)], "customer_id"),
    ("co-located by an INT64 entity", "default",
     [("driver_id", VT.INT64, 1001), ("trip_id", VT.INT64, 5)], "driver_id"),
    ("co-located: '}' in the value cannot end the hex tag", "default",
     [("customer_id", VT.STRING, "a}b{c")], "customer_id"),
]

REGISTRY_KEY_PROJECTS = ["default", "fraud_detection", "p"]


def make_keys() -> dict:
    vectors = []
    cases = [(*case, None) for case in KEY_CASES] + COLOCATED_KEY_CASES
    for description, project, parts, colocate in cases:
        types = {name: t for name, t, _ in parts}
        encoder_ = KeyEncoder(project, list(types), types, colocate)
        key = encoder_.key({name: v for name, _, v in parts}, 0)
        vectors.append({
            "description": description,
            "project": project,
            "entities": [{"join_key": n, "value_type": t.name, "value": to_json(t, v)}
                         for n, t, v in parts],
            **({"colocate": colocate} if colocate else {}),
            "key_hex": key.hex(),
            "key_display": display(key),
        })
    registry = [{"project": p, "key_hex": registry_key(p).hex(), "key_display": display(registry_key(p))}
                for p in REGISTRY_KEY_PROJECTS]
    return {
        "about": (
            "Entity keys: key = '{}fl:' netstr(project) (netstr(join_key) typed(value))* with join"
            " keys sorted bytewise; netstr(x) = decimal byte length ':' x; typed = 'i' netstr(decimal"
            " int) | 's' netstr(UTF-8) | 'b' netstr(raw bytes). See docs/PROTOCOL.md, 'Key encoding'."
            " A vector with 'colocate' names the co-located join key: the key starts '{' + the first"
            " 16 hex digits of SHA-1(typed(that value)) + '}fl:' instead of '{}fl:'."
            " key_hex is authoritative; key_display is for humans (non-printable bytes as \\xNN)."
        ),
        "value_json": VALUE_JSON_DOC,
        "keys": vectors,
        "registry_keys": registry,
    }


# ------------------------------------------------------------------------------------------------
# rows.json
# ------------------------------------------------------------------------------------------------

T2021 = ts("2021-04-12T10:59:42.123456Z")

VALUE_CASES: list[tuple[str, ValueType, object]] = [
    ("null of any type is nil", VT.INT64, None),
    ("positive fixint", VT.INT64, 0),
    ("positive fixint max", VT.INT64, 127),
    ("uint8", VT.INT64, 128),
    ("uint8 max", VT.INT64, 255),
    ("uint16", VT.INT64, 256),
    ("uint16 max", VT.INT64, 65535),
    ("uint32", VT.INT64, 65536),
    ("uint64", VT.INT64, 2**32),
    ("INT64 max as uint64", VT.INT64, 2**63 - 1),
    ("negative fixint", VT.INT64, -1),
    ("negative fixint min", VT.INT64, -32),
    ("int8", VT.INT64, -33),
    ("int16", VT.INT64, -129),
    ("int32", VT.INT64, -32769),
    ("INT64 min as int64", VT.INT64, -(2**63)),
    ("INT32 packs like INT64: smallest form", VT.INT32, 1001),
    ("INT32 max", VT.INT32, 2**31 - 1),
    ("INT32 min", VT.INT32, -(2**31)),
    ("FLOAT is float32 (0xca)", VT.FLOAT, 4.75),
    ("FLOAT rounds to float32: 0.1 comes back as 0.10000000149011612", VT.FLOAT, 0.1),
    ("FLOAT negative zero", VT.FLOAT, -0.0),
    ("FLOAT infinity", VT.FLOAT, float("inf")),
    ("FLOAT NaN is stored as null", VT.FLOAT, float("nan")),
    ("FLOAT of an integral value", VT.FLOAT, 3),
    ("DOUBLE is float64 (0xcb)", VT.DOUBLE, 0.1),
    ("DOUBLE negative infinity", VT.DOUBLE, float("-inf")),
    ("DOUBLE NaN is stored as null", VT.DOUBLE, float("nan")),
    ("DOUBLE large", VT.DOUBLE, 1e300),
    ("STRING empty fixstr", VT.STRING, ""),
    ("STRING fixstr", VT.STRING, "Alice"),
    ("STRING unicode", VT.STRING, "café ☕"),
    ("STRING of 32 bytes is str8 (0xd9)", VT.STRING, "x" * 32),
    ("STRING of 256 bytes is str16 (0xda)", VT.STRING, "y" * 256),
    ("BYTES is bin8 (0xc4), never str", VT.BYTES, b"\x00\xff"),
    ("BYTES empty", VT.BYTES, b""),
    ("BOOL true", VT.BOOL, True),
    ("BOOL false", VT.BOOL, False),
    ("UNIX_TIMESTAMP whole seconds: timestamp 32 (d6 ff)", VT.UNIX_TIMESTAMP,
     ts("2021-04-12T10:59:42.000000Z")),
    ("UNIX_TIMESTAMP with microseconds: timestamp 64 (d7 ff)", VT.UNIX_TIMESTAMP, T2021),
    ("UNIX_TIMESTAMP before 1970: timestamp 96 (c7 0c ff)", VT.UNIX_TIMESTAMP,
     ts("1969-07-20T20:17:40.000000Z")),
    ("UNIX_TIMESTAMP before 1970 with a fraction: seconds floor, nanoseconds >= 0",
     VT.UNIX_TIMESTAMP, ts("1969-12-31T23:59:59.500000Z")),
    ("UNIX_TIMESTAMP after 2514: timestamp 96", VT.UNIX_TIMESTAMP, ts("9999-12-31T23:59:59.999999Z")),
    ("UNIX_TIMESTAMP epoch", VT.UNIX_TIMESTAMP, ts("1970-01-01T00:00:00.000000Z")),
    ("INT64_LIST", VT.INT64_LIST, [1, -1, 300, 2**40]),
    ("INT32_LIST empty is an empty array (0x90), not null", VT.INT32_LIST, []),
    ("FLOAT_LIST elements are float32", VT.FLOAT_LIST, [1.5, 0.1]),
    ("DOUBLE_LIST", VT.DOUBLE_LIST, [0.1, -2.5]),
    ("STRING_LIST", VT.STRING_LIST, ["a", "", "ü"]),
    ("BYTES_LIST", VT.BYTES_LIST, [b"\x01", b""]),
    ("BOOL_LIST", VT.BOOL_LIST, [True, False, True]),
    ("UNIX_TIMESTAMP_LIST", VT.UNIX_TIMESTAMP_LIST,
     [ts("2000-01-01T00:00:00.000000Z"), T2021]),
    ("list of 16 elements uses array16 (0xdc)", VT.INT64_LIST, list(range(16))),
    ("a null list is nil", VT.STRING_LIST, None),
]


def _decoded(value_type: ValueType, packed: bytes) -> object:
    return to_json(value_type, msgpack.unpackb(packed, timestamp=3))


def make_value_vectors() -> list[dict]:
    out = []
    for description, value_type, value in VALUE_CASES:
        packed = encoder(value_type)(value)
        out.append({
            "description": description,
            "value_type": value_type.name,
            "value": to_json(value_type, value),
            "msgpack_hex": packed.hex(),
            "decoded": _decoded(value_type, packed),
        })
    return out


# One row per table width case. A cell is (value_type, value); (None, None) is a slot no feature
# owns any more (retired) or not yet, which holds nil.
ROW_CASES: list[tuple[str, datetime, datetime | None, list[tuple[ValueType | None, object]]]] = [
    ("driver_trips row: FLOAT, INT64, FLOAT; no created timestamp (-2^63)",
     ts("2000-01-01T00:00:00.000000Z"), None,
     [(VT.FLOAT, 12.5), (VT.INT64, 30), (VT.FLOAT, 4.75)]),
    ("with a created timestamp, a null and a NaN (stored as null)",
     ts("2021-04-12T10:59:42.123456Z"), ts("2021-04-12T11:00:00.000000Z"),
     [(VT.FLOAT, None), (VT.INT64, 7), (VT.DOUBLE, float("nan"))]),
    ("one slot", ts("2000-01-01T00:00:00.000000Z"), None, [(VT.BOOL, True)]),
    ("retired slots 1 and 2 hold nil (written by the current schema of driver_stats)",
     ts("2000-01-02T00:00:00.000000Z"), None,
     [(VT.FLOAT, 0.5), (None, None), (None, None), (VT.DOUBLE, 2.25), (VT.INT64, 1234)]),
    ("every value type, one slot each",
     ts("2021-04-12T10:59:42.123456Z"), None,
     [(VT.BYTES, b"\x00\x01"), (VT.STRING, "café"), (VT.INT32, -5), (VT.INT64, 2**40),
      (VT.DOUBLE, 0.1), (VT.FLOAT, 0.1), (VT.BOOL, False), (VT.UNIX_TIMESTAMP, T2021),
      (VT.BYTES_LIST, [b"\xff"]), (VT.STRING_LIST, ["a", "b"]), (VT.INT32_LIST, [1, 2]),
      (VT.INT64_LIST, [-1]), (VT.DOUBLE_LIST, [1.5]), (VT.FLOAT_LIST, [1.5]),
      (VT.BOOL_LIST, [True]), (VT.UNIX_TIMESTAMP_LIST, [T2021])]),
    ("every value type null", ts("2021-04-12T10:59:42.123456Z"), None,
     [(t, None) for t in (VT.BYTES, VT.STRING, VT.INT32, VT.INT64, VT.DOUBLE, VT.FLOAT, VT.BOOL,
                          VT.UNIX_TIMESTAMP)]),
    ("event timestamp before 1970 is a negative i64",
     ts("1969-12-31T23:59:59.999999Z"), ts("1970-01-01T00:00:00.000000Z"), [(VT.INT64, 1)]),
]

BIG_STRING = {"repeat": "x", "count": 70000}


def _cells(cells: list[tuple[ValueType | None, object]]) -> list[bytes]:
    return [encoder(t)(v) if t is not None else encoder(VT.INT64)(None) for t, v in cells]


def _layout(packed: bytes) -> dict:
    n = int.from_bytes(packed[17:19], "big")
    width = 2 if packed[0] == c.ROW_FORMAT_U16 else 4
    offsets_at = ROW_HEADER_SIZE + n
    values_at = offsets_at + n * width
    return {
        "format_hex": packed[0:1].hex(),
        "event_ts_hex": packed[1:9].hex(),
        "created_ts_hex": packed[9:17].hex(),
        "slot_count_hex": packed[17:19].hex(),
        "statuses_hex": packed[ROW_HEADER_SIZE:offsets_at].hex(),
        "end_offsets_hex": packed[offsets_at:values_at].hex(),
    }


def make_row_vectors() -> list[dict]:
    out = []
    for description, event, created, cells in ROW_CASES:
        encoded = _cells(cells)
        event_us = timestamp_us(event)
        created_us = NO_CREATED if created is None else timestamp_us(created)
        packed = pack_row(event_us, created_us, encoded)
        out.append({
            "description": description,
            "event_timestamp": rfc3339(event),
            "event_ts_us": event_us,
            "created_timestamp": None if created is None else rfc3339(created),
            "created_ts_us": str(created_us) if abs(created_us) > MAX_SAFE_INT else created_us,
            "cells": [{"slot": i, "value_type": None if t is None else t.name,
                       "value": None if t is None else to_json(t, v), "msgpack_hex": e.hex()}
                      for i, ((t, v), e) in enumerate(zip(cells, encoded))],
            "layout": _layout(packed),
            "packed_hex": packed.hex(),
        })
    # Format 2: more than 65535 bytes of values need u32 end offsets. Too big to spell out.
    event = ts("2021-04-12T10:59:42.123456Z")
    big = encoder(VT.STRING)(BIG_STRING["repeat"] * BIG_STRING["count"])
    cells2: list[tuple[ValueType | None, object]] = [(VT.INT64, 1), (VT.STRING, BIG_STRING),
                                                     (VT.BOOL, True)]
    encoded = [encoder(VT.INT64)(1), big, encoder(VT.BOOL)(True)]
    packed = pack_row(timestamp_us(event), NO_CREATED, encoded)
    out.append({
        "description": "format 2: the values exceed 65535 bytes, so end offsets are u32. The"
                       " STRING in slot 1 is 'x' repeated 70000 times; the packed row is given"
                       " by length, SHA-256 and its first 64 bytes instead of in full",
        "event_timestamp": rfc3339(event),
        "event_ts_us": timestamp_us(event),
        "created_timestamp": None,
        "created_ts_us": str(NO_CREATED),
        "cells": [{"slot": i, "value_type": t.name if t else None, "value": v if t is VT.STRING
                   else to_json(t, v), "msgpack_hex": None if t is VT.STRING else e.hex()}
                  for i, ((t, v), e) in enumerate(zip(cells2, encoded))],
        "layout": _layout(packed),
        "packed_length": len(packed),
        "packed_sha256": hashlib.sha256(packed).hexdigest(),
        "packed_head_hex": packed[:64].hex(),
    })
    return out


def make_rows() -> dict:
    return {
        "about": (
            "Feature values and packed rows. values: one feature value of a declared type ->"
            " its msgpack bytes, and the value a reader decodes from them (FLOAT comes back"
            " rounded to float32, NaN comes back null). rows: the packed row format, 'u8 format |"
            " i64 event_ts_us | i64 created_ts_us | u16 slot count | end offsets (u16 for format 1,"
            " u32 for format 2) | msgpack values', all big-endian. created_ts_us -2^63 means 'no"
            " created timestamp'. A cell with value_type null is a slot no feature owns; it holds"
            " nil (c0). See docs/PROTOCOL.md, 'Value encoding' and 'Packed row'."
        ),
        "value_json": VALUE_JSON_DOC,
        "repeat_form": ("In the format 2 row, a STRING value {\"repeat\": s, \"count\": n} means s"
                        " repeated n times; its msgpack_hex is null (too long to spell out)."),
        "values": make_value_vectors(),
        "rows": make_row_vectors(),
    }


VALUE_JSON_DOC = {
    "null": "JSON null, for every type",
    "INT32, INT64": "a JSON number when |v| <= 2^53-1, else a decimal string (e.g. INT64 min)",
    "FLOAT, DOUBLE": ("a JSON number (shortest round-trip form of the double), or the strings"
                      " \"NaN\", \"Infinity\", \"-Infinity\""),
    "STRING": "a JSON string",
    "BYTES": "lower-case hex of the raw bytes",
    "BOOL": "true / false",
    "UNIX_TIMESTAMP": "RFC 3339 in UTC with exactly 6 fractional digits, e.g. 2021-04-12T10:59:42.123456Z",
    "*_LIST": "a JSON array of the element type's form",
}

# ------------------------------------------------------------------------------------------------
# requests.json: scenarios
# ------------------------------------------------------------------------------------------------

DAY = timedelta(days=1)
STALE = ts("2000-01-01T00:00:00.000000Z")  # older than any max age of 1 day, on any run
FUTURE = ts("2099-01-01T00:00:00.000000Z")  # fresh under a 1 day max age until 2099-01-02

driver_id = Entity("driver_id", VT.INT64, "a driver")
customer_id = Entity("customer_id", VT.STRING, "a customer")
device_id = Entity("device_id", VT.BYTES, "a device")

DRIVER_TRIPS = FeatureTable(
    "driver_trips", ["driver_id"],
    [Feature("average_daily_rides", VT.FLOAT), Feature("maximum_daily_rides", VT.INT64),
     Feature("rating", VT.FLOAT)],
    max_age=DAY,
)
CUSTOMER_PROFILE = FeatureTable(
    "customer_profile", ["customer_id"],
    [Feature("name", VT.STRING), Feature("vip", VT.BOOL)],
)
CUSTOMER_DRIVER = FeatureTable(
    "customer_driver", ["driver_id", "customer_id"],  # declared unsorted; the key sorts them
    [Feature("trips", VT.INT32), Feature("last_trip", VT.UNIX_TIMESTAMP)],
)
ALL_TYPES_FEATURES = [
    ("f_bytes", VT.BYTES), ("f_string", VT.STRING), ("f_int32", VT.INT32), ("f_int64", VT.INT64),
    ("f_double", VT.DOUBLE), ("f_float", VT.FLOAT), ("f_bool", VT.BOOL),
    ("f_timestamp", VT.UNIX_TIMESTAMP), ("f_bytes_list", VT.BYTES_LIST),
    ("f_string_list", VT.STRING_LIST), ("f_int32_list", VT.INT32_LIST),
    ("f_int64_list", VT.INT64_LIST), ("f_double_list", VT.DOUBLE_LIST),
    ("f_float_list", VT.FLOAT_LIST), ("f_bool_list", VT.BOOL_LIST),
    ("f_timestamp_list", VT.UNIX_TIMESTAMP_LIST),
]
ALL_TYPES = FeatureTable("all_types", ["device_id"],
                         [Feature(n, t) for n, t in ALL_TYPES_FEATURES])
DRIVER_STATS_V1 = FeatureTable(
    "driver_stats", ["driver_id"],
    [Feature("conv_rate", VT.FLOAT), Feature("acc_rate", VT.FLOAT), Feature("avg_trips", VT.INT64)],
)
DRIVER_STATS_V2 = FeatureTable(
    "driver_stats", ["driver_id"],
    # conv_rate keeps slot 0; acc_rate is dropped (slot 1 retired); avg_trips is retyped (slot 2
    # retired, new slot 3); lifetime_trips is new (slot 4).
    [Feature("conv_rate", VT.FLOAT), Feature("avg_trips", VT.DOUBLE),
     Feature("lifetime_trips", VT.INT64)],
)

P, N_, S_, F_ = "PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND"  # S_ = stale


def row(event: datetime, created: datetime | None = None, **columns: object) -> dict:
    out = dict(columns)
    out["event_timestamp"] = event
    if created is not None:
        out["created_timestamp"] = created
    return out


def every_type_row(device: bytes, event: datetime, **overrides: object) -> dict:
    values = {
        "f_bytes": b"\x00\x01", "f_string": "café ☕", "f_int32": -(2**31), "f_int64": 2**63 - 1,
        "f_double": 0.1, "f_float": 0.1, "f_bool": True, "f_timestamp": T2021,
        "f_bytes_list": [b"\xff", b""], "f_string_list": ["a", "日本"], "f_int32_list": [1, -2],
        "f_int64_list": [-(2**63), 0], "f_double_list": [1e300, -0.5], "f_float_list": [1.5, 0.1],
        "f_bool_list": [True, False], "f_timestamp_list": [ts("1969-07-20T20:17:40.000000Z"), T2021],
    }
    values.update(overrides)
    return row(event, device_id=device, **values)


SCENARIOS: list[dict] = [
    {
        "name": "worked_example",
        "description": (
            "The example of docs/PROTOCOL.md: driver_trips:rating for driver 1001. The row's event"
            " timestamp is 2000-01-01, so under the table's max age of 1 day it is"
            " OUTSIDE_MAX_AGE; with the max age overridden to 0 (no limit) it is PRESENT."
        ),
        "project": "default",
        "steps": [
            {"op": "apply", "objects": [driver_id, DRIVER_TRIPS]},
            {"op": "write", "table": "driver_trips", "rows": [
                row(STALE, driver_id=1001, average_daily_rides=12.5, maximum_daily_rides=30,
                    rating=4.75)]},
            {"op": "read", "name": "stale", "refs": ["driver_trips:rating"],
             "entity_rows": [{"driver_id": 1001}],
             "expect": {"driver_trips:rating": [S_]}},
            {"op": "read", "name": "max_age_override_0", "refs": ["driver_trips:rating"],
             "entity_rows": [{"driver_id": 1001}], "max_age": {"driver_trips": timedelta(0)},
             "expect": {"driver_trips:rating": [P]}},
        ],
    },
    {
        "name": "statuses_and_newest_wins",
        "description": (
            "driver_trips (max age 1 day): stale rows from 2000, a stale row whose rating is null"
            " (OUTSIDE_MAX_AGE, not NULL_VALUE), a row dated 2099-01-01 (a negative age counts as"
            " fresh, so it is PRESENT on any run before 2099-01-02), a missing key (NOT_FOUND),"
            " and a second write call exercising newest-wins: a replay, an older row, a created"
            " timestamp tie-break both ways, and one key twice in one call."
        ),
        "project": "default",
        "steps": [
            {"op": "apply", "objects": [driver_id, DRIVER_TRIPS]},
            {"op": "write", "table": "driver_trips", "rows": [
                row(STALE, driver_id=1001, average_daily_rides=12.5, maximum_daily_rides=30,
                    rating=4.75),
                row(ts("2000-01-01T12:00:00.500000Z"), ts("2000-01-02T00:00:00.000000Z"),
                    driver_id=1002, average_daily_rides=3.0, maximum_daily_rides=5, rating=2.5),
                row(FUTURE, driver_id=1003, average_daily_rides=0.1, maximum_daily_rides=-1,
                    rating=5.0),
                row(STALE, driver_id=1004, average_daily_rides=float("nan"),
                    maximum_daily_rides=None, rating=None),
                row(STALE, driver_id=-7, average_daily_rides=1.0, maximum_daily_rides=2**40,
                    rating=3.25),
            ], "expect_result": [5, 0]},
            {"op": "write", "table": "driver_trips", "rows": [
                # a replay of 1001: same event, no created timestamp on either side -> skipped
                row(STALE, driver_id=1001, average_daily_rides=12.5, maximum_daily_rides=30,
                    rating=4.75),
                # older than what is stored -> skipped
                row(ts("1999-12-31T00:00:00.000000Z"), driver_id=1001, average_daily_rides=99.0,
                    maximum_daily_rides=99, rating=1.0),
                # same event as stored, earlier created timestamp -> skipped
                row(ts("2000-01-01T12:00:00.500000Z"), ts("2000-01-01T13:00:00.000000Z"),
                    driver_id=1002, average_daily_rides=99.0, maximum_daily_rides=99, rating=1.0),
                # same event as stored, later created timestamp -> written
                row(ts("2000-01-01T12:00:00.500000Z"), ts("2000-01-03T00:00:00.000000Z"),
                    driver_id=1002, average_daily_rides=3.5, maximum_daily_rides=6, rating=2.75),
                # one key twice in one call: rows apply in order, both newer -> both written
                row(STALE, driver_id=1005, average_daily_rides=1.0, maximum_daily_rides=1,
                    rating=1.0),
                row(ts("2000-01-01T00:00:00.000001Z"), driver_id=1005, average_daily_rides=2.0,
                    maximum_daily_rides=2, rating=2.0),
            ], "expect_result": [3, 3]},
            {"op": "read", "name": "table_max_age",
             "refs": ["driver_trips:average_daily_rides", "driver_trips:maximum_daily_rides",
                      "driver_trips:rating"],
             "entity_rows": [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 1004},
                             {"driver_id": 9999}, {"driver_id": -7}, {"driver_id": 1002},
                             {"driver_id": 1005}],
             "expect": {
                 "driver_trips:average_daily_rides": [S_, P, S_, F_, S_, S_, S_],
                 "driver_trips:maximum_daily_rides": [S_, P, S_, F_, S_, S_, S_],
                 "driver_trips:rating": [S_, P, S_, F_, S_, S_, S_]}},
            {"op": "read", "name": "max_age_override_0",
             "refs": ["driver_trips:rating", "driver_trips:maximum_daily_rides",
                      "driver_trips:average_daily_rides"],
             "entity_rows": [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 1004},
                             {"driver_id": 9999}, {"driver_id": -7}, {"driver_id": 1002},
                             {"driver_id": 1005}],
             "max_age": {"driver_trips": timedelta(0)},
             "expect": {
                 "driver_trips:rating": [P, P, N_, F_, P, P, P],
                 "driver_trips:maximum_daily_rides": [P, P, N_, F_, P, P, P],
                 "driver_trips:average_daily_rides": [P, P, N_, F_, P, P, P]}},
            {"op": "read", "name": "max_age_override_100_years",
             "refs": ["driver_trips:rating"],
             "entity_rows": [{"driver_id": 1004}, {"driver_id": 1001}],
             "max_age": {"driver_trips": timedelta(days=36500)},
             "expect": {"driver_trips:rating": [N_, P]}},
        ],
    },
    {
        "name": "multi_table",
        "description": (
            "Three tables over three different entity sets: customer_profile (customer_id),"
            " driver_trips (driver_id, max age 1 day) and customer_driver (customer_id, driver_id,"
            " a composite key). Refs are interleaved, so tables and key groups are numbered by"
            " first use. customer_profile is written with a key TTL of 30 days. customer \"1001\""
            " (a string) and driver 1001 (an int) are different keys."
        ),
        "project": "default",
        "steps": [
            {"op": "apply", "objects": [driver_id, customer_id, DRIVER_TRIPS, CUSTOMER_PROFILE,
                                        CUSTOMER_DRIVER]},
            {"op": "write", "table": "driver_trips", "rows": [
                row(FUTURE, driver_id=1001, average_daily_rides=2.0, maximum_daily_rides=4,
                    rating=4.5),
                row(STALE, driver_id=1002, average_daily_rides=2.0, maximum_daily_rides=4,
                    rating=3.5)]},
            {"op": "write", "table": "customer_profile", "ttl": timedelta(days=30), "rows": [
                row(STALE, customer_id="alice", name="Alice", vip=True),
                row(STALE, customer_id="1001", name="String One-Oh-Oh-One", vip=False),
                row(STALE, customer_id="café ☕", name=None, vip=False)]},
            {"op": "write", "table": "customer_driver", "rows": [
                row(STALE, customer_id="alice", driver_id=1001, trips=12, last_trip=T2021),
                row(STALE, customer_id="alice", driver_id=1002, trips=None,
                    last_trip=ts("1999-12-31T23:59:59.000000Z")),
                row(STALE, customer_id="café ☕", driver_id=1001, trips=-(2**31), last_trip=None)]},
            {"op": "read", "name": "interleaved_refs",
             "refs": ["customer_profile:name", "driver_trips:rating", "customer_driver:trips",
                      "customer_profile:vip", "customer_driver:last_trip"],
             "entity_rows": [
                 {"customer_id": "alice", "driver_id": 1001},
                 {"driver_id": 1002, "customer_id": "alice"},
                 {"customer_id": "café ☕", "driver_id": 1001},
                 {"customer_id": "1001", "driver_id": 1001},
                 {"customer_id": "nobody", "driver_id": 4242}],
             "expect": {
                 "customer_profile:name": [P, P, N_, P, F_],
                 "driver_trips:rating": [P, S_, P, P, F_],
                 "customer_driver:trips": [P, N_, P, F_, F_],
                 "customer_profile:vip": [P, P, P, P, F_],
                 "customer_driver:last_trip": [P, P, N_, F_, F_]}},
            {"op": "read", "name": "two_groups_one_row",
             "refs": ["customer_driver:last_trip", "customer_profile:vip"],
             "entity_rows": [{"customer_id": "alice", "driver_id": 1002}],
             "expect": {"customer_driver:last_trip": [P], "customer_profile:vip": [P]}},
        ],
    },
    {
        "name": "all_types",
        "description": (
            "One feature of every value type (table all_types, max age 0, keyed by a BYTES"
            " entity): a row with every value set, a row of nulls (NaN included), a row of edge"
            " values (empty strings and lists, infinities, extreme ints, pre-1970 timestamps),"
            " and a device with no row."
        ),
        "project": "default",
        "steps": [
            {"op": "apply", "objects": [device_id, ALL_TYPES]},
            {"op": "write", "table": "all_types", "rows": [
                every_type_row(b"\x00\x01", STALE),
                row(STALE, device_id=b"\xff", **{
                    n: (float("nan") if t in (VT.FLOAT, VT.DOUBLE) else None)
                    for n, t in ALL_TYPES_FEATURES}),
                every_type_row(
                    b"{tag}", ts("2021-04-12T10:59:42.123456Z"), f_bytes=b"", f_string="",
                    f_int32=2**31 - 1, f_int64=-(2**63), f_double=float("-inf"),
                    f_float=float("inf"), f_bool=False,
                    f_timestamp=ts("1969-12-31T23:59:59.500000Z"), f_bytes_list=[],
                    f_string_list=[], f_int32_list=[], f_int64_list=list(range(16)),
                    f_double_list=[], f_float_list=[-0.0], f_bool_list=[], f_timestamp_list=[]),
            ]},
            {"op": "read", "name": "every_type",
             "refs": [f"all_types:{n}" for n, _ in ALL_TYPES_FEATURES],
             "entity_rows": [{"device_id": b"\x00\x01"}, {"device_id": b"\xff"},
                             {"device_id": b"{tag}"}, {"device_id": b""}],
             "expect": {f"all_types:{n}": [P, N_, P, F_] for n, _ in ALL_TYPES_FEATURES}},
        ],
    },
    {
        "name": "schema_evolution",
        "description": (
            "driver_stats is applied, written, then re-applied: conv_rate keeps slot 0, acc_rate"
            " is dropped (slot 1 is retired), avg_trips is retyped INT64 -> DOUBLE (slot 2 retired,"
            " new slot 3), lifetime_trips is new (slot 4). Rows written before hold 3 slots, so"
            " slots 3 and 4 are NOT_FOUND in them; rows written after hold nil in slots 1 and 2."
            " Driver 1003 has a driver_trips field but no driver_stats field: NOT_FOUND. The last"
            " read spans two tables over the same entity, so one key group: one HMGET of two"
            " fields per row."
        ),
        "project": "default",
        "steps": [
            {"op": "apply", "objects": [driver_id, DRIVER_STATS_V1, DRIVER_TRIPS]},
            {"op": "write", "table": "driver_stats", "rows": [
                row(STALE, driver_id=1001, conv_rate=0.25, acc_rate=0.5, avg_trips=7),
                row(STALE, driver_id=1002, conv_rate=0.75, acc_rate=0.5, avg_trips=8)]},
            {"op": "write", "table": "driver_trips", "rows": [
                row(FUTURE, driver_id=1003, average_daily_rides=1.0, maximum_daily_rides=1,
                    rating=1.0)]},
            {"op": "apply", "objects": [DRIVER_STATS_V2]},
            {"op": "write", "table": "driver_stats", "rows": [
                row(ts("2000-01-02T00:00:00.000000Z"), driver_id=1002, conv_rate=0.5,
                    avg_trips=2.25, lifetime_trips=1234),
                row(STALE, driver_id=1004, conv_rate=None, avg_trips=None, lifetime_trips=0)]},
            {"op": "read", "name": "old_and_new_rows",
             "refs": ["driver_stats:conv_rate", "driver_stats:avg_trips",
                      "driver_stats:lifetime_trips"],
             "entity_rows": [{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 1004},
                             {"driver_id": 1003}],
             "expect": {"driver_stats:conv_rate": [P, P, N_, F_],
                        "driver_stats:avg_trips": [F_, P, N_, F_],
                        "driver_stats:lifetime_trips": [F_, P, P, F_]}},
            {"op": "read", "name": "two_tables_one_group",
             "refs": ["driver_trips:rating", "driver_stats:lifetime_trips", "driver_stats:conv_rate"],
             "entity_rows": [{"driver_id": 1003}, {"driver_id": 1002}],
             "expect": {"driver_trips:rating": [P, F_],
                        "driver_stats:lifetime_trips": [F_, P],
                        "driver_stats:conv_rate": [F_, P]}},
        ],
    },
    {
        "name": "chunked",
        "description": (
            "max_cells_per_call = 5 with 2 refs: 2 entity rows per call, so 5 rows take 3 calls"
            " (2 + 2 + 1), each with the same ARGV and its own slice of KEYS; the replies are"
            " concatenated row-wise. The calls are independent (each atomic on its own) and the"
            " Python client sends them in one pipeline."
        ),
        "project": "default",
        "max_cells_per_call": 5,
        "steps": [
            {"op": "apply", "objects": [driver_id, customer_id, DRIVER_TRIPS, CUSTOMER_PROFILE]},
            {"op": "write", "table": "driver_trips", "rows": [
                row(STALE, driver_id=d, average_daily_rides=float(d), maximum_daily_rides=d,
                    rating=d / 4) for d in (1, 2, 3)]},
            {"op": "write", "table": "customer_profile", "rows": [
                row(STALE, customer_id=s, name=s.upper(), vip=s == "c") for s in ("a", "c", "e")]},
            {"op": "read", "name": "three_calls",
             "refs": ["customer_profile:vip", "driver_trips:maximum_daily_rides"],
             "entity_rows": [{"driver_id": 1, "customer_id": "a"},
                             {"driver_id": 2, "customer_id": "b"},
                             {"driver_id": 3, "customer_id": "c"},
                             {"driver_id": 4, "customer_id": "d"},
                             {"driver_id": 5, "customer_id": "e"}],
             "max_age": {"driver_trips": timedelta(0)},
             "expect": {"customer_profile:vip": [P, F_, P, F_, P],
                        "driver_trips:maximum_daily_rides": [P, P, P, F_, F_]}},
        ],
    },
]

# ------------------------------------------------------------------------------------------------
# requests.json: error replies. Each runs on an emptied database with the scripts loaded.
# ------------------------------------------------------------------------------------------------

GOOD_ROW = pack_row(timestamp_us(STALE), NO_CREATED, [encoder(VT.INT64)(1)])
K1, K2 = b"{}fl:7:default9:driver_idi1:1", b"{}fl:7:default9:driver_idi1:2"
REG = registry_key("default")
ERROR_CASES: list[dict] = [
    {"description": "read: ARGV[1] (G) is 0", "script": "read", "keys": [K1],
     "argv": [0, 1, b"driver_trips", 1, 0, 1, 1, 0]},
    {"description": "read: ARGV[2] (T) is above 1000", "script": "read", "keys": [K1],
     "argv": [1, 1001, b"driver_trips", 1, 0, 1, 1, 0]},
    {"description": "read: ARGV count does not match T and F", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, 0, 9]},
    {"description": "read: #KEYS is not a multiple of G", "script": "read", "keys": [K1, K2, K1],
     "argv": [2, 2, b"driver_trips", 1, 0, b"customer_profile", 2, 0, 1, 1, 0]},
    {"description": "read: a table's key group is out of range", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 2, 0, 1, 1, 0]},
    {"description": "read: a max age is negative", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, -1, 1, 1, 0]},
    {"description": "read: a ref's table index is out of range", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 2, 0]},
    {"description": "read: a slot is not an integer", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, b"x"]},
    {"description": "read: the stored row under KEYS[2] is malformed (BADROW is the 1-based KEYS"
                    " index)", "script": "read", "keys": [K1, K2],
     "setup_hset": [(K1, b"driver_trips", GOOD_ROW), (K2, b"driver_trips", b"\x07garbage")],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, 0]},
    {"description": "read: a key group that no table uses", "script": "read", "keys": [K1, K2],
     "argv": [2, 1, b"driver_trips", 1, 0, 1, 1, 0]},
    {"description": "read: a number not in plain decimal digits", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, b"1e3", 1, 1, 0]},
    {"description": "read: a key holding another Redis type: Redis' own WRONGTYPE error",
     "script": "read", "keys": [K1], "setup_set": [(K1, b"not a hash")],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, 0], "match": "prefix",
     "error_prefix": "WRONGTYPE Operation against a key holding the wrong kind of value"},
    {"description": "write: ARGV count is not 2 + #KEYS", "script": "write", "keys": [K1],
     "argv": [b"driver_trips", 0]},
    {"description": "write: negative TTL", "script": "write", "keys": [K1],
     "argv": [b"driver_trips", -5, GOOD_ROW]},
    {"description": "write: row 2 has a bad format byte; row 1 is not written either",
     "script": "write", "keys": [K1, K2],
     "argv": [b"driver_trips", 0, GOOD_ROW, b"\x03" + GOOD_ROW[1:]], "expect_absent": [K1, K2]},
    {"description": "write: row 1's last end offset does not reach the end of the row",
     "script": "write", "keys": [K1], "argv": [b"driver_trips", 0, GOOD_ROW + b"\xc0"],
     "expect_absent": [K1]},
    {"description": "write: row 1 is shorter than the 19-byte header", "script": "write",
     "keys": [K1], "argv": [b"driver_trips", 0, b"\x01\x00"], "expect_absent": [K1]},
    {"description": "write: end offsets decrease", "script": "write", "keys": [K1],
     "argv": [b"driver_trips", 0,
              pack_row(1, NO_CREATED, [b"\x01", b"\x02"])[:19] + b"\x00\x02\x00\x01\x01\x02"],
     "expect_absent": [K1]},
    {"description": "write: the scripts without no-writes are refused under maxmemory"
                    " (noeviction); nothing runs", "script": "write", "keys": [K1],
     "argv": [b"driver_trips", 0, GOOD_ROW], "config_set": {"maxmemory": "1"},
     "expect_absent": [K1], "match": "prefix", "error_prefix": "OOM "},
    {"description": "read: runs under maxmemory (flagged no-writes); not an error",
     "script": "read", "keys": [K1], "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, 0],
     "config_set": {"maxmemory": "1"}, "expect_ok": True},
    {"description": "EVALSHA_RO refuses the write script (no no-writes flag)", "script": "write",
     "command": "EVALSHA_RO", "keys": [K1], "argv": [b"driver_trips", 0, GOOD_ROW]},
    {"description": "registry_put: the registry moved on (version 1 stored, caller read 0)",
     "script": "registry_put", "keys": [REG],
     "setup_hset": [(REG, b"version", b"1"), (REG, b"doc", b'{"format":1,"version":1}')],
     "argv": [0, b'{"format":1,"version":1}']},
    {"description": "registry_put: the document's version is not ARGV[1] + 1",
     "script": "registry_put", "keys": [REG], "argv": [0, b'{"format":1,"version":5}']},
    {"description": "registry_put: the document is not JSON", "script": "registry_put",
     "keys": [REG], "argv": [0, b"nope"]},
    {"description": "registry_put: wrong arity", "script": "registry_put", "keys": [],
     "argv": [0, b"{}"]},
    {"description": "NOSCRIPT: the server does not hold the script (after SCRIPT FLUSH or a"
                    " restart); SCRIPT LOAD it and retry", "script": "read", "keys": [K1],
     "argv": [1, 1, b"driver_trips", 1, 0, 1, 1, 0], "script_flush": True},
]


# ------------------------------------------------------------------------------------------------
# requests.json: stream_write. Each runs on an emptied database: the setup makes a stream whose
# entries are pending in a consumer group, then the calls run in order.
# ------------------------------------------------------------------------------------------------

STREAM, GROUP = b"events", b"workers"
K3 = b"{}fl:7:default9:driver_idi1:3"


def driver_row(event: datetime, created: int = NO_CREATED, rides: int = 1) -> bytes:
    cells = [encoder(VT.FLOAT)(1.5), encoder(VT.INT64)(rides), encoder(VT.FLOAT)(None)]
    return pack_row(timestamp_us(event), created, cells)


def stream_setup(ids: list[bytes], deliver: bool = True) -> list[list[bytes]]:
    """XGROUP CREATE (MKSTREAM), XADD of each id, and XREADGROUP so they are pending."""
    commands = [[b"XGROUP", b"CREATE", STREAM, GROUP, b"0", b"MKSTREAM"]]
    commands += [[b"XADD", STREAM, i, b"table", b"driver_trips", b"row", b"{}"] for i in ids]
    if deliver:
        commands.append([b"XREADGROUP", b"GROUP", GROUP, b"w1", b"STREAMS", STREAM, b">"])
    return commands


def stream_call(ids: list[bytes], keys: list[bytes], rows: list[bytes], ttl: int = 0,
                n: int | None = None) -> tuple[list, list]:
    return ([STREAM, *keys], [GROUP, b"driver_trips", ttl, len(ids) if n is None else n, *ids, *rows])


OLD, NEW = ts("2000-01-01T00:00:00.000000Z"), ts("2000-01-02T00:00:00.000000Z")
STREAM_CASES: list[dict] = [
    {"description": "three pending events for two keys are written newest-wins and acked in one"
                    " call; the same call again finds nothing pending and changes nothing",
     "setup": stream_setup([b"1-1", b"1-2", b"2-0"]),
     "calls": [stream_call([b"1-1", b"1-2", b"2-0"], [K1, K2, K1],
                           [driver_row(NEW, rides=2), driver_row(NEW), driver_row(OLD, rides=3)])] * 2,
     "replies": [[2, 1, 3, 0], [0, 0, 0, 3]]},
    {"description": "an id twice in one call applies once (the second copy counts as not"
                    " pending); an id never delivered (7-0, not pending) is left alone",
     "setup": [*stream_setup([b"5-0", b"6-0"]), [b"XADD", STREAM, b"7-0", b"k", b"v"]],
     "calls": [stream_call([b"5-0", b"5-0", b"7-0", b"6-0"], [K3, K3, K3, K1],
                           [driver_row(OLD), driver_row(NEW), driver_row(NEW), driver_row(OLD)])],
     "replies": [[2, 0, 2, 2]]},
    {"description": "a pending event with a later created timestamp than the stored row (same"
                    " event time) is written; with an earlier one it is skipped",
     "setup": stream_setup([b"1-0", b"2-0", b"3-0"]),
     "calls": [stream_call([b"1-0"], [K1], [driver_row(OLD, created=5)]),
               stream_call([b"2-0", b"3-0"], [K1, K1],
                           [driver_row(OLD, created=4, rides=4), driver_row(OLD, created=6, rides=6)])],
     "replies": [[1, 0, 1, 0], [1, 1, 2, 0]]},
    {"description": "row 2 is malformed: BADROW 2, nothing written and nothing acked (both stay"
                    " pending)",
     "setup": stream_setup([b"1-0", b"2-0"]),
     "calls": [stream_call([b"1-0", b"2-0"], [K1, K2], [driver_row(OLD), driver_row(OLD)[:-1]])],
     "replies": [None], "error": "BADROW 2", "expect_absent": [K1, K2], "expect_pending": 2},
    {"description": "the consumer group does not exist: Redis' NOGROUP error, nothing written",
     "setup": [[b"XADD", STREAM, b"1-0", b"k", b"v"]],
     "calls": [stream_call([b"1-0"], [K1], [driver_row(OLD)])],
     "replies": [None], "error_prefix": "NOGROUP", "expect_absent": [K1]},
    {"description": "an event id with a leading zero is refused before anything runs",
     "setup": stream_setup([b"1-0"]),
     "calls": [stream_call([b"01-0"], [K1], [driver_row(OLD)])],
     "replies": [None], "error_prefix": "BADREQUEST", "expect_absent": [K1]},
]


def run_stream_case(conn: Resp, shas: dict, case: dict) -> dict:
    conn.ok("FLUSHALL")
    for command in case["setup"]:
        conn.ok(*command)
    calls = []
    for (keys, argv), want in zip(case["calls"], case["replies"]):
        reply = evalsha(conn, shas, "stream_write", keys, argv)
        out = call_json("stream_write", keys, argv)
        if want is None:
            if not isinstance(reply, RespError):
                raise SystemExit(f"{case['description']}: expected an error, got {reply!r}")
            if "error" in case:
                if reply.line != case["error"]:
                    raise SystemExit(f"{case['description']}: {reply.line}")
                out["error"] = reply.line
            else:
                if not reply.line.startswith(case["error_prefix"]):
                    raise SystemExit(f"{case['description']}: {reply.line}")
                out["error_prefix"] = case["error_prefix"]
        else:
            if reply != want:
                raise SystemExit(f"{case['description']}: replied {reply!r}, designed for {want}")
            out["reply"] = reply
        calls.append(out)
    if any(conn.ok("EXISTS", k) for k in case.get("expect_absent", [])):
        raise SystemExit(f"{case['description']}: a key was written")
    result = {"description": case["description"],
              "setup": [{"args_hex": [arg_bytes(a).hex() for a in c],
                         "display": [display(arg_bytes(a)) for a in c]} for c in case["setup"]],
              "calls": calls}
    if "expect_absent" in case:
        result["keys_absent_after_hex"] = [k.hex() for k in case["expect_absent"]]
    if "expect_pending" in case:
        pending = conn.ok("XPENDING", STREAM, GROUP)[0]  # type: ignore[index]
        if pending != case["expect_pending"]:
            raise SystemExit(f"{case['description']}: {pending} pending")
        result["pending_after"] = pending
    result["stored_after_hex"] = {
        k.hex(): (v.hex() if isinstance(v, bytes) else None)
        for k in (K1, K2, K3) for v in [conn.ok("HGET", k, b"driver_trips")]}
    return result


# ------------------------------------------------------------------------------------------------
# Running scenarios
# ------------------------------------------------------------------------------------------------


def object_json(obj: Entity | FeatureTable) -> dict:
    if isinstance(obj, Entity):
        return {"kind": "entity", "name": obj.name, "value_type": obj.value_type.name,
                "description": obj.description}
    return {"kind": "feature_table", "name": obj.name, "entities": list(obj.entities),
            "features": [{"name": f.name, "value_type": f.value_type.name} for f in obj.features],
            "max_age_us": obj.max_age // timedelta(microseconds=1)}  # type: ignore[operator]


def call_json(script: str, keys: list, argv: list, command: str = "EVALSHA") -> dict:
    return {
        "command": command,
        "script": script,
        "keys_hex": [arg_bytes(k).hex() for k in keys],
        "keys_display": [display(arg_bytes(k)) for k in keys],
        "argv_hex": [arg_bytes(a).hex() for a in argv],
        "argv_display": [display(arg_bytes(a)) for a in argv],
    }


def evalsha(conn: Resp, shas: dict, script: str, keys: list, argv: list,
            command: str = "EVALSHA") -> object:
    return conn.call(command, shas[script], len(keys), *keys, *argv)


def typed_row(registry, table_name: str, r: dict) -> dict:
    spec = registry.tables[table_name]
    out = {}
    for k, v in r.items():
        if k in ("event_timestamp", "created_timestamp"):
            out[k] = rfc3339(v)
        elif k in spec.features:
            out[k] = to_json(spec.features[k].value_type, v)
        else:
            out[k] = to_json(registry.entities[k].value_type, v)
    return out


def mask_now(reply: bytes) -> bytes:
    if reply[:2] != b"\x94\xd3":
        raise SystemExit(f"unexpected read reply {reply[:16].hex()}")
    return reply[:2] + bytes(8) + reply[10:]


def split_reply(reply: bytes) -> dict:
    """The reply's parts, with each value cell's raw msgpack bytes."""
    unpacker = msgpack.Unpacker(raw=False, timestamp=3)
    unpacker.feed(reply)
    assert unpacker.read_array_header() == 4
    unpacker.unpack()  # now_us
    statuses = unpacker.unpack()
    stamps = unpacker.unpack()
    n = unpacker.read_array_header()
    cells = []
    for _ in range(n):
        begin = unpacker.tell()
        unpacker.skip()
        cells.append(reply[begin:unpacker.tell()].hex())
    count = len(stamps) // 8
    return {
        "statuses": list(statuses),
        "event_ts_us": list(int.from_bytes(stamps[i * 8:i * 8 + 8], "big", signed=True)
                            for i in range(count)),
        "values_msgpack_hex": cells,
    }


def run_scenario(conn: Resp, shas: dict, scenario: dict) -> dict:
    conn.ok("FLUSHALL")
    project = scenario["project"]
    max_cells = scenario.get("max_cells_per_call", DEFAULT_MAX_CELLS_PER_CALL)
    registry = empty(project)
    steps = []
    for step in scenario["steps"]:
        op = step["op"]
        if op == "apply":
            updated = merge(registry, step["objects"])
            keys, argv = [registry_key(project)], [registry.version, updated.to_json()]
            reply = evalsha(conn, shas, "registry_put", keys, argv)
            if reply != updated.version:
                raise SystemExit(f"registry_put replied {reply!r}")
            registry = updated
            steps.append({"op": "apply", "objects": [object_json(o) for o in step["objects"]],
                          "calls": [{**call_json("registry_put", keys, argv), "reply": reply}],
                          "registry_after": json.loads(updated.to_json())})
        elif op == "write":
            spec = registry.tables[step["table"]]
            ttl = step.get("ttl")
            ttl_ms = 0 if ttl is None else ttl // timedelta(milliseconds=1)
            plan = plan_write(registry, spec, step["rows"])
            calls = []
            total = [0, 0]
            for keys, argv in plan.calls(ttl_ms, 2_000):
                reply = evalsha(conn, shas, "write", keys, argv)
                if not isinstance(reply, list):
                    raise SystemExit(f"write replied {reply!r}")
                total = [total[0] + reply[0], total[1] + reply[1]]
                calls.append({**call_json("write", keys, argv), "reply": reply})
            if "expect_result" in step and total != step["expect_result"]:
                raise SystemExit(f"{scenario['name']}: write gave {total}, expected"
                                 f" {step['expect_result']}")
            steps.append({
                "op": "write", "table": spec.name, "ttl_ms": ttl_ms,
                "max_rows_per_call": 2_000,
                "rows": [typed_row(registry, spec.name, r) for r in step["rows"]],
                "calls": calls,
                "result": {"written": total[0], "skipped": total[1]},
            })
        else:
            steps.append(run_read(conn, shas, scenario, registry, step, max_cells))
    return {"name": scenario["name"], "description": scenario["description"],
            "project": project, "steps": steps}


def run_read(conn: Resp, shas: dict, scenario: dict, registry, step: dict, max_cells: int) -> dict:
    refs = parse_refs(step["refs"])
    plan = plan_read(registry, refs, step["entity_rows"], step.get("max_age"))
    calls, replies = [], []
    for keys, argv in plan.calls(max_cells):
        reply = evalsha(conn, shas, "read", keys, argv)
        if not isinstance(reply, bytes):
            raise SystemExit(f"read replied {reply!r}")
        replies.append(reply)
        calls.append({**call_json("read", keys, argv), "reply_hex": mask_now(reply).hex(),
                      "reply_parts": split_reply(reply)})
    response = GetOnlineFeaturesResponse(plan, [decode_reply(r) for r in replies])
    statuses = response.statuses()
    values = response.to_dict()
    stamps = response.event_timestamps()
    expected = {}
    for ref in plan.refs:
        name = str(ref)
        vt = registry.tables[ref.table].features[ref.feature].value_type
        expected[name] = {
            "value_type": vt.name,
            "statuses": [s.name for s in statuses[name]],
            "values": [to_json(vt, v) for v in values[name]],
            "event_timestamps": [None if t is None else rfc3339(t) for t in stamps[name]],
        }
        want = step["expect"][name]
        if expected[name]["statuses"] != want:
            raise SystemExit(f"{scenario['name']}/{step['name']} {name}: got"
                             f" {expected[name]['statuses']}, designed for {want}")
    entity_types = {k: registry.entities[k].value_type for r in step["entity_rows"] for k in r}
    max_age = step.get("max_age")
    return {
        "op": "read",
        "name": step["name"],
        "feature_refs": step["refs"],
        "entity_rows": [{k: to_json(entity_types[k], v) for k, v in r.items()}
                        for r in step["entity_rows"]],
        "entity_types": {k: t.name for k, t in sorted(entity_types.items())},
        "max_age_override_us": None if max_age is None else {
            k: v // timedelta(microseconds=1) for k, v in max_age.items()},
        "max_cells_per_call": max_cells,
        "tables": [t.name for t in plan.tables],
        "key_groups": _groups(plan),
        "calls": calls,
        "expected": expected,
    }


def _groups(plan) -> list[list[str]]:
    seen: list[list[str]] = []
    for t in plan.tables:
        g = list(t.key_group)
        if g not in seen:
            seen.append(g)
    return seen


def run_error(conn: Resp, shas: dict, case: dict) -> dict:
    conn.ok("FLUSHALL")
    for key, field, value in case.get("setup_hset", []):
        conn.ok("HSET", key, field, value)
    for key, value in case.get("setup_set", []):
        conn.ok("SET", key, value)
    if case.get("script_flush"):
        conn.ok("SCRIPT", "FLUSH")
    for name, value in case.get("config_set", {}).items():
        conn.ok("CONFIG", "SET", name, value)
    try:
        command = case.get("command", "EVALSHA")
        reply = evalsha(conn, shas, case["script"], case["keys"], case["argv"], command)
        absent = [k for k in case.get("expect_absent", []) if conn.ok("EXISTS", k) == 0]
    finally:
        conn.ok("CONFIG", "SET", "maxmemory", "0")
        if case.get("script_flush"):
            load_all_scripts(conn)
    if case.get("expect_ok"):
        if isinstance(reply, RespError):
            raise SystemExit(f"{case['description']}: unexpected error {reply.line}")
    elif not isinstance(reply, RespError):
        raise SystemExit(f"{case['description']}: expected an error, got {reply!r}")
    if absent != case.get("expect_absent", []):
        raise SystemExit(f"{case['description']}: a key was written")
    out = {"description": case["description"], **call_json(case["script"], case["keys"],
                                                           case["argv"], case.get("command",
                                                                                  "EVALSHA"))}
    setup = []
    if case.get("script_flush"):
        setup.append({"command": ["SCRIPT", "FLUSH"]})
    for key, field, value in case.get("setup_hset", []):
        setup.append({"command": ["HSET"], "args_hex": [key.hex(), field.hex(), value.hex()]})
    for key, value in case.get("setup_set", []):
        setup.append({"command": ["SET"], "args_hex": [key.hex(), value.hex()]})
    for name, value in case.get("config_set", {}).items():
        setup.append({"command": ["CONFIG", "SET", name, value], "undo": ["CONFIG", "SET", name,
                                                                          "0"]})
    out["setup"] = setup
    if case.get("expect_ok"):
        out["reply_hex"] = mask_now(reply).hex()  # type: ignore[arg-type]
    elif case.get("match") == "prefix":
        if not reply.line.startswith(case["error_prefix"]):  # type: ignore[union-attr]
            raise SystemExit(f"{case['description']}: {reply.line}")  # type: ignore[union-attr]
        out["error_prefix"] = case["error_prefix"]
    else:
        out["error"] = reply.line  # type: ignore[union-attr]
    if "expect_absent" in case:
        out["keys_absent_after_hex"] = [k.hex() for k in case["expect_absent"]]
    return out


def make_requests() -> dict:
    scripts = load_scripts()
    with RedisServer() as server:
        conn = Resp(server.port)
        try:
            shas = load_all_scripts(conn)
            version = conn.ok("INFO", "server").decode()  # type: ignore[union-attr]
            scenarios = [run_scenario(conn, shas, s) for s in SCENARIOS]
            errors = [run_error(conn, shas, e) for e in ERROR_CASES]
            streams = [run_stream_case(conn, shas, e) for e in STREAM_CASES]
        finally:
            conn.close()
    redis_version = next(line.split(":", 1)[1].strip() for line in version.splitlines()
                         if line.startswith("redis_version:"))
    return {
        "about": (
            "Scenarios: each starts on an empty database with the scripts loaded (SCRIPT LOAD"
            " of lua/*.lua) and runs its steps in order. apply = one registry_put call, write ="
            " write calls, read = read calls; every call is 'EVALSHA <sha of script> <#keys>"
            " keys... argv...' with the exact bytes in keys_hex/argv_hex (integers travel as"
            " decimal ASCII). Replaying the apply and write calls and then each read's calls must"
            " give the recorded replies. 'expected' is the decoded response per feature ref."
            " errors: calls that must fail with the recorded error reply. stream_writes: calls of"
            " the stream_write script after 'setup' (commands with their exact arguments, which"
            " build a stream whose entries are pending in a consumer group); each call gives"
            " 'reply' or fails with 'error' (exact) or 'error_prefix'; stored_after_hex is each"
            " listed key's driver_trips field afterwards (null: none). See docs/PROTOCOL.md."
        ),
        "comparison": {
            "read_reply": (
                "reply_hex is the read script's reply (a RESP bulk string) with the now_us"
                " element masked. Byte 0 is 0x94 (array of 4); bytes 1..9 are now_us, always"
                " 0xd3 followed by 8 bytes of big-endian int64 (the server clock, which differs"
                " on every run). Compare by overwriting bytes 2..9 (0-based, 8 bytes) of the"
                " actual reply with zeros, then comparing the whole reply with reply_hex."
            ),
            "determinism": (
                "Statuses do not depend on when the vectors are replayed: stale rows are dated"
                " 2000 under a max age of 1 day; fresh rows are in tables with max age 0, read"
                " with a max age override, or dated 2099-01-01 under a max age of 1 day (a"
                " negative age is fresh), which holds until 2099-01-02."
            ),
            "registry_doc": (
                "argv_hex[1] of a registry_put call is the document the Python client writes"
                " (compact JSON, sorted keys). Other clients may serialize differently; compare"
                " parsed JSON (registry_after), not bytes."
            ),
            "errors": (
                "'error' is the error line after the leading '-', to match exactly; where"
                " 'error_prefix' is given instead, the line must start with it (Redis' own"
                " errors carry script names and line numbers). Run 'setup' commands first and"
                " 'undo' them after. keys_absent_after_hex lists keys that must not exist after"
                " the failed call."
            ),
        },
        "generated_with": {
            "redis_version": redis_version,
            "scripts": {name: s.sha for name, s in scripts.items()},
        },
        "value_json": VALUE_JSON_DOC,
        "scenarios": scenarios,
        "errors": errors,
        "stream_writes": streams,
    }


# ------------------------------------------------------------------------------------------------


def render(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def build(which: list[str]) -> dict[str, str]:
    makers = {"keys.json": make_keys, "rows.json": make_rows, "requests.json": make_requests}
    return {name: render(makers[name]()) for name in which}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    parser.add_argument("files", nargs="*", default=["keys.json", "rows.json", "requests.json"],
                        help="which files (default: all three)")
    args = parser.parse_args(argv)
    files = build(args.files)
    if args.check:
        stale = [n for n, text in files.items()
                 if not (HERE / n).is_file() or (HERE / n).read_text(encoding="utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run: .venv/bin/python tests/vectors/generate.py",
                  file=sys.stderr)
            return 1
        print("tests/vectors/ is up to date")
        return 0
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote tests/vectors/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
