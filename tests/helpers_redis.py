"""Helpers shared by the reliability and security tests: keyspace snapshots, example counts, and
reading figures out of a real redis-server."""

from __future__ import annotations

import os

import redis


def examples(default: int) -> int:
    """Hypothesis example count: `default` in the suite, scaled by FEAST_LUA_EXAMPLES_SCALE for
    the long forms (stress/fuzz.py sets it)."""
    return max(1, int(default * float(os.environ.get("FEAST_LUA_EXAMPLES_SCALE", "1"))))


def snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key with its serialized value (DUMP) and TTL: equal snapshots mean an unchanged
    keyspace, values, types and expiries included."""
    return {key: (client.dump(key), client.pttl(key) > 0) for key in client.scan_iter(count=1000)}


def cached_scripts(client: redis.Redis) -> int:
    return int(client.info("memory")["number_of_cached_scripts"])


def script_calls(client: redis.Redis) -> dict[str, int]:
    """Successful calls per script command since the last CONFIG RESETSTAT (a call answered
    NOSCRIPT counts as failed, and its resend as another call)."""
    stats = client.info("commandstats")
    out = {}
    for name in ("eval", "eval_ro", "evalsha", "evalsha_ro", "fcall", "fcall_ro"):
        stat = stats.get(f"cmdstat_{name}", {})
        out[name] = stat.get("calls", 0) - stat.get("failed_calls", 0)
    return out
