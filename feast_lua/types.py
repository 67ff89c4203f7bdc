"""Value types and field statuses, numbered as in Feast so numbers can cross the wire unchanged."""

from __future__ import annotations

import enum

from . import constants as c


class ValueType(enum.Enum):
    """Feast 0.x value types (feast.types.ValueType), with the same numbers."""

    UNKNOWN = 0
    BYTES = 1
    STRING = 2
    INT32 = 3
    INT64 = 4
    DOUBLE = 5
    FLOAT = 6
    BOOL = 7
    UNIX_TIMESTAMP = 8
    BYTES_LIST = 11
    STRING_LIST = 12
    INT32_LIST = 13
    INT64_LIST = 14
    DOUBLE_LIST = 15
    FLOAT_LIST = 16
    BOOL_LIST = 17
    UNIX_TIMESTAMP_LIST = 18

    @property
    def is_list(self) -> bool:
        return self.name.endswith("_LIST")

    @property
    def element(self) -> ValueType:
        """The scalar type of a list type's elements; a scalar type is its own element."""
        return ValueType[self.name[: -len("_LIST")]] if self.is_list else self


ENTITY_VALUE_TYPES = frozenset({ValueType.INT64, ValueType.INT32, ValueType.STRING, ValueType.BYTES})
FEATURE_VALUE_TYPES = frozenset(set(ValueType) - {ValueType.UNKNOWN})


class FieldStatus(enum.IntEnum):
    """Per-(row, feature) status, numbered as Feast's ServingService.proto."""

    INVALID = c.STATUS_INVALID
    UNKNOWN = c.STATUS_INVALID  # alias of INVALID, the name Feast 0.8's docs used
    PRESENT = c.STATUS_PRESENT
    NULL_VALUE = c.STATUS_NULL_VALUE
    NOT_FOUND = c.STATUS_NOT_FOUND
    OUTSIDE_MAX_AGE = c.STATUS_OUTSIDE_MAX_AGE
