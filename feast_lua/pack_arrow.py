"""Packed rows and keys built straight from Arrow columns, a whole column per step.

The row loop (`write.plan_write` over one dict per row) costs about 17 us per row of 10 features
in Python, more than Redis spends storing it. Here each column is checked and msgpack-encoded
with numpy and pyarrow kernels, and the rows are joined by `binary_join_element_wise`, so the
Python work per row is only slicing the result into bytes objects.

The bytes are the same as pack_row's, value for value: msgpack-python's smallest encodings
(ints by range, str8/16/32 and bin8/16/32 headers by length, float32 for FLOAT, float64 for
DOUBLE), nil for null and NaN. Tests compare both paths byte for byte.

Whatever this module cannot vouch for (a null join key or event timestamp, a value out of
range, a row whose values pass 64 KiB, an unusual Arrow type) raises `Unsupported`, and the
caller takes the row loop, which rejects the bad row with its number and the usual message.
Feature types without a vectorized encoder here (timestamps, lists) are encoded value by value
with the row loop's own encoder, inside this path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import constants as c
from .keys import INT_RANGES
from .registry import ProjectRegistry, TableSpec
from .registry import key_encoder as key_encoder_of
from .types import ValueType
from .values import FLOAT32_MAX, NIL, encoder
from .write import CREATED_TIMESTAMP, EVENT_TIMESTAMP, NO_CREATED_TIMESTAMP, WritePlan

MAX_U16_VALUES = 0xFFFF  # format 1 rows only; a wider row takes the row loop
_NIL_SCALAR = pa.scalar(NIL, pa.large_binary())


class Unsupported(Exception):
    """This chunk needs the row loop: it holds a bad or unusual value, named only by that loop."""


PythonValues = Callable[[pa.Array, ValueType], list]


def plan_arrow(registry: ProjectRegistry, table: TableSpec, arrays: Mapping[str, pa.Array],
               python_values: PythonValues) -> WritePlan:
    """The WritePlan plan_write would build for these columns (join keys, event_timestamp,
    optional created_timestamp, every feature; each a pa.Array of one length), or Unsupported.
    python_values(array, value_type) gives a column's Python values for the encoders that have
    no vectorized form here."""
    n = len(arrays[EVENT_TIMESTAMP])
    if n == 0:
        raise Unsupported("no rows")
    arrays = {name: _plain(array) for name, array in arrays.items()}
    keys = _keys(registry, table, arrays)
    event = _timestamps(arrays[EVENT_TIMESTAMP], required=True)
    created_array = arrays.get(CREATED_TIMESTAMP)
    created = (np.full(n, NO_CREATED_TIMESTAMP, np.int64) if created_array is None
               else _timestamps(created_array, required=False))
    cells: list[pa.Array | None] = [None] * table.slots
    for feature in table.features.values():
        cells[feature.slot] = _cells(arrays[feature.name], feature.value_type, python_values)
    if None in cells:  # slots no feature holds now: null, as pack_row writes them
        nil_cells = pa.array([NIL] * n, pa.large_binary())
        cells = [nil_cells if cell is None else cell for cell in cells]
    header = _header(event, created, cells)
    rows = pc.binary_join_element_wise(header, *cells, pa.scalar(b"", pa.large_binary()))
    return WritePlan(table, keys, _to_bytes(rows))


def _plain(array: Any) -> pa.Array:
    """One contiguous array, dictionaries decoded."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


# ------------------------------------------------------------------------------------------------
# Keys and timestamps
# ------------------------------------------------------------------------------------------------


