"""The benchmark data set, shared by every script here and by feast_side.py (the Feast venv).

Plain Python only: this module is imported both by the feast-lua venv and by the separate
venv that runs the real feast package, so it must not import feast_lua, feast, msgpack or
anything else that is only in one of them.

Tables (feast-lua feature tables and Feast feature views carry the same names):

  bench_f10  entity driver_id,   10 features
  bench_f50  entity driver_id,   50 features
  bench_c10  entity customer_id, 10 features   (the second entity set of the two-table shape)

Feature types cycle through INT64, DOUBLE, FLOAT, STRING (about 12 bytes) and BOOL. Every row
is fresh and non-null, so every cell is PRESENT and every reader does its full work per cell.
"""

from __future__ import annotations

import struct

PROJECT = "bench"
DRIVER = "driver_id"
CUSTOMER = "customer_id"
TYPES = ("INT64", "DOUBLE", "FLOAT", "STRING", "BOOL")
# table name -> (join key, number of features)
TABLES = {
    "bench_f10": (DRIVER, 10),
    "bench_f50": (DRIVER, 50),
    "bench_c10": (CUSTOMER, 10),
}
BY_WIDTH = {10: "bench_f10", 50: "bench_f50"}  # the single-table shapes' tables
TWO_TABLES = ("bench_f10", "bench_c10")
MAX_AGE_S = 86400  # 1 day: feast-lua max_age and Feast ttl
CUSTOMER_OFFSET = 7  # customer ids of a two-table row are other entities than its driver's


def feature_type(i: int) -> str:
    return TYPES[i % len(TYPES)]


def feature_name(i: int) -> str:
    return f"f{i:02d}_{feature_type(i).lower()}"


def feature_names(table: str) -> list[str]:
    return [feature_name(i) for i in range(TABLES[table][1])]


def feature_value(i: int, entity_id: int) -> object:
    kind = feature_type(i)
    if kind == "INT64":
        return entity_id * 7 + i
    if kind == "DOUBLE":
        return entity_id / 3.0 + i
    if kind == "FLOAT":
        return (entity_id % 1000) / 8.0 + i * 0.1  # not exact in float32: shows the rounding
    if kind == "STRING":
        return f"value-{entity_id % 997}-{i}"
    return entity_id % 2 == 0


def read_back(i: int, entity_id: int) -> object:
    """The value a reader returns: FLOAT is stored as float32 by Feast and by feast-lua."""
    value = feature_value(i, entity_id)
    if feature_type(i) == "FLOAT":
        return struct.unpack("<f", struct.pack("<f", value))[0]
    return value


def row(table: str, entity_id: int) -> dict:
    """Join key and every feature of one entity's row of `table` (no timestamp)."""
    join_key, width = TABLES[table]
    return {join_key: entity_id, **{feature_name(i): feature_value(i, entity_id) for i in range(width)}}


def shape_rows(rows: int, entities: int, seed: int, two_tables: bool = False) -> list[dict]:
    """`rows` distinct driver ids (and, for two tables, customer ids) out of 0..entities-1."""
    import random

    ids = random.Random(seed).sample(range(entities), rows)
    if not two_tables:
        return [{DRIVER: e} for e in ids]
    return [{DRIVER: e, CUSTOMER: (e + CUSTOMER_OFFSET) % entities} for e in ids]
