"""The asyncio transports (feast_lua/ops.py): one server, or a cluster, over redis.asyncio.

They mirror loader.py and cluster.py, with the same grouping by node and packing (shared from
cluster.py); the flows they drive are the sync client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster

from ..cluster import (
    RETRY_PAUSE,
    RETRY_PAUSE_CAP,
    TRANSIENT,
    ClusterState,
    calls_by_node,
    replica_reads,
    unknown_node,
)
from ..errors import RedisUnavailableError
from ..loader import LoadedScript, OneServer, check_sha, pack_calls
from ..ops import Call, Flow, execute, run_script

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


class AsyncScriptLoader(OneServer):
    """One server over redis.asyncio: hiredis-packed EVALSHAs on one pooled connection."""

    async def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        return await run_async(run_script(self.scripts, name, calls), self)

    async def send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        packed = pack_calls(script, command, calls)
        pool = self.target(command).connection_pool
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
            check_sha(script, sha)

    async def command(self, args: tuple) -> Any:
        try:
            return await self.client.execute_command(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable: {e}") from e

    async def close(self) -> None:
        await self.client.aclose()
        if self.replica is not None:
            await self.replica.aclose()


class AsyncClusterTransport(ClusterState):
    """Redis Cluster over redis.asyncio, as ClusterTransport: the calls packed per node and
    written to every node before any reply is read; redirects through redis-py's ClusterPipeline."""

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
            check_sha(script, sha)
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


async def _round_trip(conn: Any, packed: bytes, count: int) -> list[Any]:
    await conn.send_packed_command(packed)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except redis.exceptions.ResponseError as e:  # raised after its reply was read in full
            replies.append(e)
    return replies
