"""The synchronous client: Feast's online-serving API over the feast-lua scripts.

All of the logic is in feast_lua/core.py, shared with feast_lua.asyncio.Client; this class picks
the blocking transport for the topology (one server, a Sentinel-managed primary, or a cluster)
and drives the core's flows over it (feast_lua/ops.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis
from redis.cluster import RedisCluster

from .cluster import DEFAULT_FAILOVER_TIMEOUT, ClusterTransport
from .connect import (
    DEFAULT_RETRIES,
    Options,
    check_binary,
    client_options,
    cluster_without_replica,
    open_sync,
    sentinel_clients,
)
from .core import DEFAULT_PROJECT, ClientCore, core_attribute, ttl_ms
from .loader import ScriptLoader
from .ops import run_sync
from .registry import ProjectRegistry
from .registry_store import RegistryStore
from .request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL
from .response import GetOnlineFeaturesResponse
from .schema import Entity, FeatureTable
from .write import (
    DEFAULT_MAX_BYTES_PER_WRITE,
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    WritePlan,
    WriteResult,
)

__all__ = ["Client", "DEFAULT_PROJECT", "DEFAULT_RETRIES"]


class Client:
    """Feast-style online features from Redis, one atomic script call per request (or per slot
    group on a cluster).

    Pass a URL, host/port, or a ready redis-py client: `redis.Redis` (also from
    `Sentinel.master_for`) or `redis.cluster.RedisCluster`. A URL or host/port of a cluster node
    makes a cluster client (the server is asked once; `cluster=` skips the question). Replies are
    binary, so a client made with decode_responses=True is refused. With a URL or host/port,
    `retries` bounds how often a request is retried after a connection error or timeout (0:
    never), and the TLS options apply to rediss:// URLs or, for host/port, switch TLS on. A ready
    client keeps its own timeouts, retry policy and TLS settings.

    Replica reads: on one server pass `replica=` (a URL or client, e.g. `Sentinel.slave_for`);
    on a cluster, `replica_reads=True` (or a ready RedisCluster with a load_balancing_strategy)
    sends the read script to replicas as EVALSHA_RO. Replicas lag: a read may miss a write the
    primary acknowledged a moment ago.
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
        redis: redis.Redis | RedisCluster | None = None,
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
        cluster: bool | None = None,
        replica: str | redis.Redis | None = None,
        replica_reads: bool = False,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
    ):
        options = client_options(url, redis, host, port, db, username, password, socket_timeout,
                                 socket_connect_timeout, retries, ssl, ssl_ca_certs, ssl_certfile,
                                 ssl_keyfile, cluster, replica_reads)
        if redis is None:
            redis = open_sync(options)
        check_binary(redis)
        if cluster_without_replica(redis, replica):
            self.loader: ScriptLoader | ClusterTransport = ClusterTransport(
                redis, failover_timeout=failover_timeout)
        else:
            if isinstance(replica, str):
                replica = _replica_from_url(replica, options)
            if replica is not None:
                check_binary(replica)
            self.loader = ScriptLoader(redis, replica=replica)
        self.redis = redis
        self._core = ClientCore(
            self.loader.scripts, self.loader.slot_of, project, max_cells_per_call, max_keys_per_call,
            max_rows_per_write, max_cells_per_write, max_bytes_per_write, registry_ttl)
        self.registry = SyncRegistry(self._core.registry, self.loader)

    @classmethod
    def from_sentinel(
        cls,
        sentinels: Sequence[tuple[str, int]],
        service_name: str,
        *,
        replica_reads: bool = False,
        sentinel_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Client:
        """A client of the primary that Sentinel names for `service_name`, following failovers:
        redis-py asks the sentinels again when the primary stops answering, and the scripts are
        loaded on the new primary at its first NOSCRIPT. `replica_reads` sends reads to a replica.
        Connection options (password, username, socket_timeout, ...) go to the data nodes."""
        from redis.sentinel import Sentinel

        primary, replica = sentinel_clients(Sentinel, sentinels, service_name, replica_reads,
                                            sentinel_kwargs, kwargs)
        return cls(redis=primary, replica=replica, **kwargs)

    @property
    def project(self) -> str:
        return self._core.project

    @project.setter
    def project(self, project: str) -> None:
        self._core.project = self._core.project_name(project)

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
        return run_sync(self._core.get_online_features(feature_refs, entity_rows, project, max_age),
                        self.loader)

    def apply(
        self, objects: Iterable[Entity | FeatureTable] | Entity | FeatureTable,
        project: str | None = None,
    ) -> ProjectRegistry:
        """Registers entities and feature tables; re-applying a table updates it in place."""
        return run_sync(self._core.apply(objects, project), self.loader)

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
        max_cells_per_write and max_bytes_per_write (and one slot each on a cluster), each
        atomic; all rows are validated before the first call.
        """
        return run_sync(self._core.write_rows(table, rows, project, ttl), self.loader)

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
        return self.write_rows(table, rows, project=project, ttl=ttl)

    def _write(self, plan: WritePlan, ttl_ms: int) -> WriteResult:
        """Sends a checked write plan (for ingest, which plans its own chunks)."""
        return run_sync(self._core.write(plan, ttl_ms), self.loader)

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
        return run_sync(self._core.get_feature_table(name, project), self.loader)

    def list_feature_tables(self, project: str | None = None) -> list[FeatureTable]:
        return run_sync(self._core.list_feature_tables(project), self.loader)

    def list_entities(self, project: str | None = None) -> list[Entity]:
        return run_sync(self._core.list_entities(project), self.loader)

    def close(self) -> None:
        self.loader.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _project(self, project: str | None) -> str:
        return self._core.project_name(project)

    def _table(self, project: str, name: str):
        return run_sync(self._core.table(project, name), self.loader)


for _name in ("max_cells_per_call", "max_keys_per_call", "max_rows_per_write", "max_cells_per_write",
              "max_bytes_per_write"):
    setattr(Client, _name, core_attribute(_name))


class SyncRegistry:
    """The registry cache with blocking calls, for code that runs beside a sync client
    (ingest, the stream worker, the CLI)."""

    def __init__(self, store: RegistryStore, transport: Any):
        self.store = store
        self.transport = transport

    def get(self, project: str, refresh: bool = False) -> ProjectRegistry:
        return run_sync(self.store.get(project, refresh), self.transport)

    def load(self, project: str) -> ProjectRegistry | None:
        return run_sync(self.store.load(project), self.transport)

    def apply(self, project: str, objects: Iterable[Entity | FeatureTable]) -> ProjectRegistry:
        return run_sync(self.store.apply(project, objects), self.transport)


def _replica_from_url(url: str, options: Options) -> redis.Redis:
    return redis.Redis.from_url(url, **options.common())


def _ttl_ms(ttl: timedelta | None) -> int:
    return ttl_ms(ttl)
