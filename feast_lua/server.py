"""A throwaway redis-server on a free loopback port, for the demo and the test suite.

It runs from docker/redis.conf, so tests exercise the configuration users run, with only the
port, the working directory and persistence overridden. The cluster and Sentinel launchers
(cluster_server.py, sentinel_server.py) build on the same class.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import redis

from .resources import redis_conf

# Every started server, so that a crashed test run or a forgotten close() still kills its
# processes and removes its directories when the interpreter exits.
_LIVE: set[RedisServer] = set()

# The cluster bus listens on port + 10000, so a cluster node's port must stay below this.
_MAX_CLUSTER_PORT = 65535 - 10000


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(cluster_bus: bool = False) -> int:
    """A loopback port nothing listens on, chosen by the kernel (bind to port 0) so that servers
    started by other processes on this machine are never hit. With `cluster_bus`, port + 10000
    (the Redis Cluster bus) is free as well."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not cluster_bus or (port <= _MAX_CLUSTER_PORT and _can_bind(port + 10000)):
            return port
    raise RuntimeError("no free loopback port pair (port, port + 10000) found")


def require_binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed; run `bash .ci/setup` or apt-get install redis-server")
    return binary


class RedisServer:
    """Start with `with RedisServer() as server:`; `server.url` is ready to connect."""

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None):
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.dir = Path(tempfile.mkdtemp(prefix="feast-lua-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The command line; a server of another kind (a Sentinel) overrides it. The server
        runs from its own copy of docker/redis.conf: CONFIG REWRITE, which Sentinel sends
        after every failover, would otherwise rewrite the repository's file."""
        conf = self.dir / "redis.conf"
        if not conf.exists():
            shutil.copyfile(redis_conf(), conf)
        return [require_binary("redis-server"), str(conf), "--port", str(self.port),
                "--dir", str(self.dir), "--appendonly", "no", "--save", "", "--daemonize", "no",
                *self.extra_args]

    def start(self) -> RedisServer:
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        _LIVE.add(self)
        self._wait_ready()
        return self

    def probe_client(self) -> redis.Redis:
        """The client that checks the server is up; a server with TLS or ACLs overrides it."""
        return redis.Redis(port=self.port, socket_connect_timeout=0.2)

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = self.probe_client()
        try:
            while True:
                if self.process and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server dies at once without a goodbye, as a crashed host looks to its peers."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stops and starts on the same port: the script cache is gone afterwards."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_on_free_port(make: Callable[[int], RedisServer], cluster_bus: bool = False,
                       attempts: int = 5) -> RedisServer:
    """Starts `make(port)` on a free port, trying another one if the port was taken between
    choosing it and binding it (other engineers' servers share this machine)."""
    for attempt in range(attempts):
        server = make(free_port(cluster_bus))
        try:
            return server.start()
        except (RuntimeError, redis.exceptions.ConnectionError):
            server.close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def close_all(servers: list[RedisServer]) -> None:
    """Closes many servers at once: all are sent SIGTERM first, so their shutdowns overlap."""
    for server in servers:
        if server.alive:
            server.process.terminate()
    for server in servers:
        server.close()


@atexit.register
def _close_leftovers() -> None:
    close_all(list(_LIVE))
