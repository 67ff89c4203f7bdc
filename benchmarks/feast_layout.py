"""Feast's Redis layout, byte for byte, without feast (feast 0.67, sdk/python/feast/infra/online_stores).

* key:    serialize_entity_key(entity_key, version 3) + project (UTF-8), with v3 =
          u32 number of join keys, then per join key (sorted) u32 type 2 + u32 length + name,
          then per value u32 value type + u32 length + bytes (little-endian throughout).
* field:  per feature, the 4-byte little-endian unsigned murmur3_32 (seed 0) of "view:feature";
          plus "_ts:<view>" holding a google.protobuf.Timestamp (seconds, nanos).
* value:  a serialized feast.types.Value proto (bytes_val=1, string_val=2, int32_val=3,
          int64_val=4, double_val=5, float_val=6, bool_val=7); a null is an empty string.

The encodings themselves live in the package (feast_lua/feast_layout, which FeastLayoutClient uses);
this module keeps the benchmarks' helpers over them. bench_vs_feast.py checks these bytes
against what the real feast writes (HGETALL of sampled keys) whenever the Feast venv is in use,
and bench_memory.py does the same before it loads; tests/compat checks whole hashes.
Runs in the main venv (feast_lua and protobuf), never in Feast's.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import bench_data as data

from feast_lua.feast_layout import encode_timestamp, feature_field, murmur3_32, timestamp_field
from feast_lua.feast_layout import entity_key as _entity_key
from feast_lua.feast_layout.proto import value_encoder
from feast_lua.types import ValueType

__all__ = ["murmur3_32", "field", "ts_field", "entity_key", "value", "timestamp", "ViewLayout"]

field = feature_field
ts_field = timestamp_field


def entity_key(project: str, join_values: dict[str, int]) -> bytes:
    """INT64 join keys only, which is all the benchmarks use."""
    return _entity_key(project, {name: (ValueType.INT64, v) for name, v in join_values.items()})


@cache
def _encoder(kind: str):
    return value_encoder(ValueType[kind])


def value(kind: str, v: object) -> bytes:
    """A feast.types.Value proto with one member of the `val` oneof set; b"" for None."""
    return _encoder(kind)(v)


def timestamp(epoch_us: int) -> bytes:
    """google.protobuf.Timestamp as Timestamp.FromDatetime leaves it: fields left out when 0."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    return encode_timestamp(seconds, micros * 1000)


class ViewLayout:
    """Fields and encoders of one bench_data table stored as a Feast feature view."""

    def __init__(self, view: str, project: str = data.PROJECT):
        self.view = view
        self.project = project
        self.join_key, self.width = data.TABLES[view]
        self.names = data.feature_names(view)
        self.fields = [field(view, n) for n in self.names]
        self.ts_field = ts_field(view)
        self.read_fields = [*self.fields, self.ts_field]  # what Feast's read HMGETs, in order

    def key(self, entity_id: int) -> bytes:
        return entity_key(self.project, {self.join_key: entity_id})

    def mapping(self, entity_id: int, event_us: int) -> dict[bytes, bytes]:
        row = data.row(self.view, entity_id)
        out = {self.ts_field: timestamp(event_us)}
        for i, (name, f) in enumerate(zip(self.names, self.fields)):
            out[f] = value(data.feature_type(i), row[name])
        return out

    def write(self, redis_client, ids: Iterable[int], event_us: int, batch: int = 2000) -> None:
        """HSET each entity's fields with a non-transactional pipeline, as Feast's write does."""
        ids = list(ids)
        for start in range(0, len(ids), batch):
            pipe = redis_client.pipeline(transaction=False)
            for e in ids[start:start + batch]:
                pipe.hset(self.key(e), mapping=self.mapping(e, event_us))
            pipe.execute()

    def mismatches(self, redis_client, ids: Iterable[int], event_us: int) -> list[str]:
        """Keys whose stored hash differs from this layout's bytes (empty list: byte-exact)."""
        problems = []
        for e in ids:
            stored = redis_client.hgetall(self.key(e))
            expected = self.mapping(e, event_us)
            mine = {k: v for k, v in stored.items() if k in expected}
            if mine != expected:
                diff = sorted(k.hex() for k in set(mine) | set(expected) if mine.get(k) != expected.get(k))
                problems.append(f"{self.view} id {e}: fields {diff[:4]} differ")
        return problems
