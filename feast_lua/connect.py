"""Builds the redis-py client a feast-lua client talks through: one server, a cluster, or a
Sentinel-managed primary, sync or asyncio, from a URL or host/port and the connection options.

Only construction lives here; which transport drives the client follows from the client's type
(`is_cluster`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.backoff import EqualJitterBackoff
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.retry import Retry

from .errors import ConfigurationError

# Connection errors and timeouts are retried, a few times with a short backoff: every command the
# client sends is safe to repeat (reads, newest-wins writes, compare-and-set registry puts, HGET,
# SCRIPT LOAD). Each attempt can wait one socket_timeout (docs/RELIABILITY.md).
DEFAULT_RETRIES = 3
RETRY_BACKOFF_BASE = 0.02  # seconds; the n-th retry waits between 0.5x and 1x of base * 2**n
RETRY_BACKOFF_CAP = 0.5
CLUSTER_TYPES = (RedisCluster, redis.asyncio.cluster.RedisCluster)


@dataclass
class Options:
    """The connection options a client was given, for whichever client type it builds."""

    url: str | None = None
    host: str | None = None
    port: int | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 5.0
    retries: int = DEFAULT_RETRIES
    ssl: bool = False
    tls: dict[str, Any] = field(default_factory=dict)  # ssl_ca_certs, ssl_certfile, ssl_keyfile
    cluster: bool | None = None  # None: ask the server
    replica_reads: bool = False

    def common(self, asyncio: bool = False) -> dict[str, Any]:
        backoff = EqualJitterBackoff(cap=RETRY_BACKOFF_CAP, base=RETRY_BACKOFF_BASE)
        retry = redis.asyncio.retry.Retry(backoff, self.retries) if asyncio else Retry(backoff, self.retries)
        out: dict[str, Any] = {"socket_timeout": self.socket_timeout,
                               "socket_connect_timeout": self.socket_connect_timeout, "retry": retry}
        if self.username is not None:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        out.update({k: v for k, v in self.tls.items() if v is not None})
        return out


def is_cluster(client: Any) -> bool:
    return isinstance(client, CLUSTER_TYPES)


def client_options(url: str | None, redis_client: Any, host: str | None, port: int | None, db: int,
                   username: str | None, password: str | None, socket_timeout: float | None,
                   socket_connect_timeout: float | None, retries: Any, ssl: bool,
                   ssl_ca_certs: str | None, ssl_certfile: str | None, ssl_keyfile: str | None,
                   cluster: bool | None, replica_reads: bool) -> Options:
    """The checked connection options of a sync or asyncio client's constructor."""
    if sum(x is not None for x in (url, redis_client, host or port)) > 1:
        raise ConfigurationError("pass one of url, host/port or redis, not several")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
    tls = {k: v for k, v in (("ssl_ca_certs", ssl_ca_certs), ("ssl_certfile", ssl_certfile),
                             ("ssl_keyfile", ssl_keyfile)) if v is not None}
    return Options(url, host, port, db, username, password, socket_timeout, socket_connect_timeout,
                   retries, ssl, tls, cluster, replica_reads)


CONNECTION_KEYS = ("password", "username", "socket_timeout", "socket_connect_timeout", "db")


def sentinel_clients(sentinel_class: Any, sentinels: Any, service_name: str, replica_reads: bool,
                     sentinel_kwargs: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The primary (and a replica, for replica reads) of `service_name`, from redis-py's sync or
    asyncio Sentinel. The connection options are taken out of `kwargs` for the data nodes; what
    remains is the feast-lua client's."""
    connection = {k: kwargs.pop(k) for k in CONNECTION_KEYS if k in kwargs}
    sentinel = sentinel_class(list(sentinels), sentinel_kwargs=dict(sentinel_kwargs or {}), **connection)
    replica = sentinel.slave_for(service_name) if replica_reads else None
    return sentinel.master_for(service_name), replica


def cluster_without_replica(client: Any, replica: Any) -> bool:
    """Whether `client` is a cluster client; a separate replica makes sense on one server only."""
    if not is_cluster(client):
        return False
    if replica is not None:
        raise ConfigurationError("replica= is for one server; on a cluster use replica_reads=True")
    return True


def open_sync(options: Options) -> redis.Redis | RedisCluster:
    url, common = _checked(options), options.common()
    if options.cluster is None:
        options.cluster = _cluster_enabled(url, options, common)
    if options.cluster:
        common.pop("retry")  # the cluster client retries by its own rules; cluster.py adds ours
        if options.replica_reads:
            common["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
        if url is not None:
            return RedisCluster.from_url(url, **common)
        return RedisCluster(host=options.host or "localhost", port=options.port or 6379,
                            ssl=options.ssl or bool(options.tls), **common)
    if options.replica_reads:
        raise ConfigurationError("replica_reads=True needs a cluster; on one server pass replica=")
    if url is not None:
        return redis.Redis.from_url(url, **common)  # credentials in the URL win
    return redis.Redis(host=options.host or "localhost", port=options.port or 6379, db=options.db,
                       ssl=options.ssl or bool(options.tls), **common)


def open_async(options: Options) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """The asyncio client; a cluster must be asked for (cluster=True): asking the server would
    need a round trip before the event loop runs."""
    url, common = _checked(options), options.common(asyncio=True)
    if options.cluster:
        common.pop("retry")
        if options.replica_reads:
            common["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
        if url is not None:
            return redis.asyncio.cluster.RedisCluster.from_url(url, **common)
        return redis.asyncio.cluster.RedisCluster(host=options.host or "localhost",
                                                  port=options.port or 6379, **common)
    if options.replica_reads:
        raise ConfigurationError("replica_reads=True needs a cluster; on one server pass replica=")
    if url is not None:
        return redis.asyncio.Redis.from_url(url, **common)
    return redis.asyncio.Redis(host=options.host or "localhost", port=options.port or 6379,
                               db=options.db, ssl=options.ssl or bool(options.tls), **common)


def check_binary(client: Any) -> None:
    kwargs = (client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs")
              else client.connection_pool.connection_kwargs)
    if kwargs.get("decode_responses"):
        raise ConfigurationError(
            "the redis client was made with decode_responses=True; feast-lua replies are"
            " binary msgpack, so pass a client with decode_responses=False"
        )


def _checked(options: Options) -> str | None:
    if options.url is not None and (options.tls or options.ssl) and not options.url.startswith("rediss://"):
        raise ConfigurationError("TLS needs a rediss:// URL (or host/port with ssl=True)")
    return options.url


def _cluster_enabled(url: str | None, options: Options, common: dict[str, Any]) -> bool:
    """Asks the server whether it runs in cluster mode. A server that cannot be reached now is
    taken for a single one; the first request then reports it unreachable."""
    probe_options = {**common, "retry": Retry(EqualJitterBackoff(), 0)}
    if url is not None:
        probe = redis.Redis.from_url(url, **probe_options)
    else:
        probe = redis.Redis(host=options.host or "localhost", port=options.port or 6379,
                            ssl=options.ssl or bool(options.tls), **probe_options)
    try:
        return bool(int(probe.info("cluster").get("cluster_enabled", 0)))
    except redis.exceptions.RedisError:
        return False
    finally:
        probe.close()
