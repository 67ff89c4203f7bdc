"""A throwaway Sentinel setup on loopback: one primary, one replica, three sentinels.

The scale-out tests need a real Sentinel failover they can provoke: kill the primary (or ask for
SENTINEL FAILOVER) and see clients of `redis.sentinel.Sentinel` follow the new primary. The data
nodes run from docker/redis.conf like every other test server; the sentinels (the same
redis-server binary with --sentinel, so Debian's separate redis-sentinel package is not needed)
get a small config file of their own, which they rewrite as Sentinel requires.
"""

from __future__ import annotations

from typing import Any

from redis.sentinel import Sentinel

from .server import RedisServer, close_all, require_binary, start_on_free_port
from .server_checks import HOST, ask, wait_replicated, wait_until


class SentinelProcess(RedisServer):
    """One sentinel monitoring `service_name`; its config file lives in its own directory."""

    def __init__(self, port: int, service_name: str, primary_port: int, quorum: int,
                 down_after_ms: int, failover_timeout_ms: int):
        super().__init__(port)
        (self.dir / "sentinel.conf").write_text("\n".join([
            f"port {port}",
            f"bind {HOST}",
            f"dir {self.dir}",
            f"sentinel monitor {service_name} {HOST} {primary_port} {quorum}",
            f"sentinel down-after-milliseconds {service_name} {down_after_ms}",
            f"sentinel failover-timeout {service_name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service_name} 1",
            "",
        ]))

    def command(self) -> list[str]:
        return [require_binary("redis-server"), str(self.dir / "sentinel.conf"), "--sentinel"]


def _pairs(reply: list | dict) -> dict[str, str]:
    """A SENTINEL MASTER/REPLICAS entry as a dict: redis-py hands it over flat or as a map."""
    return dict(reply) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


