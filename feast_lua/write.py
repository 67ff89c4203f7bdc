"""Turns rows of one feature table into the write script's KEYS and ARGV.

Every row is checked before any is sent, so a bad row means nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

from .errors import RowError, ValueTypeError
from .keys import KeyEncoder
from .registry import ProjectRegistry, TableSpec
from .registry import key_encoder as registry_key_encoder
from .rows import pack_row
from .values import NIL, encoder, timestamp_us

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
# A row without a created timestamp loses every tie against one that has it.
NO_CREATED_TIMESTAMP = -(2**63)


# The blocking budget for writes: about 2.3 us per row plus 0.22 us per slot inside Redis, much
# of it validating every row before the first is written (docs/PERFORMANCE.md; measured before
# the row checks became cheaper, so an upper bound), so a call of 2,000 rows x 10 features or
# 1,000 x 50 stays under about 20 ms.
DEFAULT_MAX_ROWS_PER_WRITE = 2_000
DEFAULT_MAX_CELLS_PER_WRITE = 50_000
# Big values cost by the byte (about 1.5 ms per MiB here): 8 MiB of packed rows is about 12 ms.
DEFAULT_MAX_BYTES_PER_WRITE = 8 * 1024 * 1024


@dataclass(frozen=True)
class WriteResult:
    written: int
    skipped: int  # rows not newer than what was stored, left untouched


@dataclass(frozen=True)
class WritePlan:
    table: TableSpec
    keys: list[bytes]
    rows: list[bytes]

    def calls(
        self,
        ttl_ms: int = 0,
        max_rows_per_call: int = DEFAULT_MAX_ROWS_PER_WRITE,
        max_cells_per_call: int = DEFAULT_MAX_CELLS_PER_WRITE,
        max_bytes_per_call: int = DEFAULT_MAX_BYTES_PER_WRITE,
    ) -> list[tuple[list[bytes], list]]:
        """The rows, in order, split into write calls of at most max_rows_per_call rows,
        max_cells_per_call (row x slot) cells and max_bytes_per_call packed bytes (a single
        bigger row still goes, alone); each call is atomic."""
        field = self.table.name.encode()
        spans = split_calls([len(row) for row in self.rows], self.table.slots, max_rows_per_call,
                            max_cells_per_call, max_bytes_per_call)
        return [(self.keys[a:b], [field, ttl_ms, *self.rows[a:b]]) for a, b in spans]


def split_calls(row_bytes: Sequence[int], slots: int, max_rows: int, max_cells: int,
                max_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) spans of consecutive rows (of `slots` slots, row_bytes[i] packed bytes each)
    within the write budget: at most max_rows rows, max_cells row x slot cells and max_bytes
    bytes per call, a single bigger row alone. The write and stream_write scripts share it."""
    step = max(1, min(max_rows, max_cells // max(1, slots)))
    spans = []
    start, size = 0, 0
    for i, length in enumerate(row_bytes):
        if i > start and (i - start == step or size + length > max_bytes):
            spans.append((start, i))
            start, size = i, 0
        size += length
    spans.append((start, len(row_bytes)))
    return spans


def plan_write(registry: ProjectRegistry, table: TableSpec, rows: Sequence[Mapping]) -> WritePlan:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise RowError(f"rows must be a list of dicts, got {type(rows).__name__}")
    if not rows:
        raise RowError(f"no rows to write to table {table.name!r}")
    key_encoder = registry_key_encoder(registry, table.key_group)
    columns = [(f.name, f.slot, encoder(f.value_type), f.value_type) for f in table.features.values()]
    allowed = frozenset(table.entities) | set(table.features) | {EVENT_TIMESTAMP, CREATED_TIMESTAMP}
    try:
        return _plan_by_column(table, rows, key_encoder, columns, allowed)
    except Exception:  # noqa: BLE001 - any bad input: the row loop below names the first culprit
        pass
    keys, packed = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RowError(f"row {i} must be a dict, got {type(row).__name__}")
        extra = [k for k in row if k not in allowed]
        if extra:
            raise RowError(f"row {i} has columns {extra} that table {table.name!r} does not have")
        keys.append(key_encoder.key(row, i))
        cells = [NIL] * table.slots
        for name, slot, encode, value_type in columns:
            if name not in row:
                raise RowError(
                    f"row {i} lacks feature {name!r} of table {table.name!r}; pass None for a null"
                )
            try:
                cells[slot] = encode(row[name])
            except (TypeError, ValueError) as e:
                raise ValueTypeError(
                    f"row {i}: feature {name!r} of table {table.name!r} is {value_type.name},"
                    f" got {row[name]!r}: {e}"
                ) from None
        event = _timestamp(row, EVENT_TIMESTAMP, i, required=True)
        created = _timestamp(row, CREATED_TIMESTAMP, i, required=False)
        packed.append(pack_row(event, created, cells))
    return WritePlan(table, keys, packed)


def _plan_by_column(table: TableSpec, rows: Sequence[Mapping], key_encoder: KeyEncoder,
                    columns: list, allowed: frozenset[str]) -> WritePlan:
    """The same plan built a column at a time (list comprehensions instead of a loop per row),
    for well-formed plain dicts; it raises on anything else and plan_write falls back."""
    if set(map(type, rows)) != {dict} or not all(map(allowed.issuperset, rows)):
        raise RowError("not plain dicts of known columns")
    keys = key_encoder.keys(rows)
    by_slot = {slot: [encode(row[name]) for row in rows] for name, slot, encode, _ in columns}
    events = [timestamp_us(row[EVENT_TIMESTAMP]) for row in rows]
    created = [
        NO_CREATED_TIMESTAMP if row.get(CREATED_TIMESTAMP) is None
        else timestamp_us(row[CREATED_TIMESTAMP]) for row in rows
    ]
    cells = zip(*[by_slot.get(slot, repeat(NIL)) for slot in range(table.slots)])
    packed = [pack_row(e, c, row_cells) for e, c, row_cells in zip(events, created, cells)]
    return WritePlan(table, keys, packed)


def _timestamp(row: Mapping, column: str, i: int, required: bool) -> int:
    value = row.get(column)
    if value is None:
        if required:
            raise RowError(f"row {i} lacks {column!r}")
        return NO_CREATED_TIMESTAMP
    try:
        return timestamp_us(value)
    except (TypeError, ValueError) as e:
        raise ValueTypeError(f"row {i}: {column!r} must be a datetime in years 1685-2255: {e}") from None
