"""Reads the shipped scripts, and runs them on one server: SCRIPT LOAD once, EVALSHA after.

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
from .ops import Call, run_script, run_sync
from .resources import lua_dir


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


def pack_calls(script: LoadedScript, command: str, calls: Sequence[Call],
               indices: Sequence[int] | None = None) -> bytes:
    """The calls (those at `indices`, or all) as one buffer of EVALSHA commands, packed by
    hiredis, which costs a third of redis-py's per-argument packing."""
    chosen = calls if indices is None else [calls[i] for i in indices]
    return b"".join([pack_command((command, script.sha, len(keys), *keys, *args)) for keys, args in chosen])


def check_sha(script: LoadedScript, sha: Any) -> None:
    if isinstance(sha, bytes):
        sha = sha.decode()
    if sha != script.sha:
        raise ScriptError(f"Redis computed SHA {sha} for {script.name}, expected {script.sha}")


class OneServer:
    """What the sync and asyncio transports for one server share.

    With `replica`, read-only scripts (EVALSHA_RO) go to that client, e.g. a replica from
    `Sentinel.slave_for`, and scripts are loaded on both, since SCRIPT LOAD is not replicated.
    """

    slot_of = None  # one server: no hash slots to split by

    def __init__(self, client: Any, scripts: dict[str, LoadedScript] | None = None, replica: Any = None):
        self.client = client
        self.replica = replica
        self.scripts = scripts or load_scripts()

    def target(self, command: str) -> Any:
        """The client a command goes to: the replica for read-only scripts, when there is one."""
        return self.replica if self.replica is not None and command == "EVALSHA_RO" else self.client


class ScriptLoader(OneServer):
    """The blocking transport for one server (feast_lua/ops.py), also usable on its own."""

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.call_many(name, [(keys, args)])[0]

    def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        """Runs several calls of one script in one round trip; each call is atomic on its own."""
        return run_sync(run_script(self.scripts, name, calls), self)

    def send(self, script: LoadedScript, command: str, calls: Sequence[Call]) -> list[Any]:
        """One round trip for all calls: packed by hiredis in one go, sent on one pooled
        connection, with redis-py's retry policy on connection errors. Error replies come back
        as exceptions in the list, in call order."""
        packed = pack_calls(script, command, calls)
        pool = self.target(command).connection_pool
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

    def load(self, script: LoadedScript) -> None:
        for client in (self.client, self.replica):
            if client is None:
                continue
            try:
                sha = client.script_load(script.source)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                raise RedisUnavailableError(f"Redis is unreachable while loading {script.name}: {e}") from e
            check_sha(script, sha)

    def command(self, args: tuple) -> Any:
        try:
            return self.client.execute_command(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable: {e}") from e

    def close(self) -> None:
        self.client.close()
        if self.replica is not None:
            self.replica.close()


def _round_trip(conn: Any, packed: bytes, count: int) -> list[Any]:
    conn.send_packed_command([packed])
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(conn.read_response())
        except redis.exceptions.ResponseError as e:  # raised after its reply was read in full
            replies.append(e)
    return replies