class LocalSentinel:
    """`with LocalSentinel() as s:` starts the servers and waits until the sentinels agree and
    the replica is in sync; `Sentinel(s.sentinels).master_for(s.service_name)` connects."""

    def __init__(self, service_name: str = "feast-lua", sentinels: int = 3, quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 3000, timeout: float = 60.0):
        self.service_name = service_name
        self.sentinel_count = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.timeout = timeout
        self.data_servers: dict[int, RedisServer] = {}
        self.sentinel_servers: list[SentinelProcess] = []

    # Redis 7.0 waits 5 s before a diskless full sync to batch replicas; not here.
    DATA_ARGS = ("--repl-diskless-sync-delay", "0")

    def start(self) -> LocalSentinel:
        try:
            primary = start_on_free_port(lambda port: RedisServer(port, list(self.DATA_ARGS)))
            self.data_servers[primary.port] = primary
            replica = start_on_free_port(lambda port: RedisServer(
                port, [*self.DATA_ARGS, "--replicaof", HOST, str(primary.port)]))
            self.data_servers[replica.port] = replica
            for _ in range(self.sentinel_count):
                self.sentinel_servers.append(start_on_free_port(lambda port: SentinelProcess(
                    port, self.service_name, primary.port, self.quorum, self.down_after_ms,
                    self.failover_timeout_ms)))
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kills every process and removes their directories; safe to call twice."""
        close_all([*self.sentinel_servers, *self.data_servers.values()])
        self.sentinel_servers.clear()
        self.data_servers.clear()

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- Addresses -------------------------------------------------------------------------------

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """(host, port) of every sentinel, as `redis.sentinel.Sentinel` takes them."""
        return [(HOST, s.port) for s in self.sentinel_servers]

    def sentinel_client(self, **options) -> Sentinel:
        return Sentinel(self.sentinels, socket_timeout=options.pop("socket_timeout", 2), **options)

    def _ask(self, port: int, *command: str) -> Any:
        return ask(port, *command)

    def _primary_seen_by(self, sentinel_port: int) -> int:
        _, port = self._ask(sentinel_port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
        return int(port)

    @property
    def primary_port(self) -> int:
        """The primary as the first live sentinel names it."""
        return self._primary_seen_by(next(s.port for s in self.sentinel_servers if s.alive))

    @property
    def replica_ports(self) -> list[int]:
        return [port for port, server in self.data_servers.items()
                if server.alive and port != self.primary_port]

    # --- Health ----------------------------------------------------------------------------------

    def _healthy(self) -> int:
        """The primary's port once every sentinel names the same live primary, knows the other
        sentinels and all live replicas, and every live replica is in sync with that primary."""
        live_data = [port for port, server in self.data_servers.items() if server.alive]
        live_sentinels = [s.port for s in self.sentinel_servers if s.alive]
        primaries = {self._primary_seen_by(port) for port in live_sentinels}
        if len(primaries) != 1:
            raise ValueError(f"sentinels name different primaries: {primaries}")
        primary = primaries.pop()
        if primary not in live_data or self._ask(primary, "ROLE")[0] != "master":
            raise ValueError(f"{primary} is not a live primary yet")
        for port in live_sentinels:
            master = _pairs(self._ask(port, "SENTINEL", "MASTER", self.service_name))
            if master["flags"] != "master" or int(master["num-other-sentinels"]) < len(live_sentinels) - 1:
                raise ValueError(f"sentinel {port} does not agree yet: {master['flags']}, "
                                 f"{master['num-other-sentinels']} other sentinels")
            replicas = [_pairs(r) for r in self._ask(port, "SENTINEL", "REPLICAS", self.service_name)]
            known = {int(r["port"]) for r in replicas if r["flags"] == "slave"}
            if not set(live_data) - {primary} <= known:
                raise ValueError(f"sentinel {port} knows replicas {known} only")
        for port in set(live_data) - {primary}:
            info = self._ask(port, "INFO", "replication")
            if (info.get("master_port") != primary or info["master_link_status"] != "up"
                    or info["master_sync_in_progress"]):
                raise ValueError(f"replica {port} is not in sync with {primary} yet")
        return primary

    def wait_healthy(self, timeout: float | None = None) -> int:
        """Waits for full agreement (see _healthy) and returns the primary's port."""
        return wait_until(self._healthy, timeout or self.timeout, "sentinels to agree")

    def wait_replicated(self, timeout: float | None = None) -> None:
        """Waits until the replicas have what the primary has now: call it before kill_primary()
        when the test must not lose writes to asynchronous replication."""
        wait_replicated([self.primary_port], self.replica_ports, timeout or self.timeout)

    # --- Failures --------------------------------------------------------------------------------

    def kill_primary(self) -> int:
        """SIGKILLs the primary and returns its port; the sentinels notice after
        down-after-milliseconds and promote the replica (wait_for_new_primary)."""
        port = self.primary_port
        self.data_servers[port].kill()
        return port

    def failover(self) -> int:
        """SENTINEL FAILOVER: a planned switch with both servers alive. Returns the new primary."""
        old = self.primary_port
        self._ask(self.sentinels[0][1], "SENTINEL", "FAILOVER", self.service_name)
        return self.wait_for_new_primary(old)

    def wait_for_new_primary(self, old_primary_port: int, timeout: float | None = None) -> int:
        """Waits until every live sentinel names a primary other than `old_primary_port` and that
        server answers as a primary; returns its port. The old primary, if alive, is turned into
        a replica later (a sentinel checks roles every few seconds): wait_healthy() waits for it."""
        def promoted() -> int | None:
            seen = {self._primary_seen_by(s.port) for s in self.sentinel_servers if s.alive}
            if len(seen) == 1 and old_primary_port not in seen:
                new = seen.pop()
                if self._ask(new, "ROLE")[0] == "master":
                    return new
            return None

        return wait_until(promoted, timeout or self.timeout, f"a new primary instead of {old_primary_port}")

    def revive(self, port: int) -> None:
        """Starts a killed data server again on its port, as a replica of the current primary.
        The sentinels would demote a returning primary themselves, but only at their next INFO
        poll (every 10 s); starting it as a replica is what an operator does and is quicker."""
        server = self.data_servers[port]
        server.extra_args = [*self.DATA_ARGS, "--replicaof", HOST, str(self.primary_port)]
        server.start()
