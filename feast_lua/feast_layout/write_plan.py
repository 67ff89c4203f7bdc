"""Turns rows of one feature view into feast_write's KEYS and ARGV (docs/PROTOCOL.md,
"Feast layout"). Every row is validated and encoded before the first call is sent, so a bad row
means nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import RowError, ValueTypeError
from .definitions import FeastDefinitions
from .keys import FeastKeyEncoder
from .murmur import feature_field, timestamp_field
from .proto import value_encoder
from .timestamp import timestamp_from_datetime

EVENT_TIMESTAMP = "event_timestamp"
DEFAULT_MAX_ROWS_PER_WRITE = 2000
DEFAULT_MAX_CELLS_PER_WRITE = 50_000


@dataclass(frozen=True)
class FeastWritePlan:
    keys: list[bytes]
    head: list[object]  # ts field, key TTL s, F, F fields
    rows: list[list[bytes]]  # per row: Timestamp proto, F Value protos

    @property
    def row_width(self) -> int:
        """ARGV per row: its Timestamp, then one Value per feature."""
        return len(self.head) - 2

    def calls(self, max_rows: int = DEFAULT_MAX_ROWS_PER_WRITE,
              max_cells: int = DEFAULT_MAX_CELLS_PER_WRITE) -> list[tuple[list[bytes], list[object]]]:
        features = len(self.head) - 3
        step = max(1, min(max_rows, max_cells // (1 + features)))
        out = []
        for i in range(0, len(self.keys), step):
            args = list(self.head)
            for row in self.rows[i : i + step]:
                args += row
            out.append((self.keys[i : i + step], args))
        return out


def key_ttl_seconds(key_ttl: timedelta | None) -> int:
    """Feast's key_ttl_seconds: whole seconds, at least 1; None leaves keys' TTLs alone."""
    if key_ttl is None:
        return 0
    if not isinstance(key_ttl, timedelta) or key_ttl <= timedelta(0):
        raise ValueTypeError(f"key_ttl must be a positive timedelta or None, got {key_ttl!r}")
    return max(1, math.ceil(key_ttl.total_seconds()))


def plan_write(definitions: FeastDefinitions, view_name: str, rows: Sequence[Mapping[str, object]],
               key_ttl: timedelta | None = None) -> FeastWritePlan:
    view = definitions.view(view_name)
    ttl_s = key_ttl_seconds(key_ttl)
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise RowError(f"rows must be a list of dicts, got {type(rows).__name__}")
    names = list(view.features)
    encoders = [value_encoder(view.features[n]) for n in names]
    key_encoder = FeastKeyEncoder(definitions.project, definitions.key_types(view.join_keys))
    expected = set(view.join_keys) | set(names) | {EVENT_TIMESTAMP}
    keys, packed = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RowError(f"row {i} of {view.name!r} is a {type(row).__name__}, not a dict")
        if row.keys() != expected:
            missing = sorted(expected - row.keys())
            extra = sorted(set(row.keys()) - expected)
            raise RowError(f"row {i} of {view.name!r}: " + "; ".join(
                ([f"lacks {missing} (use None for a null)"] if missing else [])
                + ([f"has columns the view lacks: {extra}"] if extra else [])))
        keys.append(key_encoder.key(row, i))
        event = row[EVENT_TIMESTAMP]
        if not isinstance(event, datetime):
            raise ValueTypeError(f"row {i} of {view.name!r}: event_timestamp must be a datetime,"
                                 f" got {type(event).__name__} {event!r}")
        cells = [timestamp_from_datetime(event)]
        for name, encode in zip(names, encoders):
            try:
                cells.append(encode(row[name]))
            except (TypeError, ValueError, OverflowError) as e:
                raise ValueTypeError(f"row {i} of {view.name!r}, feature {name!r}"
                                     f" ({view.features[name].name}): {e}") from None
        packed.append(cells)
    if not keys:
        raise RowError(f"no rows to write to {view.name!r}")
    head: list[object] = [timestamp_field(view.name), ttl_s, len(names),
                          *[feature_field(view.name, n) for n in names]]
    return FeastWritePlan(keys, head, packed)
