"""The clients a behavioural test runs against: sync or asyncio, on one server or a cluster.

Modules that set EVERY_CLIENT = True get each test once per variant (conftest.py). Tests are
written against the sync API; `AsyncDriver` runs the asyncio client's coroutines on its own
event loop, so the same test body checks both clients.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import redis.asyncio
import redis.asyncio.cluster

import feast_lua.asyncio
from feast_lua import Client, FeastLayoutClient

FLAVORS = ("sync", "async")
TOPOLOGIES = ("standalone", "cluster")


class AsyncDriver:
    """A feast_lua.asyncio.Client behind the sync API: each coroutine method is run to the end."""

    def __init__(self, *args: Any, factory: Any = feast_lua.asyncio.Client, **kwargs: Any):
        """`factory(*args, **kwargs)` makes the asyncio client, inside this driver's loop."""
        self.loop = asyncio.new_event_loop()

        async def make() -> feast_lua.asyncio.Client:
            return factory(*args, **kwargs)

        self.client = self.loop.run_until_complete(make())

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        return lambda *args, **kwargs: self.loop.run_until_complete(attribute(*args, **kwargs))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("loop", "client"):
            object.__setattr__(self, name, value)
        else:  # limits such as max_cells_per_call live on the shared core
            setattr(self.client._core, name, value)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.client.close())
            self.loop.close()

    def __enter__(self) -> AsyncDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_client(flavor: str, topology: str, url: str, **kwargs: Any) -> Any:
    cluster = topology == "cluster"
    if flavor == "sync":
        return Client(url, cluster=cluster, **kwargs)
    return AsyncDriver(url, cluster=cluster, **kwargs)


def make_feast_client(variant: tuple[str, str], url: str, definitions: Any, **kwargs: Any) -> Any:
    """A FeastLayoutClient of the variant: sync, or asyncio behind AsyncDriver."""
    topology, flavor = variant
    if flavor == "sync":
        return FeastLayoutClient(definitions, url, **kwargs)

    def factory() -> feast_lua.asyncio.FeastLayoutClient:
        if topology == "cluster":
            connection: Any = redis.asyncio.cluster.RedisCluster.from_url(url)
        else:
            connection = redis.asyncio.Redis.from_url(url)
        return feast_lua.asyncio.FeastLayoutClient(definitions, connection, **kwargs)

    return AsyncDriver(factory=factory)
