"""Decodes the read script's replies into a Feast-style response.

The reply is row-major (docs/PROTOCOL.md), so one feature's column is a strided slice of the flat
lists, which Python does in C. Statuses and timestamps stay packed bytes until someone asks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack

from .constants import STATUS_NOT_FOUND
from .errors import ScriptError
from .types import FieldStatus
from .values import from_us

if TYPE_CHECKING:  # pragma: no cover - the plan's module imports this one's splitter
    from .request import ReadPlan

_STATUS_BY_NUMBER = {s.value: s for s in FieldStatus}
_STATUS_AT = tuple(_STATUS_BY_NUMBER[n] for n in range(max(_STATUS_BY_NUMBER) + 1)).__getitem__


def _status_list(codes: bytes) -> list[FieldStatus]:
    # A column is usually one status throughout (all PRESENT), which takes one C-level count.
    if codes and codes.count(codes[0]) == len(codes):
        return [_STATUS_AT(codes[0])] * len(codes)
    return list(map(_STATUS_AT, codes))


@dataclass(frozen=True)
class FieldValues:
    """One entity row's join keys and values, and its statuses by ref, as Feast 0.x's FieldValues."""

    fields: dict[str, Any]
    statuses: dict[str, FieldStatus]


class ReplyPart(NamedTuple):
    """One read call's reply, decoded (docs/PROTOCOL.md, "Read reply")."""

    now_us: int
    statuses: bytes  # one byte per cell, row-major
    stamps: bytes  # 8 bytes per (row, table)
    values: list[Any]  # one per cell, row-major

    def rows(self, refs: int) -> int:
        return len(self.statuses) // refs


def decode_reply(reply: bytes) -> ReplyPart:
    try:
        return ReplyPart(*msgpack.unpackb(reply, timestamp=3))
    except Exception as e:  # anything but our reply shape
        raise ScriptError(f"read script returned an unexpected reply: {e!r}") from e


class GetOnlineFeaturesResponse:
    FieldStatus = FieldStatus

    def __init__(self, plan: ReadPlan, parts: Sequence[ReplyPart]):
        """`parts` are the decoded replies of the request's calls, in entity row order."""
        self._setup(plan.ref_plan.names, plan.ref_tables, len(plan.tables), plan.entity_rows, parts)

    @classmethod
    def from_parts(
        cls,
        refs: Sequence[str],
        ref_tables: Sequence[int],
        tables: int,
        entity_rows: Sequence[Mapping[str, object]],
        parts: Sequence[ReplyPart],
    ) -> GetOnlineFeaturesResponse:
        """A response from replies in the read reply's shape, whatever planned them: the Feast
        layout's reader (feast_layout/) plans its own requests and decodes its values first."""
        response = cls.__new__(cls)
        response._setup(refs, ref_tables, tables, entity_rows, parts)
        return response

    def _setup(
        self,
        refs: Sequence[str],
        ref_tables: Sequence[int],
        tables: int,
        entity_rows: Sequence[Mapping[str, object]],
        parts: Sequence[ReplyPart],
    ) -> None:
        self._refs = list(refs)
        self._ref_tables = ref_tables
        self._tables = tables
        self._entity_rows = entity_rows
        self.server_time_us: int = parts[-1].now_us
        self._statuses = b"".join([p.statuses for p in parts])
        self._stamps = b"".join([p.stamps for p in parts])
        if len(parts) == 1:
            self._values = parts[0].values
        else:
            self._values = [v for p in parts for v in p.values]

    @property
    def feature_refs(self) -> list[str]:
        return list(self._refs)

    def __len__(self) -> int:
        return len(self._entity_rows)

    def to_dict(
        self, include_statuses: bool = False, include_event_timestamps: bool = False
    ) -> dict[str, Any]:
        """Column lists in request order: entity columns, then one list per ref."""
        rows = self._entity_rows
        out: dict[str, Any] = {name: [row.get(name) for row in rows] for name in rows[0]}
        width = len(self._refs)
        for f, ref in enumerate(self._refs):
            out[ref] = self._values[f::width]
        if include_statuses:
            out["statuses"] = self.statuses()
        if include_event_timestamps:
            out["event_timestamps"] = self.event_timestamps()
        return out

    def statuses(self) -> dict[str, list[FieldStatus]]:
        width = len(self._refs)
        return {ref: _status_list(self._statuses[f::width]) for f, ref in enumerate(self._refs)}

    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Per ref and row: the stored event timestamp, None where nothing is stored (NOT_FOUND)."""
        count = len(self._stamps) // 8
        stamps = struct.unpack(f">{count}q", self._stamps)
        width, tables = len(self._refs), self._tables
        out = {}
        for f, ref in enumerate(self._refs):
            t = self._ref_tables[f]
            out[ref] = [
                None if s == STATUS_NOT_FOUND else from_us(stamps[r * tables + t])
                for r, s in enumerate(self._statuses[f::width])
            ]
        return out

    @property
    def field_values(self) -> list[FieldValues]:
        """Row by row, as Feast 0.x's response.field_values."""
        width = len(self._refs)
        out = []
        for r in range(len(self._entity_rows)):
            cells = self._values[r * width : (r + 1) * width]
            codes = self._statuses[r * width : (r + 1) * width]
            out.append(FieldValues(
                {**self._entity_rows[r], **dict(zip(self._refs, cells))},
                {ref: _STATUS_BY_NUMBER[s] for ref, s in zip(self._refs, codes)},
            ))
        return out

    def __repr__(self) -> str:
        return f"<GetOnlineFeaturesResponse rows={len(self)} refs={self._refs}>"


OnlineResponse = GetOnlineFeaturesResponse

