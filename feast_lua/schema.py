"""Feast 0.x style definitions: an entity is one join key; a feature table is keyed by entities.

Names are restricted to a safe alphabet. They travel to Redis only as KEYS/ARGV, never as script
text, but refs are "table:feature" strings and keys are documented byte by byte, so a name with a
colon, a newline or a quote would only invite ambiguity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from .constants import LUA_EXACT_INT
from .errors import SchemaError
from .types import ENTITY_VALUE_TYPES, FEATURE_VALUE_TYPES, ValueType

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,254}")
# Names that would clash with the timestamp columns of written rows or the keys of to_dict().
MAX_AGE_LIMIT = timedelta(microseconds=LUA_EXACT_INT)
RESERVED_NAMES = frozenset({"event_timestamp", "created_timestamp", "statuses", "event_timestamps"})


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SchemaError(
            f"{kind} name {name!r} is invalid: use 1-255 characters from A-Z a-z 0-9 _ -,"
            " starting with a letter or _"
        )
    return name


def check_value_type(kind: str, name: str, value_type: object, allowed: frozenset[ValueType]) -> ValueType:
    """The value type, also given by its name; SchemaError naming the item when it is not allowed."""
    if isinstance(value_type, str) and value_type in ValueType.__members__:
        value_type = ValueType[value_type]
    if not isinstance(value_type, ValueType) or value_type not in allowed:
        choices = ", ".join(sorted(t.name for t in allowed))
        raise SchemaError(f"{kind} {name!r} has value type {value_type!r}; expected one of {choices}")
    return value_type


def _check_named_value(obj: Entity | Feature, kind: str, allowed: frozenset[ValueType]) -> None:
    """Checks an entity's or feature's name and type; a type given by name becomes the enum."""
    check_name(kind, obj.name)
    if obj.name in RESERVED_NAMES:
        raise SchemaError(f"{kind} name {obj.name!r} is reserved")
    object.__setattr__(obj, "value_type", check_value_type(kind, obj.name, obj.value_type, allowed))


def valid_max_age(max_age: object) -> bool:
    """A max age the read script can hold exactly: 0 (no limit) up to 2^53 microseconds."""
    return isinstance(max_age, timedelta) and timedelta(0) <= max_age < MAX_AGE_LIMIT


@dataclass(frozen=True)
class Entity:
    """An entity; its name is also its join key in entity rows.

    `colocate=True` is a Redis Cluster placement policy: every key over this entity (its own
    tables and composite-keyed ones such as (customer_id, account_id)) carries a hash tag made
    from its value, so one customer's rows share a slot and are read in one atomic call. It
    changes the keys, so it cannot change while a table uses the entity. On one server it
    changes nothing but the key bytes.
    """

    name: str
    value_type: ValueType = ValueType.STRING
    description: str = ""
    colocate: bool = False

    def __post_init__(self) -> None:
        _check_named_value(self, "entity", ENTITY_VALUE_TYPES)
        if not isinstance(self.colocate, bool):
            raise SchemaError(f"entity {self.name!r}: colocate must be True or False, got {self.colocate!r}")

    @property
    def join_key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Feature:
    name: str
    value_type: ValueType

    def __post_init__(self) -> None:
        _check_named_value(self, "feature", FEATURE_VALUE_TYPES)


@dataclass(frozen=True)
class FeatureTable:
    """A table of features keyed by one or more entities; max_age of None or 0 means no limit."""

    name: str
    entities: list[str]
    features: list[Feature]
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        check_name("feature table", self.name)
        if isinstance(self.entities, str) or not isinstance(self.entities, Iterable):
            raise SchemaError(f"feature table {self.name!r}: entities must be a list of names")
        entities = [check_name("entity", e) for e in self.entities]
        if not entities:
            raise SchemaError(f"feature table {self.name!r} needs at least one entity")
        if len(set(entities)) != len(entities):
            raise SchemaError(f"feature table {self.name!r} lists an entity twice: {entities}")
        features = list(self.features)
        if not features:
            raise SchemaError(f"feature table {self.name!r} needs at least one feature")
        for f in features:
            if not isinstance(f, Feature):
                raise SchemaError(f"feature table {self.name!r}: {f!r} is not a Feature")
        names = [f.name for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"feature table {self.name!r} declares features twice: {dupes}")
        clash = sorted(set(names) & set(entities))
        if clash:
            raise SchemaError(f"feature table {self.name!r}: {clash} are both entities and features")
        max_age = self.max_age
        if max_age is None:
            max_age = timedelta(0)
        if not valid_max_age(max_age):
            raise SchemaError(
                f"feature table {self.name!r}: max_age must be a timedelta from 0 to 285 years,"
                f" got {max_age!r}"
            )
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "max_age", max_age)
