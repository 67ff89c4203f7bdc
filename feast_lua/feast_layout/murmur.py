"""Feast's hash field names: the 4-byte little-endian murmur3_32 (seed 0) of "view:feature".

Feast names a feature's field by this hash (feast/infra/online_stores/helpers.py, `_mmh3`, which
uses the mmh3 package); this is the same function in pure Python, so feast-lua needs no C
extension for it. Names are hashed once per request plan, so speed does not matter here.
"""

from __future__ import annotations

import struct

from ..constants import FEAST_TS_FIELD_PREFIX

_C1, _C2, _MASK = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, unsigned."""
    h = seed & _MASK
    tail = len(data) & ~3
    for (k,) in struct.iter_unpack("<I", data[:tail]):
        k = _rotl((k * _C1) & _MASK, 15) * _C2 & _MASK
        h = (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & _MASK
    rest = data[tail:]
    if rest:
        k = _rotl((int.from_bytes(rest, "little") * _C1) & _MASK, 15) * _C2 & _MASK
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def feature_field(view: str, feature: str) -> bytes:
    """The hash field Feast stores `view:feature` under."""
    return struct.pack("<I", murmur3_32(f"{view}:{feature}".encode()))


def timestamp_field(view: str) -> bytes:
    """The hash field holding the view's event timestamp, "_ts:<view>"."""
    return f"{FEAST_TS_FIELD_PREFIX}{view}".encode()
