"""The versioned registry of a project's entities and tables, stored as one JSON document in Redis.

Every feature owns a *slot*: its position in the table's packed row. Slots are allocated
append-only and never reused, so a re-applied table keeps reading rows written under its earlier
schemas: a feature added later is NOT_FOUND in older rows, and a removed or retyped feature's old
slot is simply never read again (a retyped feature gets a new slot).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from . import constants as c
from .errors import SchemaError
from .keys import KeyEncoder
from .schema import Entity, Feature, FeatureTable
from .types import ValueType

US = timedelta(microseconds=1)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    value_type: ValueType
    slot: int


@dataclass(frozen=True)
class TableSpec:
    """A registered feature table, as the read and write paths need it."""

    name: str
    entities: tuple[str, ...]
    max_age_us: int
    features: dict[str, FeatureSpec]  # in declaration order
    slots: int  # slots allocated so far; a packed row is written with this many

    @property
    def key_group(self) -> tuple[str, ...]:
        """The sorted join keys: tables with the same group share one hash per entity."""
        return tuple(sorted(self.entities))

    def to_doc(self) -> dict[str, object]:
        return {
            "entities": list(self.entities),
            "max_age_us": self.max_age_us,
            "slots": self.slots,
            "features": [
                {"name": f.name, "value_type": f.value_type.name, "slot": f.slot}
                for f in self.features.values()
            ],
        }

    @classmethod
    def from_doc(cls, name: str, doc: dict) -> TableSpec:
        features = {
            f["name"]: FeatureSpec(f["name"], ValueType[f["value_type"]], int(f["slot"]))
            for f in doc["features"]
        }
        return cls(name, tuple(doc["entities"]), int(doc["max_age_us"]), features, int(doc["slots"]))


@dataclass(frozen=True)
class ProjectRegistry:
    project: str
    version: int
    entities: dict[str, Entity]
    tables: dict[str, TableSpec]

    def to_json(self) -> str:
        doc = {
            "format": c.REGISTRY_FORMAT,
            "project": self.project,
            "version": self.version,
            "entities": {
                name: {"value_type": e.value_type.name, "description": e.description,
                       **({"colocate": True} if e.colocate else {})}
                for name, e in self.entities.items()
            },
            "tables": {name: t.to_doc() for name, t in self.tables.items()},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ProjectRegistry:
        try:
            doc = json.loads(text)
            if doc.get("format") != c.REGISTRY_FORMAT:
                raise SchemaError(f"registry format {doc.get('format')!r} is not supported")
            entities = {
                name: Entity(name, ValueType[e["value_type"]], e.get("description", ""),
                             e.get("colocate", False) is True)
                for name, e in doc["entities"].items()
            }
            tables = {name: TableSpec.from_doc(name, t) for name, t in doc["tables"].items()}
            return cls(doc["project"], int(doc["version"]), entities, tables)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SchemaError(f"the registry document in Redis is malformed: {e!r}") from e


def empty(project: str) -> ProjectRegistry:
    return ProjectRegistry(project, 0, {}, {})


def merge(current: ProjectRegistry, objects: Iterable[Entity | FeatureTable]) -> ProjectRegistry:
    """The registry after applying `objects` on top of `current`, with the version bumped.

    Raises SchemaError, before anything is stored, for a change that would orphan stored data:
    a table whose entities change, or an entity in use whose value type changes.
    """
    objects = list(objects)
    entities = dict(current.entities)
    tables = dict(current.tables)
    new_tables: list[FeatureTable] = []
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        kind = type(obj).__name__
        if not isinstance(obj, (Entity, FeatureTable)):
            raise SchemaError(f"apply() takes Entity and FeatureTable objects, not {obj!r}")
        if (kind, obj.name) in seen:
            raise SchemaError(f"apply() got {kind} {obj.name!r} twice")
        seen.add((kind, obj.name))
        if isinstance(obj, Entity):
            old = entities.get(obj.name)
            if old and old.value_type != obj.value_type and _entity_in_use(tables, obj.name):
                raise SchemaError(
                    f"entity {obj.name!r} is {old.value_type.name} and used by a feature table;"
                    f" changing it to {obj.value_type.name} would orphan every stored key"
                )
            if old and old.colocate != obj.colocate and _entity_in_use(tables, obj.name):
                raise SchemaError(
                    f"entity {obj.name!r} is used by a feature table; changing colocate would move"
                    f" every stored key to another key name. Use a new entity name."
                )
            entities[obj.name] = obj
        else:
            new_tables.append(obj)
    for table in new_tables:
        missing = [e for e in table.entities if e not in entities]
        if missing:
            raise SchemaError(f"feature table {table.name!r} uses unknown entities {missing}")
        tables[table.name] = _merge_table(tables.get(table.name), table)
    return ProjectRegistry(current.project, current.version + 1, entities, tables)


def key_encoder(registry: ProjectRegistry, group: tuple[str, ...]) -> KeyEncoder:
    """The key encoder of one key group, with the project's co-location policy."""
    types = {name: registry.entities[name].value_type for name in group}
    colocate = next((name for name in sorted(group) if registry.entities[name].colocate), None)
    return KeyEncoder(registry.project, group, types, colocate)


def _entity_in_use(tables: dict[str, TableSpec], entity: str) -> bool:
    return any(entity in t.entities for t in tables.values())


def _merge_table(old: TableSpec | None, table: FeatureTable) -> TableSpec:
    if old is not None and sorted(old.entities) != sorted(table.entities):
        raise SchemaError(
            f"feature table {table.name!r} is keyed by {list(old.entities)}; re-applying it keyed"
            f" by {table.entities} would orphan its stored rows. Use a new table name."
        )
    next_slot = old.slots if old else 0
    features: dict[str, FeatureSpec] = {}
    for f in table.features:
        prior = old.features.get(f.name) if old else None
        if prior is not None and prior.value_type == f.value_type:
            features[f.name] = prior
        else:
            features[f.name] = FeatureSpec(f.name, f.value_type, next_slot)
            next_slot += 1
    if next_slot > c.MAX_SLOTS:
        raise SchemaError(f"feature table {table.name!r} would need more than {c.MAX_SLOTS} slots")
    max_age_us = table.max_age // US  # type: ignore[operator]
    return TableSpec(table.name, tuple(table.entities), max_age_us, features, next_slot)


def to_feature_table(spec: TableSpec) -> FeatureTable:
    """The user-facing definition of a registered table."""
    return FeatureTable(
        name=spec.name,
        entities=list(spec.entities),
        features=[Feature(f.name, f.value_type) for f in spec.features.values()],
        max_age=timedelta(microseconds=spec.max_age_us),
    )
