"""Generates tests/vectors/feast_layout.json: Feast's Redis layout as feast-lua encodes it.

    .venv/bin/python tests/vectors/generate_feast_layout.py           # rewrite the file
    .venv/bin/python tests/vectors/generate_feast_layout.py --check   # exit 1 if it would change

For clients in other languages that serve Feast's layout through feast_read/feast_write
(docs/PROTOCOL.md, "Feast layout"): entity keys, murmur3 field names, Timestamps, Value protos,
and the KEYS/ARGV of one feast_read and one feast_write call. No Redis is needed; the bytes were
checked against what feast 0.67 itself writes (tests/compat). tests/test_feast_layout_vectors.py
checks that the file is current. Values are written as in the other vector files (bytes as hex,
timestamps as RFC 3339 UTC); every integer here is within 2^53.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from feast_lua import FeastDefinitions, FeastEntity, FeastView, ValueType  # noqa: E402
from feast_lua.feast_layout import (  # noqa: E402
    encode_timestamp,
    entity_key,
    feature_field,
    murmur3_32,
    timestamp_field,
)
from feast_lua.feast_layout.proto import value_encoder  # noqa: E402
from feast_lua.feast_layout.read_plan import plan_refs  # noqa: E402
from feast_lua.feast_layout.write_plan import plan_write  # noqa: E402

OUT = HERE / "feast_layout.json"
UTC = timezone.utc
VT = ValueType


def as_json(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def hexes(items: list) -> list:
    return [str(x).encode().hex() if isinstance(x, int) else bytes(x).hex() for x in items]


KEYS = [
    ("feastbase", {"driver_id": (VT.INT64, 1)}),
    ("feastbase", {"driver_id": (VT.INT64, -42)}),
    ("p", {"device_id": (VT.INT32, -1)}),
    ("p", {"customer_id": (VT.STRING, "café ☕")}),
    ("p", {"session_id": (VT.BYTES, b"\x00\xff")}),
    ("p", {"driver_id": (VT.INT64, 1001), "customer_id": (VT.STRING, "alice")}),
]
FIELDS = [("driver_trips", "rating"), ("driver_trips", "average_daily_rides"), ("v", "f")]
TIMESTAMPS = [(0, 0), (1, 0), (0, 5), (1618225182, 123456000), (-1, 500000000)]
VALUES = [
    (VT.INT64, 5), (VT.INT64, -1), (VT.INT64, 0), (VT.INT32, 7), (VT.FLOAT, 0.5), (VT.DOUBLE, 1.0),
    (VT.STRING, "é"), (VT.BYTES, b"\x00"), (VT.BOOL, False), (VT.BOOL, True),
    (VT.UNIX_TIMESTAMP, datetime(2021, 4, 12, 10, 59, 42, tzinfo=UTC)),
    (VT.INT64_LIST, [1, 2]), (VT.STRING_LIST, []), (VT.BYTES_LIST, [b"a"]),
    (VT.FLOAT_LIST, [0.5, -2.0]), (VT.BOOL_LIST, [True, False]), (VT.INT64, None), (VT.STRING_LIST, None),
]
DEFS = FeastDefinitions(
    "feastbase",
    [FeastEntity("driver_id", VT.INT64), FeastEntity("customer_id", VT.STRING)],
    [FeastView("driver_trips", ["driver_id"], {"average_daily_rides": VT.FLOAT, "rating": VT.DOUBLE},
               ttl=timedelta(days=1)),
     FeastView("customer_driver", ["customer_id", "driver_id"], {"trips": VT.INT64})],
)


def calls() -> dict:
    refs = ["driver_trips:rating", "customer_driver:trips", "driver_trips:average_daily_rides"]
    rows = [{"driver_id": 1001, "customer_id": "alice"}, {"driver_id": 1002, "customer_id": "bob"}]
    plan = plan_refs(DEFS, refs)
    (keys, args), = plan.calls(plan.keys(rows), 20_000, 4_000)
    written = [{"driver_id": 1001, "average_daily_rides": 12.5, "rating": None,
                "event_timestamp": datetime(2021, 4, 12, 10, 59, 42, 123456, tzinfo=UTC)}]
    (wkeys, wargs), = plan_write(DEFS, "driver_trips", written, key_ttl=timedelta(hours=1)).calls()
    return {
        "definitions": DEFS.to_dict(),
        "feast_read": {"refs": refs, "entity_rows": rows, "keys_hex": hexes(keys), "argv_hex": hexes(args)},
        "feast_write": {"view": "driver_trips",
                        "rows": [{k: as_json(v) for k, v in r.items()} for r in written],
                        "key_ttl_seconds": 3600, "keys_hex": hexes(wkeys), "argv_hex": hexes(wargs)},
    }


def build() -> dict:
    return {
        "about": "Feast's Redis layout (RedisOnlineStore, entity key serialization v3) as feast-lua reads and"
                 " writes it; docs/PROTOCOL.md, 'Feast layout'. Integers in ARGV are decimal ASCII.",
        "keys": [{"project": project,
                  "entities": [{"join_key": k, "value_type": t.name, "value": as_json(v)}
                               for k, (t, v) in entities.items()],
                  "key_hex": entity_key(project, entities).hex()} for project, entities in KEYS],
        "fields": [{"view": view, "feature": feature, "murmur3_32": murmur3_32(f"{view}:{feature}".encode()),
                    "field_hex": feature_field(view, feature).hex(),
                    "timestamp_field": timestamp_field(view).decode()} for view, feature in FIELDS],
        "timestamps": [{"seconds": s, "nanos": n, "hex": encode_timestamp(s, n).hex()}
                       for s, n in TIMESTAMPS],
        "values": [{"value_type": t.name, "value": as_json(v), "hex": value_encoder(t)(v).hex()}
                   for t, v in VALUES],
        "nulls_hex": ["", "980100", "40" + "80" * 9 + "01"],
        **calls(),
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"out of date: {OUT.name}; run: .venv/bin/python tests/vectors/{Path(__file__).name}")
            return 1
        print(f"{OUT.name} is up to date")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
