"""A throwaway Redis Cluster on loopback: primaries and replicas made by `redis-cli --cluster create`.

The scale-out tests and benchmarks need a real cluster they can hurt: kill a primary and wait
for its replica to take over, add a node, move slots under load. Every node is a RedisServer
(docker/redis.conf plus cluster overrides) on a free port whose bus port (+10000) is free too.
A short cluster-node-timeout makes failovers take seconds rather than the default 15 s+.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from .server import RedisServer, close_all, require_binary, start_on_free_port
from .server_checks import HOST, ask, wait_replicated, wait_until

SLOTS = 16384


@dataclass(frozen=True)
class NodeInfo:
    """One line of CLUSTER NODES, as one node sees the cluster."""

    node_id: str
    port: int
    role: str  # "primary" or "replica"
    primary_id: str | None
    flags: tuple[str, ...]
    slots: tuple[tuple[int, int], ...]  # inclusive ranges

    @property
    def failed(self) -> bool:
        return "fail" in self.flags or "fail?" in self.flags

    def owns(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.slots)


def parse_cluster_nodes(text: str) -> list[NodeInfo]:
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        flags = tuple(fields[2].split(","))
        ranges = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being imported or migrated, shown by its owner
                continue
            start, _, end = item.partition("-")
            ranges.append((int(start), int(end or start)))
        nodes.append(NodeInfo(
            node_id=fields[0], port=int(fields[1].split("@")[0].rsplit(":", 1)[1]),
            role="primary" if "master" in flags else "replica",
            primary_id=None if fields[3] == "-" else fields[3], flags=flags, slots=tuple(ranges)))
    return sorted(nodes, key=lambda n: n.port)


class LocalCluster:
    """`with LocalCluster() as cluster:` starts 3 primaries with a replica each and waits until
    the cluster is healthy; `RedisCluster(startup_nodes=cluster.startup_nodes)` connects to it."""

    def __init__(self, primaries: int = 3, replicas_per_primary: int = 1, node_timeout_ms: int = 1000,
                 extra_args: list[str] | None = None, timeout: float = 60.0):
        self.primaries_wanted = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = list(extra_args or [])
        self.timeout = timeout
        self.servers: dict[int, RedisServer] = {}
        self._killed_slots: dict[int, tuple[tuple[int, int], ...]] = {}

    # --- Lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        try:
            for _ in range(self.primaries_wanted * (1 + self.replicas_per_primary)):
                self._start_node()
            self._redis_cli("--cluster", "create", *(f"{HOST}:{p}" for p in self.servers),
                            "--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes")
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def node_args(self) -> list[str]:
        """The overrides on top of docker/redis.conf that make a quick test cluster node."""
        return ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # A replica may always take over, however long its link has been down.
                "--cluster-replica-validity-factor", "0",
                # Redis 7.0 waits 5 s before a diskless full sync to batch replicas; not here.
                "--repl-diskless-sync-delay", "0",
                *self.extra_args]

    def _start_node(self) -> int:
        server = start_on_free_port(lambda port: RedisServer(port, self.node_args()), cluster_bus=True)
        self.servers[server.port] = server
        return server.port

    def stop(self) -> None:
        """Kills every node and removes their directories; safe to call twice."""
        close_all(list(self.servers.values()))
        self.servers.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- What the cluster looks like -------------------------------------------------------------

    @property
    def alive_ports(self) -> list[int]:
        return [port for port, server in self.servers.items() if server.alive]

    @property
    def url(self) -> str:
        """A redis:// URL of one live node: `RedisCluster.from_url(cluster.url)` finds the rest."""
        return self.servers[self.alive_ports[0]].url

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        return [ClusterNode(HOST, port) for port in self.alive_ports]

    def client(self, **options) -> RedisCluster:
        return RedisCluster(startup_nodes=self.startup_nodes, **options)

    def node_client(self, port: int, **options) -> redis.Redis:
        """A plain client of one node, for CLUSTER and INFO commands."""
        options = {"socket_timeout": 5, "socket_connect_timeout": 1, "decode_responses": True, **options}
        return redis.Redis(host=HOST, port=port, **options)

    def _ask(self, port: int, *command: str) -> Any:
        return ask(port, *command)

    def nodes_seen_by(self, port: int) -> list[NodeInfo]:
        return parse_cluster_nodes(self._ask(port, "CLUSTER", "NODES"))

    @property
    def nodes(self) -> list[NodeInfo]:
        """Every node (failed ones included, flagged) as the first live node sees the cluster."""
        return self.nodes_seen_by(self.alive_ports[0])

    @property
    def primaries(self) -> list[int]:
        """Ports of the working primaries."""
        return [n.port for n in self.nodes if n.role == "primary" and not n.failed]

    @property
    def replicas(self) -> list[int]:
        return [n.port for n in self.nodes if n.role == "replica" and not n.failed]

    def node_id(self, port: int) -> str:
        return self._ask(port, "CLUSTER", "MYID")

    def primary_for_slot(self, slot: int) -> int:
        for node in self.nodes:
            if node.role == "primary" and node.owns(slot):
                return node.port
        raise ValueError(f"slot {slot} is not served by any node")

    def replicas_of(self, primary_port: int) -> list[int]:
        nodes = self.nodes
        primary_id = next(n.node_id for n in nodes if n.port == primary_port)
        return [n.port for n in nodes if n.primary_id == primary_id and not n.failed]

    # --- Health ----------------------------------------------------------------------------------

    def _healthy(self) -> bool:
        """True when every live node says cluster_state:ok with all slots served, they all see
        the same topology, every live node knows every other one, and every replica is synced."""
        ports = self.alive_ports
        views = set()
        for port in ports:
            info = self._ask(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or f"cluster_slots_ok:{SLOTS}" not in info:
                raise ValueError(f"node {port} is not ok yet: {info.splitlines()[:4]}")
            nodes = self.nodes_seen_by(port)
            if any("handshake" in n.flags or "noaddr" in n.flags for n in nodes):
                raise ValueError(f"node {port} is still meeting another node")
            if not set(ports) <= {n.port for n in nodes if not n.failed}:
                raise ValueError(f"node {port} does not know every live node yet")
            views.add(tuple((n.node_id, n.role, n.primary_id, n.slots) for n in nodes if not n.failed))
            myself = next(n for n in nodes if "myself" in n.flags)
            if myself.role == "replica":
                replication = self._ask(port, "INFO", "replication")
                if replication["master_link_status"] != "up" or replication["master_sync_in_progress"]:
                    raise ValueError(f"replica {port} is not in sync yet")
        if len(views) != 1:
            raise ValueError(f"the nodes disagree about the topology ({len(views)} views)")
        # Clients learn the topology from CLUSTER SLOTS, which leaves out a replica until its
        # primary has heard (by gossip) that it holds data; replica reads need them listed.
        seen = self.nodes_seen_by(ports[0])
        serving = {n.node_id for n in seen if n.role == "primary" and n.slots}
        live_replicas = {n.port for n in seen if n.role == "replica" and not n.failed
                         and n.primary_id in serving}
        for port in ports:
            listed = {entry[1] for shard in self._ask(port, "CLUSTER", "SLOTS") for entry in shard[3:]}
            if not live_replicas <= listed:
                raise ValueError(f"node {port} does not list every replica in CLUSTER SLOTS yet")
        return True

    def wait_healthy(self, timeout: float | None = None) -> None:
        wait_until(self._healthy, timeout or self.timeout, "a healthy cluster")

    def wait_replicated(self, timeout: float | None = None) -> None:
        """Waits until every replica has what its primary has now: call it before kill() when
        the test must not lose writes to asynchronous replication."""
        wait_replicated(self.primaries, self.replicas, timeout or self.timeout)

    # --- Failures --------------------------------------------------------------------------------

    def kill(self, port: int) -> None:
        """SIGKILL one node. A primary's replica takes over after about 2 × cluster-node-timeout;
        wait for it with wait_for_failover(port)."""
        owned = next((n.slots for n in self.nodes if n.port == port and n.role == "primary"), ())
        if owned:
            self._killed_slots[port] = owned
        self.servers[port].kill()

    def wait_for_failover(self, old_primary_port: int, timeout: float | None = None) -> int:
        """Waits until the remaining nodes agree that a replica of the killed primary owns its
        slots and the cluster is ok again; returns the new primary's port."""
        slots = self._killed_slots.get(old_primary_port)
        if not slots:
            raise ValueError(f"{old_primary_port} was not a primary owning slots when kill() killed it")

        def promoted() -> int | None:
            owners = {self._owner_seen_by(port, slots[0][0]) for port in self.alive_ports}
            if len(owners) == 1 and old_primary_port not in owners:
                return owners.pop()
            return None

        new_primary = wait_until(promoted, timeout or self.timeout, f"a failover of {old_primary_port}")
        self.wait_healthy(timeout)
        return new_primary

    def _owner_seen_by(self, port: int, slot: int) -> int | None:
        for node in self.nodes_seen_by(port):
            if node.role == "primary" and node.owns(slot):
                return node.port
        return None

    def revive(self, port: int) -> None:
        """Starts a killed node again on its port with its nodes.conf: it rejoins, as a replica
        of whichever node took over its slots."""
        self.servers[port].start()
        self._killed_slots.pop(port, None)
        self.wait_healthy()

    # --- Growing and resharding ------------------------------------------------------------------

    def add_node(self, as_primary: bool = True, primary_port: int | None = None) -> int:
        """Starts a new node and joins it with `redis-cli --cluster add-node`: an empty primary
        (give it slots with move_slots or reshard), or a replica of `primary_port` (default: the
        primary with the fewest replicas). Returns its port once every node knows it."""
        port = self._start_node()
        args = ["--cluster", "add-node", f"{HOST}:{port}", f"{HOST}:{self.alive_ports[0]}"]
        if not as_primary:
            primary_port = primary_port or min(self.primaries, key=lambda p: len(self.replicas_of(p)))
            args += ["--cluster-slave", "--cluster-master-id", self.node_id(primary_port)]
        self._redis_cli(*args)
        self.wait_healthy()
        return port

    def move_slots(self, slots: list[int] | range, to_port: int, batch: int = 100) -> None:
        """Live resharding slot by slot, the way redis-cli does it: the target IMPORTING, the
        owner MIGRATING, keys moved in MIGRATE ... KEYS batches, then SETSLOT NODE everywhere.
        Clients see ASK redirects (and TRYAGAIN for multi-key commands) while a slot moves.
        redis-py 8.2 fails on an ASK to a node that owns no slot yet (it is absent from CLUSTER
        SLOTS, so from the client's cache; redis/redis-py#4015): give a new node its first slot
        before the load, or make the client cope."""
        to_id = self.node_id(to_port)
        for slot in slots:
            from_port = self.primary_for_slot(slot)
            if from_port == to_port:
                continue
            from_id = self.node_id(from_port)
            self._ask(to_port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", from_id)
            self._ask(from_port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", to_id)
            while True:
                keys = self._ask(from_port, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch))
                if not keys:
                    break
                self._ask(from_port, "MIGRATE", HOST, str(to_port), "", "0", "5000", "KEYS", *keys)
            # Target first, so the slot is never without an owner that accepts its keys.
            self._ask(to_port, "CLUSTER", "SETSLOT", str(slot), "NODE", to_id)
            self._ask(from_port, "CLUSTER", "SETSLOT", str(slot), "NODE", to_id)
            for port in self.primaries:
                if port not in (from_port, to_port):
                    self._ask(port, "CLUSTER", "SETSLOT", str(slot), "NODE", to_id)
        self.wait_healthy()

    def reshard(self, from_port: int, to_port: int, count: int) -> None:
        """Moves `count` slots with `redis-cli --cluster reshard`, as an operator would."""
        self._redis_cli("--cluster", "reshard", f"{HOST}:{from_port}",
                        "--cluster-from", self.node_id(from_port), "--cluster-to", self.node_id(to_port),
                        "--cluster-slots", str(count), "--cluster-yes")
        self.wait_healthy()

    # --- Data helpers ----------------------------------------------------------------------------

    def flushall(self) -> None:
        """Empties every primary and their script caches, for a test that shares the cluster."""
        for port in self.primaries:
            self._ask(port, "FLUSHALL")
        for port in self.alive_ports:
            self._ask(port, "SCRIPT", "FLUSH")

    def _redis_cli(self, *args: str) -> str:
        done = subprocess.run([require_binary("redis-cli"), *args], capture_output=True, text=True,
                              timeout=self.timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0 or "[ERR]" in done.stdout:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout
