"""Feast's Redis keys: serialize_entity_key version 3, then the project name in UTF-8.

Version 3 (feast/infra/key_encoding_utils.py), little-endian throughout: u32 number of join keys;
per join key in sorted order, u32 2 (STRING) + u32 length + the name; then per value in the same
order, u32 value type + u32 length + the value (int64 `<q`, int32 `<i`, UTF-8 text, raw bytes).
Feast appends the project with no separator.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from ..errors import EntityRowError
from ..keys import INT_RANGES
from ..types import ValueType


def _value_bytes(value: object, value_type: ValueType) -> bytes:
    if value_type in (ValueType.INT64, ValueType.INT32):
        if isinstance(value, bool) or not isinstance(value, int):
            if not hasattr(value, "__index__") or isinstance(value, bool):
                raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
            value = value.__index__()  # numpy integers
        low, high = INT_RANGES[value_type]
        if not low <= value <= high:
            raise ValueError(f"{value} is outside the {value_type.name} range")
        return struct.pack("<q" if value_type is ValueType.INT64 else "<i", value)
    if value_type is ValueType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__} {value!r}")
        return value.encode("utf-8")
    if value_type is ValueType.BYTES:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(value).__name__} {value!r}")
        return bytes(value)
    raise TypeError(f"{value_type.name} cannot be an entity key type in Feast's layout")


def entity_key(project: str, values: Mapping[str, tuple[ValueType, object]]) -> bytes:
    """The key of one entity: join key -> (value type, value)."""
    names = sorted(values)
    parts = [struct.pack("<I", len(names))]
    for name in names:
        encoded = name.encode("utf-8")
        parts.append(struct.pack("<II", ValueType.STRING.value, len(encoded)) + encoded)
    for name in names:
        value_type, value = values[name]
        data = _value_bytes(value, value_type)
        parts.append(struct.pack("<II", value_type.value, len(data)) + data)
    parts.append(project.encode("utf-8"))
    return b"".join(parts)


class FeastKeyEncoder:
    """Keys of one set of join keys for many entity rows; the constant parts are built once."""

    def __init__(self, project: str, types: Mapping[str, ValueType]):
        self.join_keys = sorted(types)
        self.types = [types[name] for name in self.join_keys]
        head = [struct.pack("<I", len(self.join_keys))]
        for name in self.join_keys:
            encoded = name.encode("utf-8")
            head.append(struct.pack("<II", ValueType.STRING.value, len(encoded)) + encoded)
        self.head = b"".join(head)
        self.tail = project.encode("utf-8")

    def key(self, row: Mapping[str, object], row_index: int) -> bytes:
        parts = [self.head]
        for name, value_type in zip(self.join_keys, self.types):
            try:
                data = _value_bytes(row[name], value_type)
            except KeyError:
                raise EntityRowError(f"entity row {row_index} lacks join key {name!r}") from None
            except (TypeError, ValueError) as e:
                raise EntityRowError(
                    f"entity row {row_index}, join key {name!r} ({value_type.name}): {e}") from None
            parts.append(struct.pack("<II", value_type.value, len(data)) + data)
        parts.append(self.tail)
        return b"".join(parts)

    def keys(self, rows: Sequence[Mapping[str, object]]) -> list[bytes]:
        return [self.key(row, i) for i, row in enumerate(rows)]
