"""The fixed set of scripts, with the contract each one states in its header.

The manifest (lua/manifest.json) is generated from this list, so other languages can find each
script's file, SHA and arity without parsing Lua.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScriptSpec:
    name: str
    read_only: bool
    keys: str
    argv: str
    reply: str


SCRIPTS: tuple[ScriptSpec, ...] = (
    ScriptSpec(
        name="read",
        read_only=True,
        keys="N*G: one entity key per entity row and key group, row-major",
        argv="3 + 3*T + 2*F: G, T, T x (field, group, max_age_us), F, F x (table, slot)",
        reply="msgpack [now_us, statuses bin N*F, event_ts bin 8*N*T, values array N*F]",
    ),
    ScriptSpec(
        name="write",
        read_only=False,
        keys="N: one entity key per row",
        argv="2 + N: field, key_ttl_ms, N packed rows",
        reply="[written, skipped]",
    ),
    ScriptSpec(
        name="stream_write",
        read_only=False,
        keys="1 + N: the stream key, then one entity key per event",
        argv="4 + 2*N: group, field, key_ttl_ms, N, N event ids, N packed rows",
        reply="[written, skipped, acked, not_pending]",
    ),
    ScriptSpec(
        name="registry_put",
        read_only=False,
        keys="1: the project's registry key",
        argv="2: expected version, JSON document",
        reply="the new version",
    ),
    ScriptSpec(
        name="feast_read",
        read_only=True,
        keys="N*G: one Feast-layout entity key per entity row and key group, row-major",
        argv="3 + 3*V + 2*F: G, V, V x (ts field, group, ttl_us), F, F x (view, murmur3 field)",
        reply="msgpack [now_us, statuses bin N*F, event_ts bin 8*N*V, values array N*F of Value proto bins]",
    ),
    ScriptSpec(
        name="feast_write",
        read_only=False,
        keys="N: one Feast-layout entity key per row",
        argv="3 + F + N*(1+F): ts field, key_ttl_s, F, F fields, N x (Timestamp proto, F Value protos)",
        reply="[written, skipped]",
    ),
)
