"""Feast's Redis layout, byte for byte, without feast (feast 0.67, sdk/python/feast/infra/online_stores).

* key:    serialize_entity_key(entity_key, version 3) + project (UTF-8), with v3 =
          u32 number of join keys, then per join key (sorted) u32 type 2 + u32 length + name,
          then per value u32 value type + u32 length + bytes (little-endian throughout).
* field:  per feature, the 4-byte little-endian unsigned murmur3_32 (seed 0) of "view:feature";
          plus "_ts:<view>" holding a google.protobuf.Timestamp (seconds, nanos).
* value:  a serialized feast.types.Value proto (bytes_val=1, string_val=2, int32_val=3,
          int64_val=4, double_val=5, float_val=6, bool_val=7); a null is an empty string.

bench_vs_feast.py checks these bytes against what the real feast writes (HGETALL of sampled
keys) whenever the Feast venv is in use, and bench_memory.py does the same before it loads.
Pure Python plus redis-py, so it runs in either venv.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import bench_data as data

_INT64, _STRING = 4, 2  # feast ValueType numbers used in entity keys


def murmur3_32(payload: bytes, seed: int = 0) -> int:
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    tail = len(payload) & ~3
    for (k,) in struct.iter_unpack("<I", payload[:tail]):
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    rest = payload[tail:]
    if rest:
        k = int.from_bytes(rest, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(payload)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def field(view: str, feature: str) -> bytes:
    return struct.pack("<I", murmur3_32(f"{view}:{feature}".encode()))


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def entity_key(project: str, join_values: dict[str, int]) -> bytes:
    """INT64 join keys only, which is all the benchmarks use."""
    names = sorted(join_values)
    parts = [struct.pack("<I", len(names))]
    for name in names:
        encoded = name.encode()
        parts.append(struct.pack("<II", _STRING, len(encoded)) + encoded)
    for name in names:
        parts.append(struct.pack("<IIq", _INT64, 8, join_values[name]))
    parts.append(project.encode())
    return b"".join(parts)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def value(kind: str, v: object) -> bytes:
    """A feast.types.Value proto with one member of the `val` oneof set (always serialized)."""
    if v is None:
        return b""
    if kind == "INT64":
        return b"\x20" + _varint(v)
    if kind == "DOUBLE":
        return b"\x29" + struct.pack("<d", v)
    if kind == "FLOAT":
        return b"\x35" + struct.pack("<f", v)
    if kind == "STRING":
        encoded = v.encode()
        return b"\x12" + _varint(len(encoded)) + encoded
    if kind == "BOOL":
        return b"\x38" + (b"\x01" if v else b"\x00")
    raise ValueError(f"no encoder for {kind}")


def timestamp(epoch_us: int) -> bytes:
    """google.protobuf.Timestamp as Timestamp.FromDatetime leaves it: fields left out when 0."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    out = b""
    if seconds:
        out += b"\x08" + _varint(seconds)
    if micros:
        out += b"\x10" + _varint(micros * 1000)
    return out


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
