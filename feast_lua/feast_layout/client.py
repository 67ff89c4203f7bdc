"""FeastLayoutClient: serves (and writes) the data Feast's RedisOnlineStore keeps in Redis.

For teams already on Feast: the same keys, fields and Value protos Feast writes, read with one
atomic script call per request instead of Feast's non-transactional pipeline of HMGETs, with the
statuses Feast's Python SDK gets wrong (NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE from the view's
ttl on Redis's clock). Writes go through a newest-wins script, so a Feast reader can be fed by
feast-lua. A separate class from Client: the two layouts share nothing but the response type
and the script loader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis as redis_py

from ..errors import ConfigurationError, ScriptError
from ..ingest import IngestResult
from ..loader import ScriptLoader
from ..request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL
from ..response import GetOnlineFeaturesResponse, ReplyPart, decode_reply
from ..write import WriteResult
from .definitions import FeastDefinitions
from .proto import decode_values
from .read_plan import Call, FeastRefPlan, plan_refs
from .write_plan import (
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    FeastWritePlan,
    plan_write,
)

REF_PLAN_CACHE_SIZE = 256


class FeastLayoutClient:
    """Reads and writes one Feast project's online store in Feast's own Redis layout.

    `definitions` come from FeastDefinitions(...) by hand or FeastDefinitions.from_repo(path).
    `redis` is a redis.Redis (decode_responses=False) or a redis:// URL.
    """

    def __init__(
        self,
        definitions: FeastDefinitions,
        redis: redis_py.Redis | str = "redis://localhost:6379",
        *,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
        max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
        max_rows_per_write: int = DEFAULT_MAX_ROWS_PER_WRITE,
        max_cells_per_write: int = DEFAULT_MAX_CELLS_PER_WRITE,
    ):
        if isinstance(redis, str):
            redis = redis_py.Redis.from_url(redis)
        if redis.get_connection_kwargs().get("decode_responses"):
            raise ConfigurationError("the redis client was made with decode_responses=True; feast-lua"
                                     " replies are binary, so pass one with decode_responses=False")
        self.definitions = definitions
        self.redis = redis
        self.loader = ScriptLoader(redis)
        self.max_cells_per_call = max_cells_per_call
        self.max_keys_per_call = max_keys_per_call
        self.max_rows_per_write = max_rows_per_write
        self.max_cells_per_write = max_cells_per_write
        self._ref_plans: dict[tuple[str, ...], FeastRefPlan] = {}

    def get_online_features(
        self, feature_refs: Sequence[str], entity_rows: Sequence[Mapping[str, object]]
    ) -> GetOnlineFeaturesResponse:
        """The latest values of `feature_refs` ("view:feature") for each entity row, with statuses,
        read atomically (one script call for a request within the per-call limits)."""
        plan = self._ref_plan(feature_refs)
        keys = plan.keys(entity_rows)
        calls = plan.calls(keys, self.max_cells_per_call, self.max_keys_per_call)
        parts = self._read(calls, len(plan.names), len(plan.encoders))
        parts = [part._replace(values=decode_values(part.values)) for part in parts]
        return GetOnlineFeaturesResponse.from_parts(
            plan.names, plan.ref_views, len(plan.views), entity_rows, parts)

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
        """Writes a Parquet file, a pyarrow Table or a pandas DataFrame to `view` in chunks, each
        planned whole before it is written; a chunk with a bad row is rejected whole and reported
        (on_error="skip" goes on, "stop" ends there). Needs pyarrow: pip install 'feast-lua[files]'."""
        from .ingest import ingest

        return ingest(self, view, source, timestamp_column, chunk_rows, key_ttl, on_error)

    def _write(self, plan: FeastWritePlan) -> WriteResult:
        calls = plan.calls(self.max_rows_per_write, self.max_cells_per_write)
        written = skipped = 0
        for reply in self._run("feast_write", calls):
            written += int(reply[0])
            skipped += int(reply[1])
        return WriteResult(written, skipped)

    def _ref_plan(self, feature_refs: Sequence[str]) -> FeastRefPlan:
        cache_key = tuple(feature_refs) if isinstance(feature_refs, (list, tuple)) else None
        plan = self._ref_plans.get(cache_key) if cache_key is not None else None
        if plan is None:
            plan = plan_refs(self.definitions, feature_refs)
            if cache_key is not None:
                if len(self._ref_plans) >= REF_PLAN_CACHE_SIZE:
                    self._ref_plans.clear()
                self._ref_plans[cache_key] = plan
        return plan

    def _read(self, calls: list[Call], refs: int, groups: int) -> list[ReplyPart]:
        """Decoded replies in entity row order; a call cut short by the script's reply byte
        budget is continued with the rest of its keys."""
        parts: list[list[ReplyPart]] = [[] for _ in calls]
        pending = list(enumerate(calls))
        while pending:
            replies = self._run("feast_read", [call for _, call in pending])
            unfinished = []
            for (index, (keys, args)), reply in zip(pending, replies):
                part = decode_reply(reply)
                parts[index].append(part)
                done = part.rows(refs) * groups
                if done == 0:
                    raise ScriptError("feast_read answered for no entity row of a call")
                if done < len(keys):
                    unfinished.append((index, (keys[done:], args)))
            pending = unfinished
        return [part for call_parts in parts for part in call_parts]

    def _run(self, script: str, calls: Sequence[Call]) -> list[Any]:
        """The one place this client talks to Redis: several calls of one script, one round trip."""
        return self.loader.call_many(script, calls)

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> FeastLayoutClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
