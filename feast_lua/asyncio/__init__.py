"""`feast_lua.asyncio.Client`: the sync client's API over redis.asyncio, standalone or cluster.

It runs the very flows the sync client runs (feast_lua/core.py); only the transports
(transport.py), which do the I/O, are its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..cluster import DEFAULT_FAILOVER_TIMEOUT
from ..connect import (
    DEFAULT_RETRIES,
    check_binary,
    client_options,
    cluster_without_replica,
    is_cluster,
    open_async,
    sentinel_clients,
)
from ..core import DEFAULT_PROJECT, ClientCore
from ..feast_layout.client import FeastLayoutCore
from ..feast_layout.write_plan import DEFAULT_MAX_CELLS_PER_WRITE as FEAST_MAX_CELLS_PER_WRITE
from ..feast_layout.write_plan import DEFAULT_MAX_ROWS_PER_WRITE as FEAST_MAX_ROWS_PER_WRITE
from ..feast_layout.write_plan import plan_write as feast_plan_write
from ..registry import ProjectRegistry
from ..request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL
from ..response import GetOnlineFeaturesResponse
from ..schema import Entity, FeatureTable
from ..write import (
    DEFAULT_MAX_BYTES_PER_WRITE,
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    WriteResult,
)
from .transport import AsyncClusterTransport, AsyncRedis, AsyncRedisCluster, AsyncScriptLoader, run_async


class Client:
    """feast_lua.Client over redis.asyncio: the same arguments, results and errors, awaited.

    Pass a URL or host/port (with cluster=True for a cluster: the server is not asked), or a
    ready `redis.asyncio.Redis` / `redis.asyncio.cluster.RedisCluster`.
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
        redis: AsyncRedis | AsyncRedisCluster | None = None,
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
        replica: str | AsyncRedis | None = None,
        replica_reads: bool = False,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
    ):
        options = client_options(url, redis, host, port, db, username, password, socket_timeout,
                                 socket_connect_timeout, retries, ssl, ssl_ca_certs, ssl_certfile,
                                 ssl_keyfile, cluster, replica_reads)
        if redis is None:
            redis = open_async(options)
        check_binary(redis)
        if cluster_without_replica(redis, replica):
            self.loader: AsyncScriptLoader | AsyncClusterTransport = AsyncClusterTransport(
                redis, failover_timeout=failover_timeout)
        else:
            if isinstance(replica, str):
                replica = AsyncRedis.from_url(replica, **options.common(asyncio=True))
            if replica is not None:
                check_binary(replica)
            self.loader = AsyncScriptLoader(redis, replica=replica)
        self.redis = redis
        self._core = ClientCore(
            self.loader.scripts, self.loader.slot_of, project, max_cells_per_call, max_keys_per_call,
            max_rows_per_write, max_cells_per_write, max_bytes_per_write, registry_ttl)

    @classmethod
    def from_sentinel(cls, sentinels: Sequence[tuple[str, int]], service_name: str, *,
                      replica_reads: bool = False, sentinel_kwargs: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> Client:
        """See feast_lua.Client.from_sentinel."""
        from redis.asyncio.sentinel import Sentinel

        primary, replica = sentinel_clients(Sentinel, sentinels, service_name, replica_reads,
                                            sentinel_kwargs, kwargs)
        return cls(redis=primary, replica=replica, **kwargs)

    @property
    def project(self) -> str:
        return self._core.project

    async def get_online_features(
        self,
        feature_refs: Sequence[str],
        entity_rows: Sequence[Mapping[str, object]],
        project: str | None = None,
        max_age: Mapping[str, timedelta] | None = None,
    ) -> GetOnlineFeaturesResponse:
        """See feast_lua.Client.get_online_features."""
        return await run_async(
            self._core.get_online_features(feature_refs, entity_rows, project, max_age), self.loader)

    async def apply(self, objects: Iterable[Entity | FeatureTable] | Entity | FeatureTable,
                    project: str | None = None) -> ProjectRegistry:
        return await run_async(self._core.apply(objects, project), self.loader)

    async def write_rows(self, table: str, rows: Sequence[Mapping[str, object]],
                         project: str | None = None, ttl: timedelta | None = None) -> WriteResult:
        """See feast_lua.Client.write_rows."""
        return await run_async(self._core.write_rows(table, rows, project, ttl), self.loader)

    async def push(self, table: str, rows: Mapping[str, object] | Sequence[Mapping[str, object]],
                   project: str | None = None, ttl: timedelta | None = None) -> WriteResult:
        """See feast_lua.Client.push."""
        return await run_async(self._core.write_rows(table, rows, project, ttl), self.loader)

    async def get_feature_table(self, name: str, project: str | None = None) -> FeatureTable:
        return await run_async(self._core.get_feature_table(name, project), self.loader)

    async def list_feature_tables(self, project: str | None = None) -> list[FeatureTable]:
        return await run_async(self._core.list_feature_tables(project), self.loader)

    async def list_entities(self, project: str | None = None) -> list[Entity]:
        return await run_async(self._core.list_entities(project), self.loader)

    async def close(self) -> None:
        await self.loader.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class FeastLayoutClient:
    """feast_lua.FeastLayoutClient over redis.asyncio: the same flows (FeastLayoutCore), awaited.
    `redis` is a ready `redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`."""

    def __init__(self, definitions: Any, redis: AsyncRedis | AsyncRedisCluster, *,
                 max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_CALL,
                 max_keys_per_call: int = DEFAULT_MAX_KEYS_PER_CALL,
                 max_rows_per_write: int = FEAST_MAX_ROWS_PER_WRITE,
                 max_cells_per_write: int = FEAST_MAX_CELLS_PER_WRITE):
        check_binary(redis)
        self.redis = redis
        self.loader: AsyncScriptLoader | AsyncClusterTransport = (
            AsyncClusterTransport(redis) if is_cluster(redis) else AsyncScriptLoader(redis))
        self._core = FeastLayoutCore(definitions, self.loader.scripts, self.loader.slot_of,
                                     max_cells_per_call, max_keys_per_call, max_rows_per_write,
                                     max_cells_per_write)

    async def get_online_features(self, feature_refs: Sequence[str],
                                  entity_rows: Sequence[Mapping[str, object]]) -> GetOnlineFeaturesResponse:
        """See feast_lua.FeastLayoutClient.get_online_features."""
        return await run_async(self._core.get_online_features(feature_refs, entity_rows), self.loader)

    async def write_rows(self, view: str, rows: Sequence[Mapping[str, object]],
                         key_ttl: timedelta | None = None) -> WriteResult:
        """See feast_lua.FeastLayoutClient.write_rows."""
        plan = feast_plan_write(self._core.definitions, view, rows, key_ttl)
        return await run_async(self._core.write(plan), self.loader)

    async def close(self) -> None:
        await self.loader.close()

    async def __aenter__(self) -> FeastLayoutClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncClusterTransport", "AsyncScriptLoader", "Client", "FeastLayoutClient", "run_async"]
