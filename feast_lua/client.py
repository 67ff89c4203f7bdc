"""The synchronous client: Feast's online-serving API over the feast-lua scripts.

A read is one straight line: ref parsing (refs) -> key encoding (keys, request) -> EVALSHA
(loader) -> the read script (lua/read.lua) -> reply decoding (response).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from .errors import (
    ConfigurationError,
    SchemaError,
    ScriptError,
    UnknownFeatureError,
    UnknownTableError,
)
from .loader import ScriptLoader
from .refs import parse_refs
from .registry import ProjectRegistry, to_feature_table
from .registry_store import RegistryStore
from .request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL, RefPlan, plan_refs
from .response import GetOnlineFeaturesResponse, ReplyPart, decode_reply
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
# Connection errors and timeouts are retried, a few times with a short backoff: every command the
# client sends is safe to repeat (reads, newest-wins writes, compare-and-set registry puts, HGET,
# SCRIPT LOAD). Each attempt can wait one socket_timeout (docs/RELIABILITY.md).
DEFAULT_RETRIES = 3
RETRY_BACKOFF_BASE = 0.02  # seconds; the n-th retry waits between 0.5x and 1x of base * 2**n
RETRY_BACKOFF_CAP = 0.5
REF_PLAN_CACHE_SIZE = 256


class Client:
    """Feast-style online features from Redis, one atomic script call per request (or per chunk).

    Pass a URL, host/port, or a ready `redis.Redis`. Replies are binary, so a redis-py client
    made with decode_responses=True is refused. With a URL or host/port, `retries` bounds how
    often a request is retried after a connection error or timeout (0: never), and the TLS
    options apply to rediss:// URLs or, for host/port, switch TLS on. A ready `redis.Redis`
    keeps its own timeouts, retry policy and TLS settings.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        db: int = 0,
        password: str | None = None,
        username: str | None = None,
        redis: redis.Redis | None = None,
        project: str = DEFAULT_PROJECT,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
        max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
        max_rows_per_write: int = DEFAULT_MAX_ROWS_PER_WRITE,
        max_cells_per_write: int = DEFAULT_MAX_CELLS_PER_WRITE,
        max_bytes_per_write: int = DEFAULT_MAX_BYTES_PER_WRITE,
        registry_ttl: float = 1.0,
        socket_timeout: float | None = 5.0,
        socket_connect_timeout: float | None = 5.0,
        retries: int = DEFAULT_RETRIES,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ):
        if sum(x is not None for x in (url, redis, host or port)) > 1:
            raise ConfigurationError("pass one of url, host/port or redis, not several")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
        if redis is None:
            tls = {"ssl_ca_certs": ssl_ca_certs, "ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
            options = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout,
                       "retry": Retry(EqualJitterBackoff(cap=RETRY_BACKOFF_CAP, base=RETRY_BACKOFF_BASE),
                                      retries)}
            redis = _connect(url, host, port, db, username, password, ssl, tls, options)
        if redis.get_connection_kwargs().get("decode_responses"):
            raise ConfigurationError(
                "the redis client was made with decode_responses=True; feast-lua replies are"
                " binary msgpack, so pass a client with decode_responses=False"
            )
        limits = {"max_cells_per_call": max_cells_per_call, "max_keys_per_call": max_keys_per_call,
                  "max_rows_per_write": max_rows_per_write, "max_cells_per_write": max_cells_per_write,
                  "max_bytes_per_write": max_bytes_per_write}
        for name, value in limits.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        self.redis = redis
        self.project = check_name("project", project)
        # The blocking budget: big requests become several calls, each atomic and short.
        self.max_cells_per_call = max_cells_per_call
        self.max_keys_per_call = max_keys_per_call
        self.max_rows_per_write = max_rows_per_write
        self.max_cells_per_write = max_cells_per_write
        self.max_bytes_per_write = max_bytes_per_write
        self.loader = ScriptLoader(redis)
        self.registry = RegistryStore(redis, self.loader, registry_ttl)
        self._ref_plans: dict[tuple, RefPlan] = {}

    def get_online_features(
        self,
        feature_refs: Sequence[str],
        entity_rows: Sequence[Mapping[str, object]],
        project: str | None = None,
        max_age: Mapping[str, timedelta] | None = None,
    ) -> GetOnlineFeaturesResponse:
        """The latest values of `feature_refs` for each entity row, with statuses.

        `max_age` overrides tables' max ages for this call, e.g. {"driver_trips": timedelta(hours=1)};
        timedelta(0) lifts the limit.
        """
        project = self._project(project)
        plan = self._ref_plan(project, feature_refs, max_age).bind(entity_rows)
        calls = plan.calls(self.max_cells_per_call, self.max_keys_per_call)
        groups = len(plan.keys) // len(plan.entity_rows)
        return GetOnlineFeaturesResponse(plan, self._read(calls, len(plan.refs), groups))

    def _read(self, calls: list, refs: int, groups: int) -> list[ReplyPart]:
        """The read calls' decoded replies in entity row order. A call whose values passed the
        script's byte budget answers for its first rows only; the rest is asked for again."""
        parts: list[list[ReplyPart]] = [[] for _ in calls]
        pending = list(enumerate(calls))
        while pending:
            replies = self.loader.call_many("read", [call for _, call in pending])
            unfinished = []
            for (index, (keys, args)), reply in zip(pending, replies):
                part = decode_reply(reply)
                parts[index].append(part)
                done = part.rows(refs) * groups
                if done == 0:
                    raise ScriptError("the read script answered for no entity row of a call")
                if done < len(keys):
                    unfinished.append((index, (keys[done:], args)))
            pending = unfinished
        return [part for call_parts in parts for part in call_parts]

    def _ref_plan(
        self, project: str, feature_refs: Sequence[str], max_age: Mapping[str, timedelta] | None
    ) -> RefPlan:
        """The refs' part of a request, cached per registry version: a serving loop asks for the
        same refs again and again."""
        registry = self.registry.get(project)
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
            return plan_refs(self.registry.get(project, refresh=True), refs, max_age)
        if key:
            if len(self._ref_plans) >= REF_PLAN_CACHE_SIZE:
                self._ref_plans.clear()
            self._ref_plans[key] = plan
        return plan

    def apply(
        self, objects: Iterable[Entity | FeatureTable] | Entity | FeatureTable,
        project: str | None = None,
    ) -> ProjectRegistry:
        """Registers entities and feature tables; re-applying a table updates it in place."""
        if isinstance(objects, (Entity, FeatureTable)):
            objects = [objects]
        elif not isinstance(objects, Iterable):
            raise SchemaError(f"apply() takes Entity and FeatureTable objects, not {objects!r}")
        return self.registry.apply(self._project(project), objects)

    def write_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, object]],
        project: str | None = None,
        ttl: timedelta | None = None,
    ) -> WriteResult:
        """Writes rows newest-wins: a row not newer than the stored one is skipped, inside Redis.

        Each row holds the table's join keys, every feature (None for a null), `event_timestamp`
        (a datetime; naive means UTC) and optionally `created_timestamp`, which breaks ties.
        `ttl` sets an expiry on each written key. Rows go in calls within max_rows_per_write,
        max_cells_per_write and max_bytes_per_write, each atomic; all rows are validated before
        the first call.
        """
        project = self._project(project)
        spec = self._table(project, table)
        plan = plan_write(self.registry.get(project), spec, rows)
        return self._write(plan, _ttl_ms(ttl))

    def _write(self, plan: WritePlan, ttl_ms: int) -> WriteResult:
        """Sends a checked write plan in calls within the write limits, in one pipeline."""
        calls = plan.calls(
            ttl_ms, self.max_rows_per_write, self.max_cells_per_write, self.max_bytes_per_write
        )
        replies = self.loader.call_many("write", calls)
        return WriteResult(sum(r[0] for r in replies), sum(r[1] for r in replies))

    def push(
        self,
        table: str,
        rows: Mapping[str, object] | Sequence[Mapping[str, object]],
        project: str | None = None,
        ttl: timedelta | None = None,
    ) -> WriteResult:
        """Pushes one event (a dict) or a small batch (a list of dicts) from a service, newest-wins.

        The rows take the form `write_rows` takes and go the same way: validated in full first,
        then one atomic write call (more only past max_rows_per_write), so a late or replayed
        event never overwrites a newer one. For events that must survive the pusher, XADD them
        to a stream and run a StreamWorker (feast_lua/stream.py) instead.
        """
        if isinstance(rows, Mapping):
            rows = [rows]
        return self.write_rows(table, rows, project=project, ttl=ttl)

    def ingest(
        self,
        table: str,
        source: object,
        project: str | None = None,
        timestamp_column: str = "event_timestamp",
        created_timestamp_column: str | None = None,
        chunk_rows: int = 10_000,
        ttl: timedelta | None = None,
        progress: bool | None = None,
        on_error: str = "skip",
    ):
        """Writes a Parquet or CSV file, a pandas DataFrame or a pyarrow Table newest-wins, in
        chunks of `chunk_rows` rows; needs `feast-lua[files]`. Returns an IngestResult.

        The columns are checked against the table before anything is written (SchemaError). A
        chunk with a bad row is rejected whole, reported with the row numbers, and ingestion
        goes on (on_error="skip") or stops (on_error="stop"). `progress`: a tqdm bar on stderr;
        None shows it when stderr is a TTY. See feast_lua/ingest.py.
        """
        from .ingest import ingest

        return ingest(self, table, source, project, timestamp_column, created_timestamp_column,
                      chunk_rows, ttl, progress, on_error)

    def get_feature_table(self, name: str, project: str | None = None) -> FeatureTable:
        return to_feature_table(self._table(self._project(project), name))

    def list_feature_tables(self, project: str | None = None) -> list[FeatureTable]:
        registry = self.registry.get(self._project(project), refresh=True)
        return [to_feature_table(t) for t in registry.tables.values()]

    def list_entities(self, project: str | None = None) -> list[Entity]:
        return list(self.registry.get(self._project(project), refresh=True).entities.values())

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _project(self, project: str | None) -> str:
        return self.project if project is None else check_name("project", project)

    def _table(self, project: str, name: str):
        check_name("feature table", name)  # a list or dict is not a name, and no table has it
        spec = self.registry.get(project).tables.get(name)
        if spec is None:
            spec = self.registry.get(project, refresh=True).tables.get(name)
        if spec is None:
            raise UnknownTableError(f"project {project!r} has no feature table {name!r}")
        return spec


def _connect(url, host, port, db, username, password, ssl, tls, options) -> redis.Redis:
    tls = {k: v for k, v in tls.items() if v is not None}
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    if url is not None:
        if (tls or ssl) and not url.startswith("rediss://"):
            raise ConfigurationError("TLS needs a rediss:// URL (or host/port with ssl=True)")
        return redis.Redis.from_url(url, **options, **tls)  # credentials in the URL win
    return redis.Redis(host=host or "localhost", port=port or 6379, db=db, ssl=ssl or bool(tls),
                       **tls, **options)


def _ttl_ms(ttl: timedelta | None) -> int:
    if ttl is None:
        return 0
    if not isinstance(ttl, timedelta) or not timedelta(0) < ttl < MAX_AGE_LIMIT:
        raise ConfigurationError(f"ttl must be a positive timedelta under 285 years, got {ttl!r}")
    return max(1, ttl // timedelta(milliseconds=1))
