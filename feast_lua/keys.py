"""Entity keys: one Redis hash per (project, entity key), canonical and unambiguous.

    key    = "{}fl:" netstr(project) ( netstr(join_key) typed(value) )*   join keys sorted
    netstr = decimal byte length ":" bytes
    typed  = "i" netstr(decimal int) | "s" netstr(UTF-8 text) | "b" netstr(raw bytes)

Every part carries its length, so no value can impersonate a separator, and the type tag keeps
int 1 ("i1:1") apart from string "1" ("s1:1"). INT32 and INT64 share the "i" form: an entity has
one type, so the same join key never carries both. The leading "{}" is an empty hash tag, which
makes Redis Cluster hash the whole key, so a "{" in a value never chooses the slot. An entity
declared with colocate=True puts a tag there instead, "{" hex16(SHA-1(typed(value))) "}", so all
keys over that entity's value share one slot (docs/CLUSTER.md).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping, Sequence

from .constants import COLOCATION_TAG_CHARS, KEY_BODY_PREFIX, KEY_PREFIX
from .errors import EntityRowError
from .types import ValueType

INT_RANGES = {
    ValueType.INT64: (-(2**63), 2**63 - 1),
    ValueType.INT32: (-(2**31), 2**31 - 1),
}


def netstr(data: bytes) -> bytes:
    return b"%d:%b" % (len(data), data)


def typed(value: object, value_type: ValueType) -> bytes:
    """The typed encoding of one entity value; raises TypeError/ValueError on a mismatch."""
    if value_type in INT_RANGES:
        if isinstance(value, bool):
            raise TypeError("bool is not an integer entity value")
        number = operator.index(value)  # int and numpy integers, not floats
        low, high = INT_RANGES[value_type]
        if not low <= number <= high:
            raise ValueError(f"{number} is outside the {value_type.name} range")
        return b"i" + netstr(b"%d" % number)
    if value_type is ValueType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        return b"s" + netstr(value.encode("utf-8"))
    if value_type is ValueType.BYTES:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(value).__name__}")
        return b"b" + netstr(bytes(value))
    raise TypeError(f"{value_type.name} cannot be an entity type")


def typed_many(values: list[object], value_type: ValueType, prefix: bytes = b"") -> list[bytes]:
    """prefix + typed(value) for many values at once, in bulk C-level steps when they are all of
    the plain Python type; anything else goes value by value, so errors stay exact."""
    kinds = set(map(type, values))
    if value_type in INT_RANGES and kinds == {int}:
        low, high = INT_RANGES[value_type]
        if low <= min(values) and max(values) <= high:
            digits = [b"%d" % v for v in values]  # type: ignore[str-bytes-safe]
            return [b"%bi%d:%b" % (prefix, len(d), d) for d in digits]
    elif value_type is ValueType.STRING and kinds == {str}:
        encoded = [v.encode() for v in values]  # type: ignore[attr-defined]
        return [b"%bs%d:%b" % (prefix, len(b), b) for b in encoded]
    elif value_type is ValueType.BYTES and kinds == {bytes}:
        return [b"%bb%d:%b" % (prefix, len(v), v) for v in values]  # type: ignore[str-bytes-safe]
    return [prefix + typed(v, value_type) for v in values]


class KeyEncoder:
    """Builds the keys of one key group (a sorted set of join keys) in one project."""

    def __init__(self, project: str, join_keys: Sequence[str], types: Mapping[str, ValueType],
                 colocate: str | None = None):
        self.join_keys = tuple(sorted(join_keys))
        self.types = tuple(types[k] for k in self.join_keys)
        self.prefix = KEY_PREFIX + netstr(project.encode())
        self.names = tuple(netstr(k.encode()) for k in self.join_keys)
        # Co-located: the key's hash tag comes from this join key's value (docs/CLUSTER.md).
        self.colocate = None if colocate is None else self.join_keys.index(colocate)
        self.body = KEY_BODY_PREFIX + netstr(project.encode())

    def tagged(self, keys: list[bytes], values: list[object]) -> list[bytes]:
        """Untagged keys ("{}fl:...") with the empty tag replaced by the co-location tag."""
        value_type = self.types[self.colocate]
        cut = len(KEY_PREFIX)
        return [b"{%b}%b%b" % (colocation_tag(typed(v, value_type)), KEY_BODY_PREFIX, k[cut:])
                for k, v in zip(keys, values)]

    def keys(self, rows: Sequence[Mapping[str, object]]) -> list[bytes]:
        """The key of every row, built column by column; raises EntityRowError naming the row."""
        # A single join key (the common case) gets the whole key prefix in the same pass.
        single = len(self.join_keys) == 1
        try:
            columns = [
                typed_many([row[key] for row in rows], value_type,
                           self.prefix + name if single else name)
                for key, name, value_type in zip(self.join_keys, self.names, self.types)
            ]
        except (KeyError, TypeError, ValueError, UnicodeError):
            for i, row in enumerate(rows):
                self.key(row, i)  # raises the precise error
            raise
        keys = columns[0] if single else [self.prefix + b"".join(parts) for parts in zip(*columns)]
        if self.colocate is not None:
            keys = self.tagged(keys, [row[self.join_keys[self.colocate]] for row in rows])
        return keys

    def key(self, row: Mapping[str, object], row_index: int) -> bytes:
        parts = [self.prefix]
        for name, encoded_name, value_type in zip(self.join_keys, self.names, self.types):
            try:
                value = row[name]
            except KeyError:
                raise EntityRowError(f"entity row {row_index} lacks join key {name!r}") from None
            except TypeError:
                raise EntityRowError(
                    f"entity row {row_index} must be a mapping of join keys, got {type(row).__name__}"
                ) from None
            try:
                parts.append(encoded_name + typed(value, value_type))
            except (TypeError, ValueError) as e:
                raise EntityRowError(
                    f"entity row {row_index}: join key {name!r} must be {value_type.name},"
                    f" got {value!r}: {e}"
                ) from None
        key = b"".join(parts)
        if self.colocate is not None:
            key = self.tagged([key], [row[self.join_keys[self.colocate]]])[0]
        return key


def colocation_tag(typed_value: bytes) -> bytes:
    return hashlib.sha1(typed_value).hexdigest()[:COLOCATION_TAG_CHARS].encode()


def entity_key(project: str, values: Mapping[str, tuple[ValueType, object]]) -> bytes:
    """The key for one entity: join key -> (type, value). Handy for tests and other tools."""
    encoder = KeyEncoder(project, list(values), {k: t for k, (t, _) in values.items()})
    return encoder.key({k: v for k, (_, v) in values.items()}, 0)
