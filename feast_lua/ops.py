"""The I/O a request needs, as values: the one place the sync and asyncio clients differ.

Every piece of client logic (planning, the NOSCRIPT recovery, splitting by slot, reassembling
replies, the registry cache) is a generator that yields these operations and is sent their
results. `run_sync` drives it over a blocking transport; feast_lua/asyncio/ drives the same
generator over an asyncio transport. So there is one copy of the logic, and two of the I/O.

A transport implements three methods, named after the operations:
  send(script, command, calls) -> one reply per call, error replies as exception objects
  load(script)                 -> None: SCRIPT LOAD on every node the script may run on
  command(args)                -> the reply of one plain command (routed by its key on a cluster)
and `slot_of`, None for one server, else a function from key to cluster hash slot.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from .errors import ScriptError

Call = tuple[Sequence[Any], Sequence[Any]]  # (KEYS, ARGV)
# NOSCRIPT -> SCRIPT LOAD -> send again, at most this many times in all: one reload covers a
# restart or a failover; a few more ride out SCRIPT FLUSH repeated during the reload.
NOSCRIPT_ATTEMPTS = 8


@dataclass(frozen=True)
class Send:
    """Run `calls` of one script, in one round trip per node; each call is atomic on its own."""

    script: Any  # loader.LoadedScript
    command: str  # EVALSHA or EVALSHA_RO
    calls: Sequence[Call]


@dataclass(frozen=True)
class Load:
    script: Any


@dataclass(frozen=True)
class Command:
    args: tuple


Flow = Generator[Any, Any, Any]


def run_script(scripts: dict, name: str, calls: Sequence[Call]) -> Flow:
    """Runs calls of a shipped script by SHA, loading it where a node answers NOSCRIPT."""
    script = scripts[name]
    # EVALSHA_RO for read-only scripts: ACLs can grant it alone and replicas accept it.
    command = "EVALSHA_RO" if script.read_only else "EVALSHA"
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(NOSCRIPT_ATTEMPTS):
        replies = yield Send(script, command, [calls[i] for i in pending])
        retry = []
        for i, reply in zip(pending, replies):
            if isinstance(reply, redis.exceptions.NoScriptError) and attempt < NOSCRIPT_ATTEMPTS - 1:
                retry.append(i)
            elif isinstance(reply, Exception):
                raise script_error(name, reply) from reply
            else:
                results[i] = reply
        if not retry:
            return results
        yield Load(script)
        pending = retry
    raise AssertionError("unreachable")  # pragma: no cover


def run_sync(flow: Flow, transport: Any) -> Any:
    """Drives a flow over a blocking transport until it returns."""
    try:
        op = next(flow)
        while True:
            op = flow.send(execute(transport, op))
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()


def execute(transport: Any, op: Any) -> Any:
    """Hands one operation to the transport: a result, or an awaitable on asyncio transports."""
    kind = type(op)
    if kind is Send:
        return transport.send(op.script, op.command, op.calls)
    if kind is Command:
        return transport.command(op.args)
    if kind is Load:
        return transport.load(op.script)
    raise TypeError(f"unknown operation {op!r}")  # pragma: no cover


def script_error(name: str, error: Exception) -> ScriptError:
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        # Redis refuses a script that may write before running it, so this call wrote nothing;
        # the read script (flagged no-writes) keeps working.
        return ScriptError(
            f"script {name!r} refused: Redis is out of memory (used memory > maxmemory, and"
            f" maxmemory-policy noeviction never drops features); this call wrote nothing and"
            f" reads keep working. Free memory or raise maxmemory. Redis said: {error}"
        )
    return ScriptError(f"script {name!r} failed: {error}")
