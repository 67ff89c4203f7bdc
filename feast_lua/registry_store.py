"""Reads and writes project registries in Redis, and caches them per client.

The cache is checked against the stored version at most every `ttl` seconds (one HGET), and is
refreshed at once when a request names a table or feature the cached copy lacks. Because slots
are never reused, a copy that is a little stale still reads the right bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from . import constants as c
from .errors import RegistryConflictError, ScriptError, UnknownProjectError
from .keys import netstr
from .ops import Command, Flow, run_script
from .registry import ProjectRegistry, empty, merge
from .schema import Entity, FeatureTable, check_name

APPLY_ATTEMPTS = 10


def registry_key(project: str) -> bytes:
    return c.REGISTRY_KEY_PREFIX + netstr(project.encode())


class RegistryStore:
    """The per-client registry cache. Its methods are flows (feast_lua/ops.py): the sync and
    asyncio clients drive the same code."""

    def __init__(self, scripts: dict, ttl: float):
        self.scripts = scripts
        self.ttl = ttl
        self._cache: dict[str, tuple[ProjectRegistry, float]] = {}

    def get(self, project: str, refresh: bool = False) -> Flow:
        """The project's registry; raises UnknownProjectError when none was applied."""
        cached = self._cache.get(project)
        now = time.monotonic()
        if cached and not refresh and now - cached[1] < self.ttl:
            return cached[0]
        if cached:
            version = yield Command(("HGET", registry_key(project), c.REGISTRY_FIELD_VERSION))
            if version is not None and int(version) == cached[0].version:
                self._cache[project] = (cached[0], now)
                return cached[0]
        registry = yield from self.load(project)
        if registry is None:
            self._cache.pop(project, None)
            raise UnknownProjectError(
                f"project {project!r} has no registry in Redis; apply() its entities and tables first"
            )
        self._cache[project] = (registry, now)
        return registry

    def cached(self, project: str) -> ProjectRegistry | None:
        """The cached registry while it is fresh, so the hot path can skip starting a flow."""
        cached = self._cache.get(project)
        if cached and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        return None

    def load(self, project: str) -> Flow:
        check_name("project", project)
        doc = yield Command(("HGET", registry_key(project), c.REGISTRY_FIELD_DOC))
        return None if doc is None else ProjectRegistry.from_json(doc)

    def apply(self, project: str, objects: Iterable[Entity | FeatureTable]) -> Flow:
        """Merges `objects` into the project's registry with compare-and-set, retrying on races."""
        objects = list(objects)
        for _ in range(APPLY_ATTEMPTS):
            current = (yield from self.load(project)) or empty(project)
            updated = merge(current, objects)
            try:
                yield from run_script(self.scripts, "registry_put", [
                    ([registry_key(project)], [current.version, updated.to_json()])
                ])
            except ScriptError as e:
                if c.ERR_CONFLICT in str(e):
                    continue
                raise
            self._cache[project] = (updated, time.monotonic())
            return updated
        raise RegistryConflictError(
            f"the registry of project {project!r} kept changing during {APPLY_ATTEMPTS} attempts"
        )
