"""Feast's Value proto, read and written with the protobuf package against our own definition.

feast-lua does not depend on feast. The message below is wire-compatible with
feast.types.Value (protos/feast/types/Value.proto) for the types feast-lua serves: the same
field numbers and wire types, in a `val` oneof, with packed repeated scalars as proto3 writes
them. It lives in its own descriptor pool and package, so it never clashes with feast's own
classes when both are imported in one process.

Decoding follows what Feast's `to_dict()` returns: whichever member of the oneof is set, lists
as Python lists, UNIX_TIMESTAMP (int64 seconds) as a UTC datetime, and an empty Value, a
`null_val`, or the timestamp Feast writes for NaT as None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from typing import Any

from ..errors import ConfigurationError
from ..types import ValueType
from ..values import checked_list, checker

# What Feast stores for a null UNIX_TIMESTAMP taken from pandas (NaT as int64): it reads as None.
# (constants.FEAST_NULL_TIMESTAMP_PROTO is its serialized Value, which feast_read calls a null.)
NULL_TIMESTAMP_INT = -(2**63)

# (field name, number, scalar type) of each member of the oneof; lists wrap the scalar in a
# message with `repeated <type> val = 1`. UNIX_TIMESTAMP is int64 seconds.
_SCALARS = {
    ValueType.BYTES: ("bytes_val", 1, "TYPE_BYTES"),
    ValueType.STRING: ("string_val", 2, "TYPE_STRING"),
    ValueType.INT32: ("int32_val", 3, "TYPE_INT32"),
    ValueType.INT64: ("int64_val", 4, "TYPE_INT64"),
    ValueType.DOUBLE: ("double_val", 5, "TYPE_DOUBLE"),
    ValueType.FLOAT: ("float_val", 6, "TYPE_FLOAT"),
    ValueType.BOOL: ("bool_val", 7, "TYPE_BOOL"),
    ValueType.UNIX_TIMESTAMP: ("unix_timestamp_val", 8, "TYPE_INT64"),
}
_LIST_MESSAGES = {
    ValueType.BYTES_LIST: ("bytes_list_val", 11, "BytesList"),
    ValueType.STRING_LIST: ("string_list_val", 12, "StringList"),
    ValueType.INT32_LIST: ("int32_list_val", 13, "Int32List"),
    ValueType.INT64_LIST: ("int64_list_val", 14, "Int64List"),
    ValueType.DOUBLE_LIST: ("double_list_val", 15, "DoubleList"),
    ValueType.FLOAT_LIST: ("float_list_val", 16, "FloatList"),
    ValueType.BOOL_LIST: ("bool_list_val", 17, "BoolList"),
    ValueType.UNIX_TIMESTAMP_LIST: ("unix_timestamp_list_val", 18, "Int64List"),
}
_PACKAGE = "feast_lua.wire"


@cache
def value_class() -> type:
    """The Value message class, built once from a descriptor written here."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "Feast's layout needs the protobuf package: pip install 'feast-lua[feast]'") from e
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="feast_lua_wire_value.proto", package=_PACKAGE,
                                              syntax="proto3")
    for value_type, (_, _, message) in _LIST_MESSAGES.items():
        if any(m.name == message for m in file.message_type):
            continue
        scalar = _SCALARS[value_type.element][2]
        file.message_type.add(name=message).field.add(
            name="val", number=1, label=F.LABEL_REPEATED, type=getattr(F, scalar))
    null = file.enum_type.add(name="Null")
    null.value.add(name="NULL", number=0)
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="val")
    for name, number, scalar in _SCALARS.values():
        value.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=getattr(F, scalar),
                        oneof_index=0)
    for name, number, message in _LIST_MESSAGES.values():
        value.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                        type_name=f".{_PACKAGE}.{message}", oneof_index=0)
    value.field.add(name="null_val", number=19, label=F.LABEL_OPTIONAL, type=F.TYPE_ENUM,
                    type_name=f".{_PACKAGE}.Null", oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.Value")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)  # protobuf < 4.22


def _timestamp(seconds: int) -> datetime | None:
    if seconds == NULL_TIMESTAMP_INT:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def decode_value(data: bytes) -> Any:
    """The Python value of serialized Value bytes, as Feast's to_dict() gives it."""
    message = value_class()()
    message.ParseFromString(data)
    kind = message.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    member = getattr(message, kind)
    if kind == "unix_timestamp_val":
        return _timestamp(member)
    if kind.endswith("_list_val"):
        items = list(member.val)
        if kind == "unix_timestamp_list_val":
            return [_timestamp(s) for s in items]
        return items
    return member


def decode_values(cells: list[Any]) -> list[Any]:
    """Decodes each bytes cell of a read reply; None (not PRESENT) stays None."""
    message = value_class()()
    parse, which = message.ParseFromString, message.WhichOneof
    out = []
    append = out.append
    for data in cells:
        if data is None:
            append(None)
            continue
        message.Clear()
        parse(data)
        kind = which("val")
        if kind is None or kind == "null_val":
            append(None)
        elif kind.endswith("_list_val") or kind == "unix_timestamp_val":
            append(decode_value(data))
        else:
            append(getattr(message, kind))
    return out


def _unix_seconds(value: datetime) -> int:
    # Feast stores int(datetime.timestamp()), a naive datetime taken as UTC.
    aware = value if value.utcoffset() is not None else value.replace(tzinfo=timezone.utc)
    return int(aware.timestamp())


def value_encoder(value_type: ValueType) -> Callable[[object], bytes]:
    """A function serializing one value of `value_type` as a Value; None and NaN give b"" (null).
    Raises TypeError/ValueError when the value does not fit the type."""
    cls = value_class()
    check = checker(value_type.element)
    scalar_time = value_type.element is ValueType.UNIX_TIMESTAMP

    def convert(value: object) -> object:
        checked = check(value)
        if checked is not None and scalar_time:
            return _unix_seconds(checked)  # type: ignore[arg-type]
        return checked

    if not value_type.is_list:
        name = _SCALARS[value_type][0]

        def encode(value: object) -> bytes:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return b""
            checked = convert(value)
            if checked is None:
                return b""
            return cls(**{name: checked}).SerializeToString()

        return encode

    name = _LIST_MESSAGES[value_type][0]

    def encode_list(value: object) -> bytes:
        if value is None:
            return b""
        items = checked_list(value, convert)
        message = cls()
        member = getattr(message, name)
        member.SetInParent()  # an empty list is still a list, not a null
        member.val.extend(items)
        return message.SerializeToString()

    return encode_list
