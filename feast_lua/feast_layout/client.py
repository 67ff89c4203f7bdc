"""FeastLayoutClient: serves (and writes) the data Feast's RedisOnlineStore keeps in Redis.

For teams already on Feast: the same keys, fields and Value protos Feast writes, read with one
atomic script call per request (per slot group on a cluster) instead of Feast's non-transactional
pipeline of HMGETs, with the statuses Feast's Python SDK gets wrong (NOT_FOUND, NULL_VALUE,
OUTSIDE_MAX_AGE from the view's ttl on Redis's clock). Writes go through a newest-wins script, so
a Feast reader can be fed by feast-lua.

The logic is `FeastLayoutCore`'s flows (feast_lua/ops.py), split by slot and reassembled by the
same code as the native layout's (feast_lua/topology.py); this class drives them over a blocking
transport, and feast_lua.asyncio.FeastLayoutClient over an asyncio one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis as redis_py

from .. import topology
from ..cluster import ClusterTransport
from ..connect import Options, check_binary, is_cluster, open_sync
from ..core import core_attribute, remember, set_limits
from ..ingest import IngestResult
from ..loader import ScriptLoader
from ..ops import Flow, run_script, run_sync
from ..request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL
from ..response import GetOnlineFeaturesResponse
from ..write import WriteResult
from .definitions import FeastDefinitions
from .proto import decode_values
from .read_plan import FeastRefPlan, plan_refs
from .write_plan import (
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    FeastWritePlan,
    plan_write,
)


class FeastLayoutCore:
    """Definitions, limits and the plan cache of a Feast-layout client, and its flows."""

    def __init__(self, definitions: FeastDefinitions, scripts: dict, slot_of: topology.SlotOf | None,
                 max_cells_per_call: int, max_keys_per_call: int, max_rows_per_write: int,
                 max_cells_per_write: int):
        set_limits(self, max_cells_per_call=max_cells_per_call, max_keys_per_call=max_keys_per_call,
                   max_rows_per_write=max_rows_per_write, max_cells_per_write=max_cells_per_write)
        self.definitions = definitions
        self.scripts = scripts
        self.slot_of = slot_of
        self._ref_plans: dict[tuple[str, ...], FeastRefPlan] = {}

    def get_online_features(self, feature_refs: Sequence[str],
                            entity_rows: Sequence[Mapping[str, object]]) -> Flow:
        plan = self.ref_plan(feature_refs)
        keys = plan.keys(entity_rows)
        parts = yield from topology.read(self.scripts, plan.shape, keys, len(entity_rows), self.slot_of,
                                         self.max_cells_per_call, self.max_keys_per_call)
        parts = [part._replace(values=decode_values(part.values)) for part in parts]
        return GetOnlineFeaturesResponse.from_parts(
            plan.names, plan.ref_views, len(plan.views), entity_rows, parts)

    def write(self, plan: FeastWritePlan) -> Flow:
        calls = plan.calls(self.max_rows_per_write, self.max_cells_per_write)
        calls = topology.split_writes(calls, self.slot_of, len(plan.head), plan.row_width)
        written = skipped = 0
        for reply in (yield from run_script(self.scripts, "feast_write", calls)):
            written += int(reply[0])
            skipped += int(reply[1])
        return WriteResult(written, skipped)

    def ref_plan(self, feature_refs: Sequence[str]) -> FeastRefPlan:
        cache_key = tuple(feature_refs) if isinstance(feature_refs, (list, tuple)) else None
        plan = self._ref_plans.get(cache_key) if cache_key is not None else None
        if plan is None:
            plan = plan_refs(self.definitions, feature_refs)
            if cache_key is not None:
                remember(self._ref_plans, cache_key, plan)
        return plan


class FeastLayoutClient:
    """Reads and writes one Feast project's online store in Feast's own Redis layout.

    `definitions` come from FeastDefinitions(...) by hand or FeastDefinitions.from_repo(path).
    `redis` is a redis:// URL or a ready client (decode_responses=False): `redis.Redis`
    (also from `Sentinel.master_for`) or `redis.cluster.RedisCluster`.
    """

    def __init__(
        self,
        definitions: FeastDefinitions,
        redis: redis_py.Redis | redis_py.cluster.RedisCluster | str = "redis://localhost:6379",
        *,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
        max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
        max_rows_per_write: int = DEFAULT_MAX_ROWS_PER_WRITE,
        max_cells_per_write: int = DEFAULT_MAX_CELLS_PER_WRITE,
    ):
        if isinstance(redis, str):
            redis = open_sync(Options(url=redis))
        check_binary(redis)
        self.redis = redis
        self.loader: ScriptLoader | ClusterTransport = (
            ClusterTransport(redis) if is_cluster(redis) else ScriptLoader(redis))
        self._core = FeastLayoutCore(definitions, self.loader.scripts, self.loader.slot_of,
                                     max_cells_per_call, max_keys_per_call, max_rows_per_write,
                                     max_cells_per_write)

    @property
    def definitions(self) -> FeastDefinitions:
        return self._core.definitions

    def get_online_features(
        self, feature_refs: Sequence[str], entity_rows: Sequence[Mapping[str, object]]
    ) -> GetOnlineFeaturesResponse:
        """The latest values of `feature_refs` ("view:feature") for each entity row, with statuses,
        read atomically (one script call for a request within the per-call limits)."""
        return run_sync(self._core.get_online_features(feature_refs, entity_rows), self.loader)

    def write_rows(
        self, view: str, rows: Sequence[Mapping[str, object]], key_ttl: timedelta | None = None
    ) -> WriteResult:
        """Writes rows of one view as Feast does, newest-wins inside Redis: a row whose
        event_timestamp is not later than the stored one is skipped. Each row holds the view's
        join keys, every feature (None for a null) and `event_timestamp`. `key_ttl` sets an
        EXPIRE on each written key (Feast's key_ttl_seconds). All rows are checked first: a bad
        row raises and nothing is written."""
        return self._write(plan_write(self.definitions, view, rows, key_ttl))

    def ingest(
        self,
        view: str,
        source: Any,
        timestamp_column: str = "event_timestamp",
        chunk_rows: int = 10_000,
        key_ttl: timedelta | None = None,
        on_error: str = "skip",
    ) -> IngestResult:
        """Writes a Parquet or CSV file, a pyarrow Table or a pandas DataFrame to `view` in chunks,
        through Client.ingest's reader: column types are checked against the view before anything
        is written, and a chunk with a bad row is rejected whole and reported (on_error="skip"
        goes on, "stop" ends there). Needs pyarrow: pip install 'feast-lua[files]'."""
        from .ingest import ingest

        return ingest(self, view, source, timestamp_column, chunk_rows, key_ttl, on_error)

    def _write(self, plan: FeastWritePlan) -> WriteResult:
        return run_sync(self._core.write(plan), self.loader)

    def close(self) -> None:
        self.loader.close()

    def __enter__(self) -> FeastLayoutClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


for _name in ("max_cells_per_call", "max_keys_per_call", "max_rows_per_write", "max_cells_per_write"):
    setattr(FeastLayoutClient, _name, core_attribute(_name))
