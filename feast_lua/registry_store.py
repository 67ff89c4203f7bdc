"""Reads and writes project registries in Redis, and caches them per client.

The cache is checked against the stored version at most every `ttl` seconds (one HGET), and is
refreshed at once when a request names a table or feature the cached copy lacks. Because slots
are never reused, a copy that is a little stale still reads the right bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from . import constants as c
from .errors import RedisUnavailableError, RegistryConflictError, ScriptError, UnknownProjectError
from .keys import netstr
from .loader import ScriptLoader
from .registry import ProjectRegistry, empty, merge
from .schema import Entity, FeatureTable, check_name

APPLY_ATTEMPTS = 10


def registry_key(project: str) -> bytes:
    return c.REGISTRY_KEY_PREFIX + netstr(project.encode())


class RegistryStore:
    def __init__(self, client: redis.Redis, loader: ScriptLoader, ttl: float):
        self.client = client
        self.loader = loader
        self.ttl = ttl
        self._cache: dict[str, tuple[ProjectRegistry, float]] = {}

    def get(self, project: str, refresh: bool = False) -> ProjectRegistry:
        """The project's registry; raises UnknownProjectError when none was applied."""
        cached = self._cache.get(project)
        now = time.monotonic()
        if cached and not refresh and now - cached[1] < self.ttl:
            return cached[0]
        if cached:
            version = self._redis(self.client.hget, registry_key(project), c.REGISTRY_FIELD_VERSION)
            if version is not None and int(version) == cached[0].version:
                self._cache[project] = (cached[0], now)
                return cached[0]
        registry = self.load(project)
        if registry is None:
            self._cache.pop(project, None)
            raise UnknownProjectError(
                f"project {project!r} has no registry in Redis; apply() its entities and tables first"
            )
        self._cache[project] = (registry, now)
        return registry

    def load(self, project: str) -> ProjectRegistry | None:
        check_name("project", project)
        doc = self._redis(self.client.hget, registry_key(project), c.REGISTRY_FIELD_DOC)
        return None if doc is None else ProjectRegistry.from_json(doc)

    def apply(self, project: str, objects: Iterable[Entity | FeatureTable]) -> ProjectRegistry:
        """Merges `objects` into the project's registry with compare-and-set, retrying on races."""
        objects = list(objects)
        for _ in range(APPLY_ATTEMPTS):
            current = self.load(project) or empty(project)
            updated = merge(current, objects)
            try:
                self.loader.call(
                    "registry_put", [registry_key(project)], [current.version, updated.to_json()]
                )
            except ScriptError as e:
                if c.ERR_CONFLICT in str(e):
                    continue
                raise
            self._cache[project] = (updated, time.monotonic())
            return updated
        raise RegistryConflictError(
            f"the registry of project {project!r} kept changing during {APPLY_ATTEMPTS} attempts"
        )

    @staticmethod
    def _redis(method, *args):
        try:
            return method(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable: {e}") from e
