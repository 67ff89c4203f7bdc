"""The blocking transport for Redis Cluster (feast_lua/ops.py).

Calls arrive already split so that each one's keys share a slot (feast_lua/topology.py). They go
in one redis-py ClusterPipeline, which sends each node its calls on one connection, all nodes
before reading any reply, and follows MOVED, ASK and TRYAGAIN with redis-py's own machinery.
What the pipeline gives up on (a node down during a failover, the cluster still electing) is
retried here, with backoff, until `failover_timeout` has passed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.crc import key_slot

from .errors import RedisUnavailableError
from .loader import LoadedScript, check_sha, load_scripts, pack_calls
from .ops import Call, run_script, run_sync

# How long a request keeps retrying while the cluster fails over: a little more than a typical
# cluster-node-timeout plus an election.
DEFAULT_FAILOVER_TIMEOUT = 10.0
RETRY_PAUSE = 0.05  # seconds before the first retry, doubled up to RETRY_PAUSE_CAP
RETRY_PAUSE_CAP = 0.5
# What a cluster answers while it reshards or fails over: worth waiting out.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
             redis.exceptions.ClusterDownError, redis.exceptions.ClusterError,
             redis.exceptions.TryAgainError, redis.exceptions.MovedError,
             redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError)


def calls_by_node(client: Any, calls: Sequence[Call], replica: bool) -> dict[str, tuple[Any, list[int]]]:
    """The calls' indices per node that serves their slot (a replica for replica reads), from the
    client's slot map; a stale map only costs a redirect, which the pipeline path follows."""
    manager = client.nodes_manager
    strategy = client.load_balancing_strategy if replica else None
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, (keys, _) in enumerate(calls):
        node = manager.get_node_from_slot(key_slot(keys[0]), replica, strategy)
        by_node.setdefault(node.name, (node, []))[1].append(i)
    return by_node


def replica_reads(client: Any) -> bool:
    return bool(client.read_from_replicas or client.load_balancing_strategy is not None)


def unknown_node(error: Exception) -> redis.exceptions.ClusterError:
    """redis-py 8.2 follows an ASK to a node missing from its node cache (one just added during a
    reshard; redis/redis-py#4015) into an AttributeError. The cause is a stale view of the
    cluster: the caller refreshes it, and the retry then reaches the node."""
    return redis.exceptions.ClusterError(f"redirected to a node the client did not know yet: {error!r}")


class ClusterState:
    """What the sync and asyncio cluster transports share: the client, the scripts, how long to
    ride out a failover, and the slot function the flows split requests by."""

    slot_of = staticmethod(key_slot)

    def __init__(self, client: Any, scripts: dict[str, LoadedScript] | None = None,
                 failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT):
        self.client = client
        self.scripts = scripts or load_scripts()
        self.failover_timeout = failover_timeout


class ClusterTransport(ClusterState):
    """The blocking transport for Redis Cluster (see the module's docstring)."""

    def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        return run_sync(run_script(self.scripts, name, calls), self)

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.call_many(name, [(keys, args)])[0]

    def send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        """Error replies come back as exception objects, in call order.

        Fast path: the calls grouped by the node that owns their slot, packed by hiredis, written
        to every node before any reply is read. A call that meets a redirect (MOVED, ASK,
        TRYAGAIN) or a node in trouble goes again through redis-py's ClusterPipeline, which
        follows redirects and refreshes the slot map; calls that ran are not repeated."""
        replica = command == "EVALSHA_RO" and replica_reads(self.client)
        try:
            results = self._send_by_node(script, command, calls, replica)
        except TRANSIENT:
            results = [None] * len(calls)
        redo = [i for i, r in enumerate(results) if r is None or isinstance(r, TRANSIENT)]
        if redo:
            again = self._send_by_pipeline(script, command, [calls[i] for i in redo])
            for i, reply in zip(redo, again):
                results[i] = reply
        return results

    def _send_by_node(self, script: LoadedScript, command: str, calls: Sequence[Call],
                      replica: bool) -> list[Any]:
        by_node = calls_by_node(self.client, calls, replica)
        results: list[Any] = [None] * len(calls)
        taken = []
        try:
            for node, indices in by_node.values():
                pool = self.client.get_redis_connection(node).connection_pool
                conn = pool.get_connection()
                taken.append((pool, conn, indices))
                conn.send_packed_command([pack_calls(script, command, calls, indices)])
            for _, conn, indices in taken:
                for i in indices:
                    try:
                        results[i] = conn.read_response()
                    except redis.exceptions.ResponseError as e:  # read in full; the rest follow
                        results[i] = e
        except TRANSIENT:
            for _, conn, _ in taken:
                conn.disconnect()  # replies may be unread: the connection cannot be reused
            raise
        finally:
            for pool, conn, _ in taken:
                pool.release(conn)
        return results

    def _send_by_pipeline(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))

        def attempt() -> None:
            pipe = self.client.pipeline(transaction=False)
            for i in pending:
                keys, args = calls[i]
                pipe.execute_command(command, script.sha, len(keys), *keys, *args)
            try:
                replies = pipe.execute(raise_on_error=False)
            except AttributeError as e:
                with contextlib.suppress(redis.exceptions.RedisError):  # the next attempt tries again
                    self.client.nodes_manager.initialize()
                raise unknown_node(e) from e
            failed = []
            for i, reply in zip(pending, replies):
                if isinstance(reply, AttributeError):  # the same redis-py gap, reported per command
                    with contextlib.suppress(redis.exceptions.RedisError):
                        self.client.nodes_manager.initialize()
                    reply = unknown_node(reply)
                results[i] = reply
                if isinstance(reply, TRANSIENT):
                    failed.append(i)
            if failed:
                pending[:] = failed
                raise results[failed[0]]

        self._retrying(attempt, f"running {script.name}")
        return results

    def load(self, script: LoadedScript) -> None:
        """SCRIPT LOAD on every node, replicas too: a replica may serve EVALSHA_RO, and one that
        is promoted then has the script already. A node that is down is skipped; it answers
        NOSCRIPT once it is back, and is loaded then."""
        loaded = 0
        for node in self.client.get_nodes():
            try:
                sha = self.client.get_redis_connection(node).script_load(script.source)
            except TRANSIENT:
                continue
            check_sha(script, sha)
            loaded += 1
        if not loaded:
            raise RedisUnavailableError(f"no cluster node is reachable to load {script.name}")

    def command(self, args: tuple) -> Any:
        return self._retrying(lambda: self.client.execute_command(*args), f"running {args[0]}")

    def _retrying(self, attempt: Any, what: str) -> Any:
        deadline = time.monotonic() + self.failover_timeout
        pause = RETRY_PAUSE
        while True:
            try:
                return attempt()
            except TRANSIENT as e:
                if time.monotonic() + pause > deadline:
                    raise RedisUnavailableError(f"Redis Cluster is unavailable while {what}: {e}") from e
                time.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE_CAP)

    def close(self) -> None:
        self.client.close()