def _keys(registry: ProjectRegistry, table: TableSpec, arrays: Mapping[str, pa.Array]) -> list[bytes]:
    key_encoder = key_encoder_of(registry, table.key_group)
    parts: list[Any] = [pa.scalar(key_encoder.prefix, pa.large_binary())]
    for name, encoded_name, value_type in zip(key_encoder.join_keys, key_encoder.names, key_encoder.types):
        array = arrays[name]
        if array.null_count:
            raise Unsupported(f"null join key {name}")
        if value_type in INT_RANGES:
            if not pa.types.is_integer(array.type):
                raise Unsupported(f"join key {name} is {array.type}")
            _check_range(array, *INT_RANGES[value_type])
            text = pc.cast(pc.cast(array, pa.int64()), pa.large_string())
            tag = b"i"
        elif value_type is ValueType.STRING:
            text = _utf8(array)
            tag = b"s"
        elif value_type is ValueType.BYTES:
            text = _binary(array)
            tag = b"b"
        else:
            raise Unsupported(f"join key type {value_type.name}")
        length = pc.cast(pc.binary_length(text), pa.large_string())
        parts += [pa.scalar(encoded_name + tag, pa.large_binary()), _as_binary(length),
                  pa.scalar(b":", pa.large_binary()), _as_binary(text)]
    keys = _to_bytes(pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary())))
    if key_encoder.colocate is not None:  # co-located entity: its value's tag replaces the "{}"
        keys = key_encoder.tagged(keys, arrays[key_encoder.join_keys[key_encoder.colocate]].to_pylist())
    return keys


