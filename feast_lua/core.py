"""Everything the clients do except I/O, as flows (feast_lua/ops.py).

`feast_lua.Client` drives these flows with blocking redis-py, `feast_lua.asyncio.Client` with
redis.asyncio; the request building, splitting, retries on NOSCRIPT and reply decoding are this
one copy. A read is one straight line: ref parsing (refs) -> key encoding (keys, request) ->
calls per slot (topology) -> EVALSHA (ops, transport) -> the read script -> reply decoding
(response).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from . import topology
from .errors import ConfigurationError, SchemaError, UnknownFeatureError, UnknownTableError
from .ops import Flow, run_script
from .refs import parse_refs
from .registry import ProjectRegistry, TableSpec, to_feature_table
from .registry_store import RegistryStore
from .request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL, RefPlan, plan_refs
from .response import GetOnlineFeaturesResponse
from .schema import MAX_AGE_LIMIT, Entity, FeatureTable, check_name
from .write import (
    DEFAULT_MAX_BYTES_PER_WRITE,
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    WritePlan,
    WriteResult,
    plan_write,
)

DEFAULT_PROJECT = "default"
REF_PLAN_CACHE_SIZE = 256
WRITE_HEAD_ARGS = 2  # the write script's ARGV before its one-per-row packed rows


class ClientCore:
    """The state a client keeps (project, limits, registry cache, plan cache) and its flows."""

    def __init__(
        self,
        scripts: dict,
        slot_of: topology.SlotOf | None,
        project: str = DEFAULT_PROJECT,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
        max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
        max_rows_per_write: int = DEFAULT_MAX_ROWS_PER_WRITE,
        max_cells_per_write: int = DEFAULT_MAX_CELLS_PER_WRITE,
        max_bytes_per_write: int = DEFAULT_MAX_BYTES_PER_WRITE,
        registry_ttl: float = 1.0,
    ):
        # The blocking budget: big requests become several calls, each atomic and short.
        set_limits(self, max_cells_per_call=max_cells_per_call, max_keys_per_call=max_keys_per_call,
                   max_rows_per_write=max_rows_per_write, max_cells_per_write=max_cells_per_write,
                   max_bytes_per_write=max_bytes_per_write)
        self.scripts = scripts
        self.slot_of = slot_of  # None on one server; a key -> hash slot function on a cluster
        self.project = check_name("project", project)
        self.registry = RegistryStore(scripts, registry_ttl)
        self._ref_plans: dict[tuple, RefPlan] = {}

    def get_online_features(
        self,
        feature_refs: Sequence[str],
        entity_rows: Sequence[Mapping[str, object]],
        project: str | None = None,
        max_age: Mapping[str, timedelta] | None = None,
    ) -> Flow:
        project = self.project_name(project)
        plan = (yield from self._ref_plan(project, feature_refs, max_age)).bind(entity_rows)
        parts = yield from topology.read(self.scripts, plan.ref_plan.shape, plan.keys,
                                         len(plan.entity_rows), self.slot_of, self.max_cells_per_call,
                                         self.max_keys_per_call)
        return GetOnlineFeaturesResponse(plan, parts)

    def _ref_plan(
        self, project: str, feature_refs: Sequence[str], max_age: Mapping[str, timedelta] | None
    ) -> Flow:
        """The refs' part of a request, cached per registry version: a serving loop asks for the
        same refs again and again."""
        registry = self.registry.cached(project) or (yield from self.registry.get(project))
        try:
            key = (project, registry.version, tuple(feature_refs),
                   None if max_age is None else tuple(sorted(max_age.items())))
            hash(key)
        except (TypeError, AttributeError):
            key = None  # unusable refs or max_age: plan without the cache, which names the problem
        cached = self._ref_plans.get(key) if key else None
        if cached is not None:
            return cached
        refs = parse_refs(feature_refs)
        try:
            plan = plan_refs(registry, refs, max_age)
        except (UnknownTableError, UnknownFeatureError):
            # Another client may have applied the table since this one cached the registry.
            return plan_refs((yield from self.registry.get(project, refresh=True)), refs, max_age)
        if key:
            remember(self._ref_plans, key, plan)
        return plan

    def apply(self, objects: Iterable[Entity | FeatureTable] | Entity | FeatureTable,
              project: str | None = None) -> Flow:
        if isinstance(objects, (Entity, FeatureTable)):
            objects = [objects]
        elif not isinstance(objects, Iterable):
            raise SchemaError(f"apply() takes Entity and FeatureTable objects, not {objects!r}")
        return (yield from self.registry.apply(self.project_name(project), objects))

    def write_rows(self, table: str, rows: Sequence[Mapping[str, object]] | Mapping[str, object],
                   project: str | None = None, ttl: timedelta | None = None) -> Flow:
        if isinstance(rows, Mapping):
            rows = [rows]
        project = self.project_name(project)
        spec = yield from self.table(project, table)
        plan = plan_write((yield from self.registry.get(project)), spec, rows)
        return (yield from self.write(plan, ttl_ms(ttl)))

    def write(self, plan: WritePlan, ttl: int) -> Flow:
        """Sends a checked write plan in calls within the write limits (and, on a cluster, one
        slot each), in one round trip per node."""
        calls = plan.calls(ttl, self.max_rows_per_write, self.max_cells_per_write,
                           self.max_bytes_per_write)
        calls = topology.split_writes(calls, self.slot_of, WRITE_HEAD_ARGS)
        replies = yield from run_script(self.scripts, "write", calls)
        return WriteResult(sum(r[0] for r in replies), sum(r[1] for r in replies))

    def table(self, project: str, name: str) -> Flow:
        check_name("feature table", name)  # a list or dict is not a name, and no table has it
        spec: TableSpec | None = (yield from self.registry.get(project)).tables.get(name)
        if spec is None:
            spec = (yield from self.registry.get(project, refresh=True)).tables.get(name)
        if spec is None:
            raise UnknownTableError(f"project {project!r} has no feature table {name!r}")
        return spec

    def get_feature_table(self, name: str, project: str | None = None) -> Flow:
        return to_feature_table((yield from self.table(self.project_name(project), name)))

    def list_feature_tables(self, project: str | None = None) -> Flow:
        registry = yield from self.registry.get(self.project_name(project), refresh=True)
        return [to_feature_table(t) for t in registry.tables.values()]

    def list_entities(self, project: str | None = None) -> Flow:
        registry: ProjectRegistry = yield from self.registry.get(self.project_name(project), refresh=True)
        return list(registry.entities.values())

    def project_name(self, project: str | None) -> str:
        return self.project if project is None else check_name("project", project)


def set_limits(core: Any, **limits: Any) -> None:
    """Sets a core's per-call limits, each a positive integer (ConfigurationError names it)."""
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        setattr(core, name, value)


def remember(cache: dict, key: Any, plan: Any) -> None:
    """Caches a ref plan; a full cache starts over, since a serving loop asks for few shapes."""
    if len(cache) >= REF_PLAN_CACHE_SIZE:
        cache.clear()
    cache[key] = plan


def core_attribute(name: str) -> property:
    """A client attribute that lives on its core, so callers and tests can still tune it."""
    return property(lambda self: getattr(self._core, name),
                    lambda self, value: setattr(self._core, name, value))


def ttl_ms(ttl: timedelta | None) -> int:
    if ttl is None:
        return 0
    if not isinstance(ttl, timedelta) or not timedelta(0) < ttl < MAX_AGE_LIMIT:
        raise ConfigurationError(f"ttl must be a positive timedelta under 285 years, got {ttl!r}")
    return max(1, ttl // timedelta(milliseconds=1))
