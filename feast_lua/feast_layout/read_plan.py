"""Turns feature refs and entity rows into feast_read's KEYS and ARGV (docs/PROTOCOL.md,
"Feast layout"). Everything that can be rejected without Redis is rejected here.

The plan mirrors the native read's: views in order of first use by a ref, key groups (distinct
join key sets) in order of first use by a view, KEYS row-major per group, and the same ARGV for
every chunk of a split request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from ..constants import FEAST_MAX_FIELDS_PER_KEY, MAX_TABLES_PER_REQUEST
from ..errors import EntityRowError, InvalidFeatureRefError
from ..refs import parse_refs
from ..topology import ReadShape, budget
from .definitions import FeastDefinitions, FeastView
from .keys import FeastKeyEncoder
from .murmur import feature_field, timestamp_field

Call = tuple[list[bytes], list[object]]


@dataclass(frozen=True)
class FeastRefPlan:
    """The part of a request that depends on its refs alone, reusable across entity rows."""

    names: list[str]
    views: list[FeastView]
    ref_views: list[int]  # 0-based view index of each ref
    encoders: list[FeastKeyEncoder]  # one per key group
    join_keys: frozenset[str]
    args: list[object]

    @cached_property
    def shape(self) -> ReadShape:
        return ReadShape("feast_read", self.args, len(self.names), len(self.encoders), len(self.views))

    def keys(self, entity_rows: Sequence[Mapping[str, object]]) -> list[bytes]:
        """Row-major KEYS: per entity row, one key per key group."""
        rows = check_rows(entity_rows, self.join_keys)
        per_group = [encoder.keys(rows) for encoder in self.encoders]
        if len(per_group) == 1:
            return per_group[0]
        return [key for row_keys in zip(*per_group) for key in row_keys]

    def calls(self, keys: list[bytes], max_cells_per_call: int, max_keys_per_call: int) -> list[Call]:
        """The request on one server, split by whole entity rows within both limits."""
        rows = list(range(len(keys) // len(self.encoders)))
        return [(k, a) for _, k, a in budget(self.shape, rows, keys, max_cells_per_call, max_keys_per_call)]


def plan_refs(definitions: FeastDefinitions, feature_refs: Sequence[str]) -> FeastRefPlan:
    refs = parse_refs(feature_refs)
    views: list[FeastView] = []
    view_index: dict[str, int] = {}
    ref_views = []
    for ref in refs:
        view = definitions.view(ref.table)
        view.feature_type(ref.feature)  # raises for an unknown feature
        if view.name not in view_index:
            view_index[view.name] = len(views)
            views.append(view)
        ref_views.append(view_index[view.name])
    if len(views) > MAX_TABLES_PER_REQUEST:
        raise InvalidFeatureRefError(
            f"{len(views)} feature views in one request; at most {MAX_TABLES_PER_REQUEST}")
    groups: list[tuple[str, ...]] = []
    view_groups = []
    for view in views:
        group = tuple(sorted(view.join_keys))
        if group not in groups:
            groups.append(group)
        view_groups.append(groups.index(group) + 1)
    fields_per_group = [0] * len(groups)
    for v, g in enumerate(view_groups):
        fields_per_group[g - 1] += 1 + ref_views.count(v)
    for g, count in enumerate(fields_per_group):
        if count > FEAST_MAX_FIELDS_PER_KEY:
            raise InvalidFeatureRefError(
                f"join keys {list(groups[g])}: {count} fields per entity key in one request, more than"
                f" {FEAST_MAX_FIELDS_PER_KEY}; split the request")
    args: list[object] = [len(groups), len(views)]
    for view, g in zip(views, view_groups):
        args += [timestamp_field(view.name), g, view.ttl_us]
    args.append(len(refs))
    for ref, v in zip(refs, ref_views):
        args += [v + 1, feature_field(ref.table, ref.feature)]
    encoders = [FeastKeyEncoder(definitions.project, definitions.key_types(g)) for g in groups]
    join_keys = frozenset(k for g in groups for k in g)
    return FeastRefPlan([str(r) for r in refs], views, ref_views, encoders, join_keys, args)


def check_rows(entity_rows: object, join_keys: frozenset[str]) -> Sequence[Mapping[str, object]]:
    """A non-empty list of mappings, each with exactly the request's join keys."""
    if isinstance(entity_rows, (str, bytes, Mapping)) or not isinstance(entity_rows, Sequence):
        raise EntityRowError(f"entity_rows must be a list of dicts, got {type(entity_rows).__name__}")
    if not entity_rows:
        raise EntityRowError("entity_rows is empty; give at least one entity row")
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise EntityRowError(f"entity row {i} is a {type(row).__name__}, not a dict")
        if row.keys() != join_keys:
            missing = sorted(join_keys - row.keys())
            extra = sorted(set(row.keys()) - join_keys)
            raise EntityRowError(
                f"entity row {i}: " + "; ".join(
                    ([f"lacks join keys {missing}"] if missing else [])
                    + ([f"has keys no requested view uses: {extra}"] if extra else [])))
    return entity_rows