def _timestamps(array: pa.Array, required: bool) -> np.ndarray:
    """Microseconds since the epoch, as timestamp_us computes them; nulls (allowed for the
    created timestamp only) become NO_CREATED_TIMESTAMP."""
    n = len(array)
    if pa.types.is_null(array.type):
        if required:
            raise Unsupported("no event timestamps")
        return np.full(n, NO_CREATED_TIMESTAMP, np.int64)
    if not pa.types.is_timestamp(array.type):
        raise Unsupported(f"timestamp column of type {array.type}")
    if required and array.null_count:
        raise Unsupported("null event timestamp")
    if array.type.unit != "us":  # the row loop's cast, so both truncate alike
        array = pc.cast(array, pa.timestamp("us", array.type.tz), safe=False)
    us = pc.cast(array, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    valid = _valid(array)
    bad = (us <= -c.LUA_EXACT_INT) | (us >= c.LUA_EXACT_INT)
    if (bad & valid).any():
        raise Unsupported("timestamp out of range")
    return np.where(valid, us, NO_CREATED_TIMESTAMP)


def _valid(array: pa.Array) -> np.ndarray:
    if not array.null_count:
        return np.ones(len(array), bool)
    return pc.is_valid(array).to_numpy(zero_copy_only=False)


def _check_range(array: pa.Array, low: int, high: int) -> None:
    if array.null_count == len(array):
        return
    bounds = pc.min_max(array)
    if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
        raise Unsupported("integer out of range")


# ------------------------------------------------------------------------------------------------
# Feature cells: one large_binary array per feature, a msgpack value per row, nil for null
# ------------------------------------------------------------------------------------------------


def _cells(array: pa.Array, value_type: ValueType, python_values: PythonValues) -> pa.Array:
    kind = array.type
    if pa.types.is_null(kind):
        return pa.array([NIL] * len(array), pa.large_binary())
    if value_type in INT_RANGES and pa.types.is_integer(kind):
        _check_range(array, *INT_RANGES[value_type])
        return _ints(array)
    if value_type in (ValueType.FLOAT, ValueType.DOUBLE) and (
            pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        return _floats(array, single=value_type is ValueType.FLOAT)
    if value_type is ValueType.BOOL and pa.types.is_boolean(kind):
        bits = array.fill_null(False).to_numpy(zero_copy_only=False)
        mat = np.where(bits, np.uint8(0xC3), np.uint8(0xC2)).astype(np.uint8).reshape(-1, 1)
        return _with_nulls(_from_matrix(mat, None), array)
    if value_type is ValueType.STRING:
        return _with_nulls(_prefixed(_utf8(array), (0xA0, 32), (0xD9, 0xDA, 0xDB)), array)
    if value_type is ValueType.BYTES:
        return _with_nulls(_prefixed(_binary(array), None, (0xC4, 0xC5, 0xC6)), array)
    return _encoded(array, value_type, python_values)


def _encoded(array: pa.Array, value_type: ValueType, python_values: PythonValues) -> pa.Array:
    """Value by value through the row loop's encoder; a bad value means the row loop."""
    encode = encoder(value_type)
    try:
        cells = [encode(v) for v in python_values(array, value_type)]
    except (TypeError, ValueError, OverflowError) as e:
        raise Unsupported(str(e)) from None
    return pa.array(cells, pa.large_binary())


def _ints(array: pa.Array) -> pa.Array:
    """msgpack-python's smallest int encoding: fixint, then uint8..64 for v >= 0 and int8..64
    below zero."""
    v = pc.cast(array.fill_null(0), pa.int64()).to_numpy(zero_copy_only=False)
    neg = v < 0
    size = np.where(
        neg,
        np.select([v >= -32, v >= -128, v >= -32768, v >= -(2**31)], [0, 1, 2, 4], 8),
        np.select([v < 128, v < 256, v < 65536, v < 2**32], [0, 1, 2, 4], 8),
    ).astype(np.int64)
    code = np.array([0, 0, 1, 0, 2, 0, 0, 0, 3], np.uint8)[size]  # size -> 0..3
    header = np.where(neg, np.uint8(0xD0) + code, np.uint8(0xCC) + code).astype(np.uint8)
    header = np.where(size == 0, (v & 0xFF).astype(np.uint8), header)
    mat = np.empty((len(v), 9), np.uint8)
    mat[:, 0] = header
    mat[:, 1:] = _right_aligned(v.astype(">i8").view(np.uint8).reshape(-1, 8), size)
    return _with_nulls(_from_matrix(mat, 1 + size), array)


def _floats(array: pa.Array, single: bool) -> pa.Array:
    """float32 (0xca) for FLOAT, float64 (0xcb) for DOUBLE, big-endian; NaN and null are nil."""
    v = pc.cast(array, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    null = np.isnan(v)
    if single:
        if (np.isfinite(v) & (np.abs(v) > FLOAT32_MAX)).any():
            raise Unsupported("FLOAT out of float32 range")
        body = v.astype(">f4").view(np.uint8).reshape(-1, 4)
        mark = 0xCA
    else:
        body = v.astype(">f8").view(np.uint8).reshape(-1, 8)
        mark = 0xCB
    mat = np.empty((len(v), 1 + body.shape[1]), np.uint8)
    mat[:, 0] = mark
    mat[:, 1:] = body
    if not null.any():
        return _from_matrix(mat, None)
    mat[null, 0] = c.MSGPACK_NIL
    lengths = np.where(null, 1, mat.shape[1]).astype(np.int64)
    return _from_matrix(mat, lengths)


def _prefixed(data: pa.Array, fix: tuple[int, int] | None, marks: tuple[int, int, int]) -> pa.Array:
    """msgpack str/bin values: a header by byte length (fixstr below fix[1], then the 8, 16 and
    32-bit forms), then the bytes as they are."""
    length = pc.binary_length(data).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    size = np.select([length < 256, length < 65536], [1, 2], 4).astype(np.int64)
    code = np.array([0, 0, 1, 0, 2], np.uint8)[size]
    mat = np.empty((len(length), 5), np.uint8)
    mat[:, 0] = np.uint8(marks[0]) + code
    mat[:, 1:] = _right_aligned(length.astype(">u4").view(np.uint8).reshape(-1, 4), size)
    lengths = 1 + size
    if fix is not None:
        small = length < fix[1]
        mat[small, 0] = (fix[0] | length[small]).astype(np.uint8)
        lengths = np.where(small, 1, lengths)
    header = _from_matrix(mat, lengths)
    return pc.binary_join_element_wise(header, _as_binary(data), pa.scalar(b"", pa.large_binary()))


def _right_aligned(big_endian: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each row's last size[i] bytes moved to its front (the rest is don't-care)."""
    width = big_endian.shape[1]
    index = np.minimum((width - size)[:, None] + np.arange(width), width - 1)
    return np.take_along_axis(big_endian, index, axis=1)


def _with_nulls(cells: pa.Array, source: pa.Array) -> pa.Array:
    if not source.null_count:
        return cells
    return pc.if_else(pc.is_valid(source), cells, _NIL_SCALAR)


def _utf8(array: pa.Array) -> pa.Array:
    kind = array.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or getattr(pa.types, "is_string_view", lambda _: False)(kind)):
        raise Unsupported(f"{kind} for a STRING")
    array = pc.cast(array, pa.large_string())
    try:
        array.validate(full=True)  # well-formed UTF-8, as str.encode would insist
    except pa.ArrowInvalid as e:
        raise Unsupported(str(e)) from None
    return array


def _binary(array: pa.Array) -> pa.Array:
    kind = array.type
    if pa.types.is_fixed_size_binary(kind):
        array = array.cast(pa.binary())
    elif not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
              or getattr(pa.types, "is_binary_view", lambda _: False)(kind)):
        raise Unsupported(f"{kind} for BYTES")
    return pc.cast(array, pa.large_binary())


def _as_binary(array: pa.Array) -> pa.Array:
    return array.view(pa.large_binary()) if pa.types.is_large_string(array.type) else array


# ------------------------------------------------------------------------------------------------
# Rows
# ------------------------------------------------------------------------------------------------


def _header(event: np.ndarray, created: np.ndarray, cells: list[pa.Array]) -> pa.Array:
    """Format 1 headers (docs/PROTOCOL.md, "Packed row"): format, timestamps, slot count, one
    status byte per slot (NULL_VALUE exactly where the value is nil) and the u16 end offsets."""
    n, slots = len(event), len(cells)
    lengths = np.empty((n, slots), np.int64)
    is_nil = np.empty((n, slots), bool)
    for slot, cell in enumerate(cells):
        offsets = _offsets(cell)
        lengths[:, slot] = np.diff(offsets)
        one = lengths[:, slot] == 1
        is_nil[:, slot] = False
        if one.any():  # a 1-byte value is null exactly when it is the nil byte
            data = np.frombuffer(cell.buffers()[2], np.uint8)
            is_nil[one, slot] = data[offsets[:-1][one]] == c.MSGPACK_NIL
    ends = np.cumsum(lengths, axis=1)
    if slots and ends[:, -1].max() > MAX_U16_VALUES:
        raise Unsupported("a row's values pass 64 KiB")
    layout = np.dtype([("format", "u1"), ("event", ">i8"), ("created", ">i8"), ("n", ">u2"),
                       ("status", "u1", (slots,)), ("ends", ">u2", (slots,))])
    header = np.empty(n, layout)
    header["format"] = c.ROW_FORMAT_U16
    header["event"] = event
    header["created"] = created
    header["n"] = slots
    header["status"] = np.where(is_nil, c.STATUS_NULL_VALUE, c.STATUS_PRESENT)
    header["ends"] = ends
    return _from_matrix(header.view(np.uint8).reshape(n, layout.itemsize), None)


def _offsets(array: pa.Array) -> np.ndarray:
    raw = np.frombuffer(array.buffers()[1], np.int64)
    return raw[array.offset: array.offset + len(array) + 1]


def _from_matrix(mat: np.ndarray, lengths: np.ndarray | None) -> pa.Array:
    """A large_binary array whose value i is mat[i, :lengths[i]] (the whole row without lengths)."""
    n, width = mat.shape
    if lengths is None:
        data = np.ascontiguousarray(mat).reshape(-1)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    else:
        data = mat[np.arange(width) < lengths[:, None]]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _to_bytes(array: pa.Array) -> list[bytes]:
    """One bytes object per value, made by Arrow's C++ conversion (4x faster than slicing one
    buffer in a Python loop)."""
    return array.to_numpy(zero_copy_only=False).tolist()
