"""Turns parsed refs and entity rows into the read script's KEYS and ARGV (docs/PROTOCOL.md).

Everything that can be rejected without Redis is rejected here, before any round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from .constants import MAX_TABLES_PER_REQUEST
from .errors import (
    EntityRowError,
    InvalidFeatureRefError,
    RequestError,
    UnknownFeatureError,
    UnknownTableError,
)
from .keys import KeyEncoder
from .refs import FeatureRef
from .registry import US, ProjectRegistry, TableSpec, key_encoder
from .schema import valid_max_age
from .topology import ReadShape, budget

# The blocking budget. Inside Redis a read call costs about 2.8 us per key (one HGET or HMGET per
# entity row and key group); a cell (entity row x ref) costs next to nothing when refs come in
# runs of a table's slots, and up to about 0.5 us when each ref is its own run
# (docs/PERFORMANCE.md, "Blocking budget"). These defaults hold any call to about 20 ms at most.
DEFAULT_MAX_CELLS_PER_CALL = 20_000
DEFAULT_MAX_KEYS_PER_CALL = 4_000


@dataclass(frozen=True)
class RefPlan:
    """Everything about a request that depends on its refs alone, so it can be reused."""

    refs: list[FeatureRef]
    names: list[str]  # "table:feature" of each ref
    tables: list[TableSpec]  # in order of first use by a ref
    ref_tables: list[int]  # 0-based table index of each ref
    encoders: list[KeyEncoder]  # one per key group
    join_keys: frozenset[str]
    args: list[bytes | int]  # ARGV, identical for every chunk
    slots: list[int]  # each ref's slot in its table's packed row
    ages: list[int]  # each table's max age in us, overrides applied
    table_groups: list[int]  # each table's 0-based key group

    @cached_property
    def shape(self) -> ReadShape:
        return ReadShape("read", self.args, len(self.refs), len(self.encoders), len(self.tables))

    def bind(self, entity_rows: Sequence[Mapping[str, object]]) -> ReadPlan:
        rows = _check_rows(entity_rows, self.join_keys)
        per_group = [encoder.keys(rows) for encoder in self.encoders]
        if len(per_group) == 1:
            keys = per_group[0]
        else:
            keys = [key for row_keys in zip(*per_group) for key in row_keys]
        return ReadPlan(self, rows, keys)


@dataclass(frozen=True)
class ReadPlan:
    ref_plan: RefPlan
    entity_rows: Sequence[Mapping[str, object]]
    keys: list[bytes]  # row-major, one per key group per row

    @property
    def refs(self) -> list[FeatureRef]:
        return self.ref_plan.refs

    @property
    def tables(self) -> list[TableSpec]:
        return self.ref_plan.tables

    @property
    def ref_tables(self) -> list[int]:
        return self.ref_plan.ref_tables

    @property
    def args(self) -> list[bytes | int]:
        return self.ref_plan.args

    def calls(
        self,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
        max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
    ) -> list[tuple[list[bytes], list[bytes | int]]]:
        """The request on one server, split into script calls of whole entity rows within both
        limits (feast_lua/topology.py); a request within the limits is exactly one call."""
        rows = list(range(len(self.entity_rows)))
        return [(keys, args) for _, keys, args in
                budget(self.ref_plan.shape, rows, self.keys, max_cells_per_call, max_keys_per_call)]


def plan_refs(
    registry: ProjectRegistry,
    refs: list[FeatureRef],
    max_age: Mapping[str, timedelta] | None = None,
) -> RefPlan:
    tables: list[TableSpec] = []
    index: dict[str, int] = {}
    ref_tables, slots = [], []
    for ref in refs:
        spec = registry.tables.get(ref.table)
        if spec is None:
            raise UnknownTableError(
                f"feature ref '{ref}': project {registry.project!r} has no feature table {ref.table!r}"
            )
        feature = spec.features.get(ref.feature)
        if feature is None:
            raise UnknownFeatureError(
                f"feature ref '{ref}': table {ref.table!r} has no feature {ref.feature!r}"
            )
        if ref.table not in index:
            index[ref.table] = len(tables)
            tables.append(spec)
        ref_tables.append(index[ref.table])
        slots.append(feature.slot)

    if len(tables) > MAX_TABLES_PER_REQUEST:
        raise InvalidFeatureRefError(
            f"the refs span {len(tables)} tables; one request may span {MAX_TABLES_PER_REQUEST}"
        )
    ages = _max_ages(tables, max_age)
    group_index: dict[tuple[str, ...], int] = {}
    for spec in tables:
        group_index.setdefault(spec.key_group, len(group_index))
    encoders = [key_encoder(registry, group) for group in group_index]

    args: list[bytes | int] = [len(group_index), len(tables)]
    for spec, age in zip(tables, ages):
        args += [spec.name.encode(), group_index[spec.key_group] + 1, age]
    args.append(len(refs))
    for t, slot in zip(ref_tables, slots):
        args += [t + 1, slot]
    join_keys = frozenset(k for group in group_index for k in group)
    return RefPlan(refs, [str(r) for r in refs], tables, ref_tables, encoders, join_keys, args,
                   slots, ages, [group_index[t.key_group] for t in tables])


def plan_read(
    registry: ProjectRegistry,
    refs: list[FeatureRef],
    entity_rows: Sequence[Mapping[str, object]],
    max_age: Mapping[str, timedelta] | None = None,
) -> ReadPlan:
    return plan_refs(registry, refs, max_age).bind(entity_rows)


def _max_ages(tables: list[TableSpec], overrides: Mapping[str, timedelta] | None) -> list[int]:
    if overrides is not None and not isinstance(overrides, Mapping):
        raise RequestError(f"max_age must map table names to timedeltas, got {overrides!r}")
    overrides = dict(overrides or {})
    requested = {t.name for t in tables}
    for name, age in overrides.items():
        if name not in requested:
            raise UnknownTableError(f"max_age names table {name!r}, which no feature ref requests")
        if not valid_max_age(age):
            raise RequestError(
                f"max_age[{name!r}] must be a timedelta >= 0 and under 285 years, got {age!r}"
            )
    return [overrides[t.name] // US if t.name in overrides else t.max_age_us for t in tables]


def _check_rows(entity_rows: object, join_keys: frozenset[str]) -> Sequence[Mapping[str, object]]:
    if isinstance(entity_rows, (str, bytes, Mapping)) or not isinstance(entity_rows, Sequence):
        raise EntityRowError(f"entity_rows must be a list of dicts, got {type(entity_rows).__name__}")
    if not entity_rows:
        raise EntityRowError("entity_rows is empty; pass at least one entity row")
    # The common case, plain dicts with known keys, is checked in bulk; the loop finds the culprit.
    if set(map(type, entity_rows)) == {dict} and all(map(join_keys.issuperset, entity_rows)):
        return entity_rows
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise EntityRowError(f"entity row {i} must be a dict of join keys, got {row!r}")
        extra = [k for k in row if k not in join_keys]
        if extra:
            raise EntityRowError(
                f"entity row {i} has join keys {extra} that no requested table uses;"
                f" expected {sorted(join_keys)}"
            )
    return entity_rows
