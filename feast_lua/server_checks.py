"""What the cluster and Sentinel launchers share: asking a node, and waiting for a condition.

Topology changes (a failover, a new node, a moved slot) settle asynchronously, through gossip or
sentinel hello messages; the launchers poll until every live node agrees rather than sleep.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

import redis

HOST = "127.0.0.1"
T = TypeVar("T")


def ask(port: int, *command: str) -> Any:
    """One command to one node on a short-lived connection with decoded replies."""
    with redis.Redis(host=HOST, port=port, socket_timeout=5, socket_connect_timeout=1,
                     decode_responses=True) as client:
        return client.execute_command(*command)


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Polls `check` until it returns something truthy; a timeout names what did not happen and
    the last reason `check` gave (an exception's text) so that a slow CI run is diagnosable."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (redis.exceptions.RedisError, OSError, ValueError) as e:
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: {last!r}")
        time.sleep(interval)


def wait_replicated(primary_ports: list[int], replica_ports: list[int], timeout: float) -> None:
    """Waits until every replica has received everything its primary had when this was called,
    so that a test can kill a primary without losing acknowledged writes to async replication."""
    offsets = {port: ask(port, "INFO", "replication")["master_repl_offset"] for port in primary_ports}

    def caught_up() -> bool:
        for port in replica_ports:
            info = ask(port, "INFO", "replication")
            wanted = offsets.get(info["master_port"], 0)
            if info["master_link_status"] != "up" or info["slave_repl_offset"] < wanted:
                raise ValueError(f"replica {port} is at {info['slave_repl_offset']}, wants {wanted}")
        return True

    wait_until(caught_up, timeout, "replicas to catch up")
