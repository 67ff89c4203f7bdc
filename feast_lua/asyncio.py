"""`feast_lua.asyncio.Client`: the sync client's API over redis.asyncio, standalone or cluster.

It runs the very flows the sync client runs (feast_lua/core.py); only the transports below,
which do the I/O, are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from hiredis import pack_command
from redis.crc import key_slot

from .cluster import (
    DEFAULT_FAILOVER_TIMEOUT,
    RETRY_PAUSE,
    RETRY_PAUSE_CAP,
    TRANSIENT,
    calls_by_node,
    pack_calls,
    replica_reads,
    unknown_node,
)
from .connect import (
    DEFAULT_RETRIES,
    check_binary,
    client_options,
    cluster_without_replica,
    is_cluster,
    open_async,
)
from .core import DEFAULT_PROJECT, ClientCore
from .errors import RedisUnavailableError, ScriptError
from .feast_layout.client import FeastLayoutCore
from .feast_layout.write_plan import DEFAULT_MAX_CELLS_PER_WRITE as FEAST_MAX_CELLS_PER_WRITE
from .feast_layout.write_plan import DEFAULT_MAX_ROWS_PER_WRITE as FEAST_MAX_ROWS_PER_WRITE
from .feast_layout.write_plan import plan_write as feast_plan_write
from .loader import LoadedScript, load_scripts
from .ops import Call, Flow, execute, run_script
from .registry import ProjectRegistry
from .request import DEFAULT_MAX_CELLS_PER_CALL, DEFAULT_MAX_KEYS_PER_CALL
from .response import GetOnlineFeaturesResponse
from .schema import Entity, FeatureTable
from .write import (
    DEFAULT_MAX_BYTES_PER_WRITE,
    DEFAULT_MAX_CELLS_PER_WRITE,
    DEFAULT_MAX_ROWS_PER_WRITE,
    WriteResult,
)

AsyncRedis = redis.asyncio.Redis
AsyncRedisCluster = redis.asyncio.cluster.RedisCluster


async def run_async(flow: Flow, transport: Any) -> Any:
    """Drives a flow over an asyncio transport until it returns."""
    try:
        op = next(flow)
        while True:
            op = flow.send(await execute(transport, op))
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()


class AsyncScriptLoader:
    """One server over redis.asyncio: hiredis-packed EVALSHAs on one pooled connection."""

    slot_of = None

    def __init__(self, client: AsyncRedis, scripts: dict[str, LoadedScript] | None = None,
                 replica: AsyncRedis | None = None):
        self.client = client
        self.replica = replica
        self.scripts = scripts or load_scripts()

    async def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        return await run_async(run_script(self.scripts, name, calls), self)

    async def send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        packed = b"".join([
            pack_command((command, script.sha, len(keys), *keys, *args)) for keys, args in calls
        ])
        client = self.replica if self.replica is not None and command == "EVALSHA_RO" else self.client
        pool = client.connection_pool
        try:
            conn = await pool.get_connection()
            try:
                return await conn.retry.call_with_retry(
                    lambda: _round_trip(conn, packed, len(calls)), lambda _error: conn.disconnect()
                )
            finally:
                await pool.release(conn)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable while running {script.name}: {e}") from e

    async def load(self, script: LoadedScript) -> None:
        for client in (self.client, self.replica):
            if client is None:
                continue
            try:
                sha = await client.script_load(script.source)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                raise RedisUnavailableError(f"Redis is unreachable while loading {script.name}: {e}") from e
            _check_sha(script, sha)

    async def command(self, args: tuple) -> Any:
        try:
            return await self.client.execute_command(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable: {e}") from e

    async def close(self) -> None:
        await self.client.aclose()
        if self.replica is not None:
            await self.replica.aclose()


class AsyncClusterTransport:
    """Redis Cluster over redis.asyncio: the calls of one send go in one ClusterPipeline, which
    sends every node its calls concurrently and follows MOVED/ASK/TRYAGAIN (see cluster.py)."""

    slot_of = staticmethod(key_slot)

    def __init__(self, client: AsyncRedisCluster, scripts: dict[str, LoadedScript] | None = None,
                 failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT):
        self.client = client
        self.scripts = scripts or load_scripts()
        self.failover_timeout = failover_timeout

    async def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        return await run_async(run_script(self.scripts, name, calls), self)

    async def send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        """As ClusterTransport.send: hiredis-packed calls to every owning node, then what met a
        redirect or a node in trouble again through redis-py's ClusterPipeline."""
        replica = command == "EVALSHA_RO" and replica_reads(self.client)
        try:
            results = await self._send_by_node(script, command, calls, replica)
        except TRANSIENT:
            results = [None] * len(calls)
        redo = [i for i, r in enumerate(results) if r is None or isinstance(r, TRANSIENT)]
        if redo:
            again = await self._send_by_pipeline(script, command, [calls[i] for i in redo])
            for i, reply in zip(redo, again):
                results[i] = reply
        return results

    async def _send_by_node(self, script: LoadedScript, command: str, calls: Sequence[Call],
                            replica: bool) -> list[Any]:
        if not self.client.nodes_manager.slots_cache:
            await self.client.initialize()
        by_node = calls_by_node(self.client, calls, replica)
        results: list[Any] = [None] * len(calls)
        taken = []
        try:
            for node, indices in by_node.values():
                conn = node.acquire_connection()
                taken.append((node, conn, indices))
                await conn.send_packed_command(pack_calls(script, command, calls, indices))
            for _, conn, indices in taken:
                for i in indices:
                    try:
                        results[i] = await conn.read_response()
                    except redis.exceptions.ResponseError as e:
                        results[i] = e
        except TRANSIENT:
            for _, conn, _ in taken:
                await conn.disconnect()
            raise
        finally:
            for node, conn, _ in taken:
                node.release(conn)
        return results

    async def _send_by_pipeline(self, script: LoadedScript, command: str,
                                calls: Sequence[Call]) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))

        async def attempt() -> None:
            pipe = self.client.pipeline(transaction=False)
            for i in pending:
                keys, args = calls[i]
                pipe.execute_command(command, script.sha, len(keys), *keys, *args)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except AttributeError as e:
                with contextlib.suppress(redis.exceptions.RedisError):  # the next attempt tries again
                    await self.client.nodes_manager.initialize()
                raise unknown_node(e) from e
            failed = []
            for i, reply in zip(pending, replies):
                if isinstance(reply, AttributeError):  # the same redis-py gap, reported per command
                    with contextlib.suppress(redis.exceptions.RedisError):
                        await self.client.nodes_manager.initialize()
                    reply = unknown_node(reply)
                results[i] = reply
                if isinstance(reply, TRANSIENT):
                    failed.append(i)
            if failed:
                pending[:] = failed
                raise results[failed[0]]

        await self._retrying(attempt, f"running {script.name}")
        return results

    async def load(self, script: LoadedScript) -> None:
        loaded = 0
        for node in self.client.get_nodes():
            try:
                sha = await self.client.execute_command("SCRIPT LOAD", script.source, target_nodes=node)
            except TRANSIENT:
                continue
            _check_sha(script, sha)
            loaded += 1
        if not loaded:
            raise RedisUnavailableError(f"no cluster node is reachable to load {script.name}")

    async def command(self, args: tuple) -> Any:
        return await self._retrying(lambda: self.client.execute_command(*args), f"running {args[0]}")

    async def _retrying(self, attempt: Any, what: str) -> Any:
        deadline = time.monotonic() + self.failover_timeout
        pause = RETRY_PAUSE
        while True:
            try:
                return await attempt()
            except TRANSIENT as e:
                if time.monotonic() + pause > deadline:
                    raise RedisUnavailableError(f"Redis Cluster is unavailable while {what}: {e}") from e
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE_CAP)

    async def close(self) -> None:
        await self.client.aclose()


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

        connection = {k: kwargs.pop(k) for k in ("password", "username", "socket_timeout",
                                                 "socket_connect_timeout", "db") if k in kwargs}
        sentinel = Sentinel(list(sentinels), sentinel_kwargs=dict(sentinel_kwargs or {}), **connection)
        primary = sentinel.master_for(service_name)
        replica = sentinel.slave_for(service_name) if replica_reads else None
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


async def _round_trip(conn: Any, packed: bytes, count: int) -> list[Any]:
    await conn.send_packed_command(packed)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except redis.exceptions.ResponseError as e:  # raised after its reply was read in full
            replies.append(e)
    return replies


def _check_sha(script: LoadedScript, sha: Any) -> None:
    if isinstance(sha, bytes):
        sha = sha.decode()
    if sha != script.sha:
        raise ScriptError(f"Redis computed SHA {sha} for {script.name}, expected {script.sha}")




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
