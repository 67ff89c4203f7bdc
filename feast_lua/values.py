"""Feature values and timestamps: checked against their declared type, then packed as msgpack.

FLOAT is packed as msgpack float32 and DOUBLE as float64, as Feast stores them, so a FLOAT comes
back rounded to float32. NaN is stored as null, since pandas and Arrow use it for "missing".
UNIX_TIMESTAMP values are msgpack Timestamp extensions, which every msgpack library decodes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import msgpack

from .constants import LUA_EXACT_INT
from .keys import INT_RANGES
from .types import ValueType

NIL = msgpack.packb(None)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
FLOAT32_MAX = 3.4028234663852886e38

_PACK64 = msgpack.Packer(use_bin_type=True, datetime=True)
_PACK32 = msgpack.Packer(use_bin_type=True, datetime=True, use_single_float=True)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value




def timestamp_us(value: object) -> int:
    """Microseconds since the epoch of a datetime; a naive datetime is taken as UTC."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
    us = (as_utc(value) - EPOCH) // US
    if not -LUA_EXACT_INT < us < LUA_EXACT_INT:
        raise ValueError(f"{value} is outside the supported range, years 1685 to 2255")
    return us


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# Each checker returns the value in the form msgpack should pack, or None for a null.
def _int(value_type: ValueType) -> Callable[[object], object]:
    low, high = INT_RANGES[value_type]

    def check(value: object) -> int:
        if isinstance(value, (bool, float)):
            raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
        number = operator.index(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside the {value_type.name} range")
        return number

    return check


def _floating(single: bool) -> Callable[[object], object]:
    def check(value: object) -> float | None:
        # int and float, and numpy scalars through __float__; never bool or text.
        if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
            raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
        number = float(value)  # type: ignore[arg-type]
        if math.isnan(number):
            return None
        if single and math.isfinite(number) and abs(number) > FLOAT32_MAX:
            raise ValueError(f"{number} is outside the FLOAT (float32) range")
        return number

    return check


def _of(kind: type | tuple[type, ...], convert: Callable[[object], object] = lambda v: v):
    def check(value: object) -> object:
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            raise TypeError(f"expected {_name(kind)}, got {type(value).__name__} {value!r}")
        return convert(value)

    return check


def _name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)


def _utf8(value: object) -> str:
    value.encode("utf-8")  # type: ignore[attr-defined]  # lone surrogates fail here, not later
    return value  # type: ignore[return-value]


_SCALAR: dict[ValueType, Callable[[object], object]] = {
    ValueType.INT64: _int(ValueType.INT64),
    ValueType.INT32: _int(ValueType.INT32),
    ValueType.FLOAT: _floating(single=True),
    ValueType.DOUBLE: _floating(single=False),
    ValueType.STRING: _of(str, _utf8),
    ValueType.BYTES: _of((bytes, bytearray, memoryview), bytes),
    ValueType.BOOL: _of(bool),
    ValueType.UNIX_TIMESTAMP: _of(datetime, as_utc),
}


def checker(value_type: ValueType) -> Callable[[object], object]:
    """The check of one scalar value of `value_type`: returns the value to store (None for NaN)
    or raises TypeError/ValueError. Shared with Feast's layout (feast_layout/proto.py)."""
    return _SCALAR[value_type]


def encoder(value_type: ValueType) -> Callable[[object], bytes]:
    """A function packing one value of `value_type`; raises TypeError/ValueError on a mismatch."""
    packer = _PACK32 if value_type.element is ValueType.FLOAT else _PACK64
    check = _SCALAR[value_type.element]

    if not value_type.is_list:

        def encode(value: object) -> bytes:
            if value is None:
                return NIL
            checked = check(value)
            return NIL if checked is None else packer.pack(checked)

        return encode

    def encode_list(value: object) -> bytes:
        return NIL if value is None else packer.pack(checked_list(value, check))

    return encode_list


def checked_list(value: object, check) -> list:
    """A list feature's elements, each checked; lists of a null element are refused, since
    neither layout can store one. numpy and pyarrow arrays are taken as lists."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
    items = []
    for i, item in enumerate(value):
        checked = None if item is None else check(item)
        if checked is None:
            raise ValueError(f"element {i} is null; list elements cannot be null")
        items.append(checked)
    return items
