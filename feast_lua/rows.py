"""The packed row: one hash field per feature table, holding every feature of one entity.

    u8 format | i64 event_ts_us | i64 created_ts_us | u16 n | n status bytes | n end offsets
    | n msgpack values

All integers are big-endian. A slot's status byte is PRESENT or NULL_VALUE, so the read script
copies a run of statuses with one slice. Format 1 has u16 end offsets, format 2 u32; the writer
picks 1 when the values fit in 64 KiB. End offset i is where value i ends, counted from the first
value, so the script slices any run of features without touching the others. A null is the
msgpack nil byte, with status NULL_VALUE.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import msgpack

from . import constants as c

_HEADER = struct.Struct(">BqqH")


_NIL = bytes([c.MSGPACK_NIL])
_STATUS = {True: bytes([c.STATUS_NULL_VALUE]), False: bytes([c.STATUS_PRESENT])}


def pack_row(event_us: int, created_us: int, cells: Sequence[bytes]) -> bytes:
    ends = []
    end = 0
    for cell in cells:
        end += len(cell)
        ends.append(end)
    wide = end > 0xFFFF
    statuses = b"".join([_STATUS[cell == _NIL] for cell in cells])
    offsets = struct.pack(f">{len(ends)}{'I' if wide else 'H'}", *ends)
    fmt = c.ROW_FORMAT_U32 if wide else c.ROW_FORMAT_U16
    header = _HEADER.pack(fmt, event_us, created_us, len(cells))
    return header + statuses + offsets + b"".join(cells)


class Row(NamedTuple):
    event_us: int
    created_us: int
    statuses: bytes
    cells: list[bytes]

    def values(self) -> list[object]:
        return [msgpack.unpackb(cell, timestamp=3) for cell in self.cells]


def unpack_row(data: bytes) -> Row:
    """The inverse of pack_row, for tools and tests; the read path slices rows in Lua instead."""
    fmt, event_us, created_us, n = _HEADER.unpack_from(data)
    width = {c.ROW_FORMAT_U16: "H", c.ROW_FORMAT_U32: "I"}[fmt]
    statuses = data[c.ROW_HEADER_SIZE : c.ROW_HEADER_SIZE + n]
    ends = struct.unpack_from(f">{n}{width}", data, c.ROW_HEADER_SIZE + n)
    start = c.ROW_HEADER_SIZE + n + struct.calcsize(f">{n}{width}")
    cells, begin = [], 0
    for end in ends:
        cells.append(data[start + begin : start + end])
        begin = end
    return Row(event_us, created_us, statuses, cells)
