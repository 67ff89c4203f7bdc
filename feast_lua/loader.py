"""Runs the shipped scripts by SHA: SCRIPT LOAD once per server, EVALSHA after, NOSCRIPT recovered.

redis-py's `Script` objects would do the retry for single calls, but they have no EVALSHA_RO and
pre-check pipelines with SCRIPT EXISTS, an extra round trip per request. This loader keeps the
same idea (the SHA is computed locally, the body is sent only after a NOSCRIPT) and adds both.
It packs commands with hiredis directly, which costs a third of redis-py's per-argument packing,
and keeps redis-py's connection pool and retry policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from hiredis import pack_command

from .catalogue import SCRIPTS
from .errors import RedisUnavailableError, ScriptError
from .resources import lua_dir

Call = tuple[Sequence[Any], Sequence[Any]]  # (KEYS, ARGV)
# NOSCRIPT -> SCRIPT LOAD -> send again, at most this many times in all: one reload covers a
# restart or a failover; a few more ride out SCRIPT FLUSH repeated during the reload.
NOSCRIPT_ATTEMPTS = 4


@dataclass(frozen=True)
class LoadedScript:
    name: str
    source: bytes
    sha: str
    read_only: bool


def load_scripts(folder: Path | None = None) -> dict[str, LoadedScript]:
    """Reads lua/ and checks each file against the manifest, so a hand-edited file is caught."""
    folder = folder or lua_dir()
    manifest = json.loads((folder / "manifest.json").read_text())["scripts"]
    scripts = {}
    for spec in SCRIPTS:
        source = (folder / f"{spec.name}.lua").read_bytes()
        sha = hashlib.sha1(source).hexdigest()
        expected = manifest[spec.name]["sha1"]
        if sha != expected:
            raise ScriptError(f"lua/{spec.name}.lua has SHA-1 {sha}, but lua/manifest.json says"
                              f" {expected}; re-render it (python -m feast_lua.render)")
        scripts[spec.name] = LoadedScript(spec.name, source, sha, spec.read_only)
    return scripts


class ScriptLoader:
    """Calls scripts on one redis-py client, standalone or a pipeline-capable connection."""

    def __init__(self, client: redis.Redis, scripts: dict[str, LoadedScript] | None = None):
        self.client = client
        self.scripts = scripts or load_scripts()

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.call_many(name, [(keys, args)])[0]

    def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        """Runs several calls of one script in one round trip; each call is atomic on its own."""
        script = self.scripts[name]
        # EVALSHA_RO for read-only scripts: ACLs can grant it alone and replicas accept it.
        command = "EVALSHA_RO" if script.read_only else "EVALSHA"
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(NOSCRIPT_ATTEMPTS):
            replies = self._send(script, command, [calls[i] for i in pending])
            retry = []
            for i, reply in zip(pending, replies):
                if isinstance(reply, redis.exceptions.NoScriptError) and attempt < NOSCRIPT_ATTEMPTS - 1:
                    retry.append(i)
                elif isinstance(reply, Exception):
                    raise _script_error(name, reply) from reply
                else:
                    results[i] = reply
            if not retry:
                return results
            self._load(script)
            pending = retry
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        """One round trip for all calls: packed by hiredis in one go, sent on one pooled
        connection, with redis-py's retry policy on connection errors. Error replies come back
        as exceptions in the list, in call order."""
        packed = b"".join([
            pack_command((command, script.sha, len(keys), *keys, *args)) for keys, args in calls
        ])
        pool = self.client.connection_pool
        try:
            # get_connection() connects when the pool has no live connection, so it fails too.
            conn = pool.get_connection()
            try:
                return conn.retry.call_with_retry(
                    lambda: _round_trip(conn, packed, len(calls)), lambda _error: conn.disconnect()
                )
            finally:
                pool.release(conn)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable while running {script.name}: {e}") from e

    def _load(self, script: LoadedScript) -> None:
        try:
            sha = self.client.script_load(script.source)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable while loading {script.name}: {e}") from e
        if sha != script.sha:
            raise ScriptError(f"Redis computed SHA {sha} for {script.name}, expected {script.sha}")


def _round_trip(conn: Any, packed: bytes, count: int) -> list[Any]:
    conn.send_packed_command([packed])
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(conn.read_response())
        except redis.exceptions.ResponseError as e:  # raised after its reply was read in full
            replies.append(e)
    return replies


def _script_error(name: str, error: Exception) -> ScriptError:
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        # Redis refuses a script that may write before running it, so this call wrote nothing;
        # the read script (flagged no-writes) keeps working.
        return ScriptError(
            f"script {name!r} refused: Redis is out of memory (used memory > maxmemory, and"
            f" maxmemory-policy noeviction never drops features); this call wrote nothing and"
            f" reads keep working. Free memory or raise maxmemory. Redis said: {error}"
        )
    return ScriptError(f"script {name!r} failed: {error}")
