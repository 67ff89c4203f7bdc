"""Batch ingestion in Feast's layout: a Parquet file, a pyarrow Table or a pandas DataFrame, read in
chunks and written through feast_write, so a Feast reader can be fed from files by feast-lua.

The same contract as Client.ingest (feast_lua/ingest.py), reusing its result type: the source's
columns must include the view's join keys, every feature and the timestamp column (others are
ignored and listed); a chunk is planned in full before it is written, and a chunk with a bad row
is rejected whole, its bad rows reported by 0-based source row number. Unlike Client.ingest,
types are checked row by row as chunks are planned, not from the Arrow schema up front, and CSV
is not read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, FeastLuaError, SchemaError
from ..ingest import DEFAULT_CHUNK_ROWS, MAX_REPORTED_PER_CHUNK, ON_ERROR, IngestResult, Rejection
from .write_plan import EVENT_TIMESTAMP, plan_write

if TYPE_CHECKING:
    from .client import FeastLayoutClient


def _batches(source: Any, chunk_rows: int) -> tuple[list[str], Iterator[Any]]:
    """The source's column names, and its record batches of at most chunk_rows rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ConfigurationError("ingestion needs pyarrow: pip install 'feast-lua[files]'") from e
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        parquet = pq.ParquetFile(source)
        return list(parquet.schema_arrow.names), parquet.iter_batches(batch_size=chunk_rows)
    if type(source).__name__ == "DataFrame" and hasattr(source, "to_numpy"):
        try:
            source = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # e.g. an object column of mixed types
            raise SchemaError(f"the DataFrame cannot be read as Arrow columns: {e}") from e
    if isinstance(source, pa.Table):
        return list(source.schema.names), iter(source.to_batches(max_chunksize=chunk_rows))
    raise ConfigurationError(
        f"cannot ingest a {type(source).__name__}: give a Parquet path, a pyarrow Table or a"
        " pandas DataFrame")


def ingest(client: FeastLayoutClient, view: str, source: Any, timestamp_column: str = EVENT_TIMESTAMP,
           chunk_rows: int = DEFAULT_CHUNK_ROWS, key_ttl: timedelta | None = None,
           on_error: str = "skip") -> IngestResult:
    """See FeastLayoutClient.ingest."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigurationError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if on_error not in ON_ERROR:
        raise ConfigurationError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    spec = client.definitions.view(view)
    names, batches = _batches(source, chunk_rows)
    wanted = [*spec.join_keys, *spec.features]
    missing = [c for c in [*wanted, timestamp_column] if c not in names]
    if missing:
        raise SchemaError(f"the source lacks column(s) {missing} of view {view!r}"
                          f" (join keys, features and {timestamp_column!r})")
    result = IngestResult(ignored_columns=[c for c in names if c not in wanted and c != timestamp_column])
    for batch in batches:
        start, n = result.rows_read, batch.num_rows
        result.rows_read += n
        columns = {name: batch.column(names.index(name)).to_pylist() for name in wanted}
        stamps = batch.column(names.index(timestamp_column)).to_pylist()
        rows = [{**{name: columns[name][i] for name in wanted}, EVENT_TIMESTAMP: stamps[i]}
                for i in range(n)]
        try:
            plan = plan_write(client.definitions, view, rows, key_ttl)
        except FeastLuaError:
            result.rejected += n
            result.rejected_chunks.append((start, start + n))
            result.rejections.extend(_bad_rows(client, view, rows, start))
            if on_error == "stop":
                result.stopped = True
                break
            continue
        done = client._write(plan)
        result.written += done.written
        result.skipped += done.skipped
    return result


def _bad_rows(client: FeastLayoutClient, view: str, rows: list[dict], offset: int) -> list[Rejection]:
    bad = []
    for i, row in enumerate(rows):
        try:
            plan_write(client.definitions, view, [row])
        except FeastLuaError as e:
            bad.append(Rejection(offset + i, str(e).replace("row 0 of", f"row {offset + i} of", 1)))
            if len(bad) >= MAX_REPORTED_PER_CHUNK:
                break
    return bad
