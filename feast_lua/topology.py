"""Splits script calls so that each one's keys share a hash slot, and puts the replies back in
request order. On one server nothing is split and the calls go as planned.

A read call covers whole entity rows, and on one server it is atomic over all of them. On a
cluster each call covers the rows whose keys hash to one slot, so a read is atomic per slot
group; each entity is still atomic, since all its tables sit in one hash (docs/CLUSTER.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .errors import ScriptError
from .ops import Call, Flow, run_script
from .response import ReplyPart, decode_reply

SlotOf = Callable[[bytes], int]
ReadCall = tuple[list[int], list[bytes], list]  # (entity row indices, KEYS, ARGV)


@dataclass(frozen=True)
class ReadShape:
    """What splitting and reassembling a read needs to know of its plan. Both read scripts
    (read, feast_read) take the same ARGV layout: G, T, T x (field, group, max age), F,
    F x (table, field or slot), so one splitter serves both layouts."""

    script: str
    args: list  # ARGV, the same for every call of the request
    refs: int  # F
    groups: int  # G, keys per entity row
    tables: int  # T

    @cached_property
    def by_group(self) -> list[tuple[ReadShape, list[int], list[int]]]:
        """One shape per key group, with the refs and tables (0-based, in this request) it
        covers: on a cluster one row's keys of different groups sit in different slots, so each
        group is read on its own and the columns are put back together."""
        t_count, f_at = self.tables, 2 + 3 * self.tables  # ARGV index of F, 0-based
        table_group = [int(self.args[2 + 3 * t + 1]) - 1 for t in range(t_count)]
        ref_table = [int(self.args[f_at + 1 + 2 * f]) - 1 for f in range(self.refs)]
        out = []
        for g in range(self.groups):
            tables = [t for t in range(t_count) if table_group[t] == g]
            local = {t: i for i, t in enumerate(tables)}
            refs = [f for f in range(self.refs) if ref_table[f] in local]
            args: list = [1, len(tables)]
            for t in tables:
                args += [self.args[2 + 3 * t], 1, self.args[2 + 3 * t + 2]]
            args.append(len(refs))
            for f in refs:
                args += [local[ref_table[f]] + 1, self.args[f_at + 2 + 2 * f]]
            out.append((ReadShape(self.script, args, len(refs), 1, len(tables)), refs, tables))
        return out


def read(scripts: dict, shape: ReadShape, keys: list[bytes], n: int, slot_of: SlotOf | None,
         max_cells: int, max_keys: int) -> Flow:
    """The decoded replies for all `n` entity rows (KEYS row-major, `shape.groups` per row), in
    row order."""
    if slot_of is None:
        calls = budget(shape, list(range(n)), keys, max_cells, max_keys)
        return (yield from _run(scripts, shape, calls))
    groups = shape.groups
    slots = [slot_of(k) for k in keys]
    if groups == 1 or all(len(set(slots[r * groups:(r + 1) * groups])) == 1 for r in range(n)):
        part = yield from _read_by_slot(scripts, shape, keys, slots[::groups], n, max_cells, max_keys)
        return [part]
    # Key groups in different slots: each group is its own request, and the columns are merged.
    parts = []
    for g, (sub, _refs, _tables) in enumerate(shape.by_group):
        parts.append((yield from _read_by_slot(scripts, sub, keys[g::groups], slots[g::groups], n,
                                               max_cells, max_keys)))
    return [_merge_groups(shape, parts, n)]


def split_writes(calls: Sequence[Call], slot_of: SlotOf | None, head: int, width: int = 1) -> list[Call]:
    """Write calls whose rows share a slot. ARGV is `head` shared arguments, then `width` per
    key; the rows of one key keep their order, so newest-wins applies them as on one server."""
    if slot_of is None:
        return list(calls)
    out = []
    for keys, args in calls:
        by_slot: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_slot.setdefault(slot_of(key), []).append(i)
        shared = list(args[:head])
        for rows in by_slot.values():
            out.append(([keys[i] for i in rows],
                        shared + [a for i in rows for a in args[head + i * width:head + (i + 1) * width]]))
    return out


def _read_by_slot(scripts: dict, shape: ReadShape, keys: list[bytes], row_slots: list[int], n: int,
                  max_cells: int, max_keys: int) -> Flow:
    groups = shape.groups
    rows_by_slot: dict[int, list[int]] = {}
    for r, slot in enumerate(row_slots):
        rows_by_slot.setdefault(slot, []).append(r)
    calls: list[ReadCall] = []
    for rows in rows_by_slot.values():
        row_keys = [keys[r * groups + g] for r in rows for g in range(groups)]
        calls += budget(shape, rows, row_keys, max_cells, max_keys)
    parts = yield from _run(scripts, shape, calls, keep_rows=True)
    return _reassemble(shape, parts, n)


def budget(shape: ReadShape, rows: list[int], keys: list[bytes], max_cells: int,
            max_keys: int) -> list[ReadCall]:
    """Whole entity rows per call, within both limits; at least one row per call."""
    groups = shape.groups
    per_call = max(1, min(max_cells // shape.refs, max_keys // groups))
    args = shape.args
    return [(rows[i:i + per_call], keys[i * groups:(i + per_call) * groups], args)
            for i in range(0, len(rows), per_call)]


def _run(scripts: dict, shape: ReadShape, calls: list[ReadCall], keep_rows: bool = False) -> Flow:
    """Runs read calls; a call whose values passed the script's byte budget answers for its
    first rows only, and the rest is asked for again. Parts come back per call, in order."""
    refs, groups = shape.refs, shape.groups
    parts: list[list[tuple[list[int], ReplyPart]]] = [[] for _ in calls]
    pending = list(enumerate(calls))
    while pending:
        replies = yield from run_script(scripts, shape.script,
                                        [(keys, args) for _, (_, keys, args) in pending])
        unfinished = []
        for (index, (rows, keys, args)), reply in zip(pending, replies):
            part = decode_reply(reply)
            done = part.rows(refs)
            if done == 0:
                raise ScriptError(f"the {shape.script} script answered for no entity row of a call")
            parts[index].append((rows[:done], part))
            if done < len(rows):
                unfinished.append((index, (rows[done:], keys[done * groups:], args)))
        pending = unfinished
    flat = [item for call_parts in parts for item in call_parts]
    return flat if keep_rows else [part for _, part in flat]


def _reassemble(shape: ReadShape, parts: list[tuple[list[int], ReplyPart]], n: int) -> ReplyPart:
    """One part for all n rows, in row order, from parts that each cover some rows."""
    width, stamp_width = shape.refs, 8 * shape.tables
    statuses = bytearray(n * width)
    stamps = bytearray(n * stamp_width)
    values: list[Any] = [None] * (n * width)
    for rows, part in parts:
        for j, r in enumerate(rows):
            statuses[r * width:(r + 1) * width] = part.statuses[j * width:(j + 1) * width]
            values[r * width:(r + 1) * width] = part.values[j * width:(j + 1) * width]
            stamps[r * stamp_width:(r + 1) * stamp_width] = part.stamps[j * stamp_width:(j + 1) * stamp_width]
    now_us = max(part.now_us for _, part in parts)
    return ReplyPart(now_us, bytes(statuses), bytes(stamps), values)


def _merge_groups(shape: ReadShape, parts: list[ReplyPart], n: int) -> ReplyPart:
    """Puts the columns of per-key-group parts (all n rows each) back in the request's order."""
    width, tables = shape.refs, shape.tables
    statuses = bytearray(n * width)
    values: list[Any] = [None] * (n * width)
    stamps: list[bytes] = [b""] * (n * tables)
    for (_sub, refs, sub_tables), part in zip(shape.by_group, parts):
        sub_width, sub_count = len(refs), len(sub_tables)
        for j, f in enumerate(refs):
            statuses[f::width] = part.statuses[j::sub_width]
            values[f::width] = part.values[j::sub_width]
        cells = [part.stamps[i:i + 8] for i in range(0, len(part.stamps), 8)]
        for j, t in enumerate(sub_tables):
            stamps[t::tables] = cells[j::sub_count]
    return ReplyPart(max(p.now_us for p in parts), bytes(statuses), b"".join(stamps), values)
