"""Entity and FeatureTable definitions from a YAML file, for `feast-lua apply` (needs PyYAML).

The shape mirrors Entity and FeatureTable:

    project: default              # optional; --project overrides it
    entities:
      - name: driver_id
        value_type: INT64         # INT64, INT32, STRING or BYTES
        description: a driver     # optional
    feature_tables:
      - name: driver_trips
        entities: [driver_id]
        max_age: 1d               # optional: 0 or absent = no limit; seconds, or 90s, 15m, 24h, 7d, 1h30m
        features:
          - name: rating
            value_type: FLOAT     # any ValueType name, e.g. INT64, STRING_LIST

JSON is YAML too, so a .json file of the same shape works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .errors import ConfigurationError, SchemaError
from .schema import Entity, Feature, FeatureTable

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
          "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True)
class Specs:
    project: str | None
    entities: list[Entity]
    tables: list[FeatureTable]

    @property
    def objects(self) -> list[Entity | FeatureTable]:
        return [*self.entities, *self.tables]


def parse_duration(value: object, where: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SchemaError(f"{where}: max_age must be seconds or a duration like 24h, got {value!r}")
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.replace(" ", "")
        if text in ("0", ""):
            return timedelta(0)
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum((float(n) * _UNITS[u] for n, u in parts), timedelta(0))
    raise SchemaError(f"{where}: max_age must be seconds or a duration like 24h or 1h30m, got {value!r}")


def _keys(doc: object, where: str, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(doc, dict):
        raise SchemaError(f"{where} must be a mapping, got {doc!r}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise SchemaError(f"{where} has unknown keys {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(doc))
    if missing:
        raise SchemaError(f"{where} lacks {missing}")
    return doc


def _list(doc: dict, key: str, where: str) -> list:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise SchemaError(f"{where}: {key} must be a list, got {value!r}")
    return value


def parse_specs(doc: object, where: str = "the spec") -> Specs:
    doc = _keys(doc, where, {"project", "entities", "feature_tables"}, set())
    entities = []
    for i, e in enumerate(_list(doc, "entities", where)):
        e = _keys(e, f"{where}: entities[{i}]", {"name", "value_type", "description"}, {"name", "value_type"})
        entities.append(Entity(e["name"], e["value_type"], e.get("description") or ""))
    tables = []
    for i, t in enumerate(_list(doc, "feature_tables", where)):
        at = f"{where}: feature_tables[{i}]"
        t = _keys(t, at, {"name", "entities", "features", "max_age"}, {"name", "entities", "features"})
        features = []
        for j, f in enumerate(_list(t, "features", at)):
            f = _keys(f, f"{at}.features[{j}]", {"name", "value_type"}, {"name", "value_type"})
            features.append(Feature(f["name"], f["value_type"]))
        tables.append(FeatureTable(t["name"], t["entities"], features,
                                   parse_duration(t.get("max_age"), at)))
    project = doc.get("project")
    if project is not None and not isinstance(project, str):
        raise SchemaError(f"{where}: project must be a name, got {project!r}")
    if not entities and not tables:
        raise SchemaError(f"{where} defines no entities and no feature tables")
    return Specs(project, entities, tables)


def load_specs(path: str | Path) -> Specs:
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigurationError("reading specs needs PyYAML: pip install 'feast-lua[files]'") from e
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SchemaError(f"{path} is not valid YAML: {e}") from e
    return parse_specs(doc, str(path))
