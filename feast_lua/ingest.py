"""Batch ingestion: Parquet and CSV files, pandas DataFrames and pyarrow Tables, newest-wins.

Needs the `files` extra (pyarrow; tqdm for the progress bar; pandas for DataFrames). The source
is read in chunks of `chunk_rows` rows (Parquet's `iter_batches`, CSV's streaming `open_csv`), so
memory stays bounded whatever the file's size. Each chunk is packed from its Arrow columns
(pack_arrow, whole columns per step) into the bytes `write_rows` would store; a chunk with a bad
or unusual value takes the row loop instead (plain rows through `plan_write`), which names the
bad rows. While Redis writes chunk n (on one background thread), chunk n+1 is read and packed.

Policy:
- The source's columns are checked against the table spec before anything is written: a missing
  join key, timestamp or feature column, or a column whose Arrow type cannot hold the feature's
  value type, raises SchemaError naming the column and the expected type. Columns the table does
  not have are ignored (listed in `IngestResult.ignored_columns`).
- A chunk is planned in full before its first write call. A chunk holding a bad row (a value of
  the wrong type or range, a null join key or timestamp) is rejected whole: none of its rows is
  written, every bad row is reported with its 0-based row number in the source, and ingestion
  goes on with the next chunk (on_error="skip", the default) or stops (on_error="stop").
- Nulls and NaN are stored as null. In a CSV, an empty cell (or one of Arrow's null spellings
  such as NULL or NaN) is a null; CSV cells are parsed into the feature's type per chunk, and an
  unparsable cell is a bad row.
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, FeastLuaError
from .ingest_reader import Columns, arrow, chunks, column_values, csv_target, open_source, table_target
from .types import ValueType
from .write import EVENT_TIMESTAMP, WritePlan, WriteResult, plan_write

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

DEFAULT_CHUNK_ROWS = 10_000
ON_ERROR = ("skip", "stop")
MAX_REPORTED_PER_CHUNK = 100  # bad rows listed per rejected chunk; the count covers them all


@dataclass(frozen=True)
class Rejection:
    row: int  # 0-based row number in the source
    reason: str


@dataclass
class IngestResult:
    rows_read: int = 0
    written: int = 0
    skipped: int = 0  # not newer than the stored row, left untouched inside Redis
    rejected: int = 0  # rows of rejected chunks, bad or not
    rejections: list[Rejection] = field(default_factory=list)  # the bad rows and why
    rejected_chunks: list[tuple[int, int]] = field(default_factory=list)  # [start, stop) rows
    ignored_columns: list[str] = field(default_factory=list)
    stopped: bool = False  # on_error="stop" ended the ingest at a rejected chunk

    def summary(self) -> str:
        text = (f"rows read {self.rows_read}, written {self.written}, skipped as older"
                f" {self.skipped}, rejected {self.rejected}")
        if self.rejected_chunks:
            text += f" ({len(self.rejected_chunks)} chunk(s))"
        if self.stopped:
            text += "; stopped at the first rejected chunk"
        return text


# ------------------------------------------------------------------------------------------------
# The ingest loop
# ------------------------------------------------------------------------------------------------


_ROW_REF = re.compile(r"\b(entity )?row (\d+)\b")


def _renumber(message: str, offset: int, columns: Columns) -> str:
    """plan_write's message with chunk row numbers made source row numbers, and the timestamp
    keys called by their source column names."""
    message = _ROW_REF.sub(lambda m: f"row {offset + int(m.group(2))}", message, count=1)
    for source, target in zip(columns.source, columns.targets):
        if source != target:
            message = message.replace(repr(target), repr(source))
    return message


def _progress_bar(progress: bool | None, total: int | None, table: str):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows", unit_scale=True, desc=f"ingest {table}", file=sys.stderr)


def ingest(
    client: Client,
    table: str,
    source: Any,
    project: str | None = None,
    timestamp_column: str = EVENT_TIMESTAMP,
    created_timestamp_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ttl: Any = None,
    progress: bool | None = None,
    on_error: str = "skip",
) -> IngestResult:
    """See Client.ingest."""
    from .client import _ttl_ms

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigurationError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if on_error not in ON_ERROR:
        raise ConfigurationError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    ttl_ms = _ttl_ms(ttl)
    project = client._project(project)
    spec = client._table(project, table)
    registry = client.registry.get(project)
    entity_types = {name: registry.entities[name].value_type for name in spec.entities}

    src, columns, csv = open_source(table_target(spec, entity_types), source, timestamp_column,
                                    created_timestamp_column)

    result = IngestResult(ignored_columns=columns.ignored)
    bar = _progress_bar(progress, src.total, table)
    # One thread sends chunk n while this one plans chunk n+1: Redis and the planning overlap.
    # At most one chunk is in flight, so memory stays bounded; each is planned (and checked) in
    # full before it is handed over, so a rejected chunk writes nothing.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feast-lua-ingest")
    pending = None
    try:
        for chunk in chunks(src.batches(columns, chunk_rows), chunk_rows):
            start = result.rows_read
            n = chunk.num_rows
            result.rows_read += n
            plan = _plan_chunk(registry, spec, chunk, columns, csv, start, result)
            if bar is not None:
                bar.update(n)
            if plan is None:
                if on_error == "stop":
                    result.stopped = True
                    break
                continue
            if pending is not None:
                _count(result, pending.result(), bar)
            pending = writer.submit(client._write, plan, ttl_ms)  # one pipeline per chunk
        if pending is not None:
            _count(result, pending.result(), bar)
            pending = None
    finally:
        writer.shutdown(wait=True)
        if bar is not None:
            bar.close()
            print(f"ingest {table}: {result.summary()}", file=sys.stderr)
    return result


def _count(result: IngestResult, done: WriteResult, bar: Any) -> None:
    result.written += done.written
    result.skipped += done.skipped
    if bar is not None:
        bar.set_postfix_str(f"written {result.written}, skipped {result.skipped},"
                            f" rejected {result.rejected}", refresh=False)


def _plan_chunk(registry, spec, chunk, columns: Columns, csv: bool, start: int,
                result: IngestResult) -> WritePlan | None:
    """The chunk's write plan, built from its Arrow columns (pack_arrow) when they are clean, or
    by the row loop, which names bad rows. None when the chunk is rejected (recorded in result)."""
    from .pack_arrow import Unsupported  # needs numpy and pyarrow, the files extra

    try:
        return _plan_columns(registry, spec, chunk, columns, csv)
    except (Unsupported, arrow().ArrowException):  # an Arrow kernel missing for an unusual type
        pass
    n = chunk.num_rows
    values = [column_values(chunk.column(c), t, csv) for c, t in zip(columns.source, columns.types)]
    rows = [dict(zip(columns.targets, cells)) for cells in zip(*values)]
    try:
        return plan_write(registry, spec, rows)
    except FeastLuaError:
        result.rejected += n
        result.rejected_chunks.append((start, start + n))
        result.rejections.extend(_bad_rows(registry, spec, rows, start, columns))
        return None


def _plan_columns(registry, spec, chunk, columns: Columns, csv: bool) -> WritePlan:
    from .pack_arrow import plan_arrow

    arrays = {}
    for source, target, value_type in zip(columns.source, columns.targets, columns.types):
        column = chunk.column(source)
        arrays[target] = _csv_array(column, value_type) if csv else column
    return plan_arrow(registry, spec, arrays,
                      lambda array, value_type: column_values(array, value_type, False))


def _csv_array(column: Any, value_type: ValueType | None) -> Any:
    """A CSV text column parsed into the type as a whole; a cell that does not parse means the
    row loop, which names it."""
    pa = arrow()
    import pyarrow.compute as pc

    from .pack_arrow import Unsupported

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    target = csv_target(value_type)
    if target is None:
        return column
    if target == "list":
        raise Unsupported("a list in a CSV")
    try:
        if target != "timestamp":
            return pc.cast(column, target)
        try:
            return pc.cast(column, pa.timestamp("us", "UTC"))
        except pa.ArrowInvalid:
            return pc.cast(column, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise Unsupported(str(e)) from None


def _bad_rows(registry, spec, rows, offset, columns) -> list[Rejection]:
    """Every bad row of a rejected chunk (up to MAX_REPORTED_PER_CHUNK), numbered in the source."""
    found = []
    for i, row in enumerate(rows):
        try:
            plan_write(registry, spec, [row])
        except FeastLuaError as e:
            found.append(Rejection(offset + i, _renumber(str(e), offset + i, columns)))
            if len(found) >= MAX_REPORTED_PER_CHUNK:
                break
    return found
