"""Batch ingestion in Feast's layout: a Parquet or CSV file, a pyarrow Table or a pandas DataFrame,
read in chunks and written through feast_write, so a Feast reader can be fed from files.

The same contract as Client.ingest, through the same reader (feast_lua/ingest.py): the columns
are mapped onto the view's join keys, features and timestamp column and their Arrow types checked
before anything is written (SchemaError naming the column and the expected type); others are
ignored and listed. Each chunk is planned in full before it is written, and a chunk with a bad
row is rejected whole, its bad rows reported by 0-based source row number.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, FeastLuaError
from ..ingest import DEFAULT_CHUNK_ROWS, MAX_REPORTED_PER_CHUNK, ON_ERROR, IngestResult, Rejection
from ..ingest_reader import Target, chunks, column_values, open_source
from .write_plan import EVENT_TIMESTAMP, plan_write

if TYPE_CHECKING:
    from .client import FeastLayoutClient


def ingest(client: FeastLayoutClient, view: str, source: Any, timestamp_column: str = EVENT_TIMESTAMP,
           chunk_rows: int = DEFAULT_CHUNK_ROWS, key_ttl: timedelta | None = None,
           on_error: str = "skip") -> IngestResult:
    """See FeastLayoutClient.ingest."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigurationError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if on_error not in ON_ERROR:
        raise ConfigurationError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    spec = client.definitions.view(view)
    target = Target(spec.name, client.definitions.key_types(spec.join_keys), dict(spec.features), "view")
    src, columns, csv = open_source(target, source, timestamp_column)
    result = IngestResult(ignored_columns=columns.ignored)
    for chunk in chunks(src.batches(columns, chunk_rows), chunk_rows):
        start, n = result.rows_read, chunk.num_rows
        result.rows_read += n
        values = [column_values(chunk.column(i), t, csv) for i, t in enumerate(columns.types)]
        rows = [dict(zip(columns.targets, cells)) for cells in zip(*values)]
        try:
            plan = plan_write(client.definitions, view, rows, key_ttl)
        except FeastLuaError:
            result.rejected += n
            result.rejected_chunks.append((start, start + n))
            result.rejections.extend(_bad_rows(client, view, rows, start, key_ttl))
            if on_error == "stop":
                result.stopped = True
                break
            continue
        done = client._write(plan)
        result.written += done.written
        result.skipped += done.skipped
    return result


def _bad_rows(client: FeastLayoutClient, view: str, rows: list[dict], offset: int,
              key_ttl: timedelta | None) -> list[Rejection]:
    bad = []
    for i, row in enumerate(rows):
        try:
            plan_write(client.definitions, view, [row], key_ttl)
        except FeastLuaError as e:
            bad.append(Rejection(offset + i, str(e).replace("row 0 of", f"row {offset + i} of", 1)))
            if len(bad) >= MAX_REPORTED_PER_CHUNK:
                break
    return bad
