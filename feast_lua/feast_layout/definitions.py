"""Entities and feature views as Feast defines them, declared by hand or read from a Feast repo.

Only what the layout needs: each entity's join key and value type (for the key bytes), each
view's join keys, features with their types (to encode written values) and ttl (for
OUTSIDE_MAX_AGE). Names are Feast's, so they are checked only for what Feast itself requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..errors import SchemaError, UnknownFeatureError, UnknownTableError
from ..schema import check_value_type
from ..types import ENTITY_VALUE_TYPES, FEATURE_VALUE_TYPES, ValueType


@dataclass(frozen=True)
class FeastEntity:
    """A Feast entity: its join key and the join key's value type."""

    join_key: str
    value_type: ValueType

    def __post_init__(self) -> None:
        if not isinstance(self.join_key, str) or not self.join_key:
            raise SchemaError(f"entity join key must be a non-empty string, got {self.join_key!r}")
        object.__setattr__(self, "value_type", check_value_type(
            "entity", self.join_key, self.value_type, ENTITY_VALUE_TYPES))


@dataclass(frozen=True)
class FeastView:
    """A Feast feature view: its join keys, its features and their types, and its ttl
    (timedelta(0) or None: no limit, as in Feast)."""

    name: str
    join_keys: tuple[str, ...]
    features: Mapping[str, ValueType]
    ttl: timedelta | None = None
    ttl_us: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise SchemaError(f"view name must be a non-empty string without ':', got {self.name!r}")
        if isinstance(self.join_keys, str) or not self.join_keys:
            raise SchemaError(f"view {self.name!r}: join_keys must be a non-empty list of names")
        object.__setattr__(self, "join_keys", tuple(self.join_keys))
        if not self.features:
            raise SchemaError(f"view {self.name!r} has no features")
        features = {}
        for name, value_type in dict(self.features).items():
            if not isinstance(name, str) or not name:
                raise SchemaError(f"view {self.name!r}: feature name {name!r} is not a non-empty string")
            features[name] = check_value_type(f"view {self.name!r}: feature", name, value_type,
                                              FEATURE_VALUE_TYPES)
        object.__setattr__(self, "features", features)
        ttl = self.ttl or timedelta(0)
        if not isinstance(ttl, timedelta) or ttl < timedelta(0):
            raise SchemaError(f"view {self.name!r}: ttl must be a timedelta >= 0, got {self.ttl!r}")
        object.__setattr__(self, "ttl_us", ttl // timedelta(microseconds=1))

    def feature_type(self, feature: str) -> ValueType:
        try:
            return self.features[feature]
        except KeyError:
            raise UnknownFeatureError(f"feature view {self.name!r} has no feature {feature!r}") from None


class FeastDefinitions:
    """One Feast project's entities and feature views."""

    def __init__(self, project: str, entities: Iterable[FeastEntity], views: Iterable[FeastView]):
        if not isinstance(project, str) or not project:
            raise SchemaError(f"project must be a non-empty string, got {project!r}")
        self.project = project
        self.entities = {e.join_key: e for e in entities}
        self.views = {v.name: v for v in views}
        for view in self.views.values():
            for key in view.join_keys:
                if key not in self.entities:
                    raise SchemaError(f"view {view.name!r} uses join key {key!r}, which no entity declares")

    def view(self, name: str) -> FeastView:
        try:
            return self.views[name]
        except KeyError:
            raise UnknownTableError(f"project {self.project!r} has no feature view {name!r}") from None

    def key_types(self, join_keys: Iterable[str]) -> dict[str, ValueType]:
        return {k: self.entities[k].value_type for k in join_keys}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; from_dict() reads it back. The same shape as
        feast_layout.repo.describe_repo() produces from a Feast repo."""
        return {
            "project": self.project,
            "entities": [{"join_key": e.join_key, "value_type": e.value_type.name}
                         for e in self.entities.values()],
            "views": [{"name": v.name, "join_keys": list(v.join_keys),
                       "features": {n: t.name for n, t in v.features.items()},
                       "ttl_seconds": v.ttl_us / 1e6} for v in self.views.values()],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeastDefinitions:
        try:
            return cls(
                doc["project"],
                [FeastEntity(e["join_key"], e["value_type"]) for e in doc["entities"]],
                [FeastView(v["name"], v["join_keys"], v["features"],
                           timedelta(seconds=v.get("ttl_seconds") or 0)) for v in doc["views"]],
            )
        except (KeyError, TypeError) as e:
            raise SchemaError(f"not a Feast definitions document: {e!r}") from e

    @classmethod
    def from_repo(cls, repo_path: str, project: str | None = None) -> FeastDefinitions:
        """Reads a Feast repo (feature_store.yaml and its registry) with the feast package, which
        must be installed: pip install 'feast-lua[feast-repo]'."""
        from .repo import describe_repo

        return cls.from_dict(describe_repo(repo_path, project))
