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

import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, FeastLuaError, SchemaError
from .registry import TableSpec
from .types import ValueType
from .write import CREATED_TIMESTAMP, EVENT_TIMESTAMP, WritePlan, WriteResult, plan_write

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


def _pa():
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "ingest needs pyarrow: pip install 'feast-lua[files]'") from e
    return pa


# ------------------------------------------------------------------------------------------------
# Arrow types each value type accepts
# ------------------------------------------------------------------------------------------------


def _accepts(value_type: ValueType, arrow_type: Any) -> bool:
    pa = _pa()
    t = pa.types
    if t.is_null(arrow_type):
        return True  # all null
    if t.is_dictionary(arrow_type):
        return not value_type.is_list and _accepts(value_type, arrow_type.value_type)
    if value_type.is_list:
        if not (t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type)
                or getattr(t, "is_list_view", lambda _: False)(arrow_type)):
            return False
        return _accepts(value_type.element, arrow_type.value_type)
    if value_type in (ValueType.INT64, ValueType.INT32):
        return t.is_integer(arrow_type)  # each value's range is checked per row
    if value_type in (ValueType.FLOAT, ValueType.DOUBLE):
        return t.is_floating(arrow_type) or t.is_integer(arrow_type)
    if value_type is ValueType.STRING:
        return t.is_string(arrow_type) or t.is_large_string(arrow_type) or _is_view(arrow_type, "string")
    if value_type is ValueType.BYTES:
        return (t.is_binary(arrow_type) or t.is_large_binary(arrow_type)
                or t.is_fixed_size_binary(arrow_type) or _is_view(arrow_type, "binary"))
    if value_type is ValueType.BOOL:
        return t.is_boolean(arrow_type)
    if value_type is ValueType.UNIX_TIMESTAMP:
        return t.is_timestamp(arrow_type)
    return False


def _is_view(arrow_type: Any, kind: str) -> bool:
    check = getattr(_pa().types, f"is_{kind}_view", None)
    return bool(check and check(arrow_type))


_EXPECTED = {
    ValueType.INT64: "an integer type", ValueType.INT32: "an integer type",
    ValueType.FLOAT: "a floating-point or integer type",
    ValueType.DOUBLE: "a floating-point or integer type",
    ValueType.STRING: "string", ValueType.BYTES: "binary", ValueType.BOOL: "bool",
    ValueType.UNIX_TIMESTAMP: "timestamp",
}


def _expected(value_type: ValueType) -> str:
    if value_type.is_list:
        return f"a list of {_EXPECTED[value_type.element]}"
    return _EXPECTED[value_type]


@dataclass(frozen=True)
class _Columns:
    """Source column -> the row key plan_write expects, and the value type it must hold."""

    source: list[str]  # source column names, in the order read
    targets: list[str]  # the matching row keys
    types: list[ValueType | None]  # None: a timestamp column
    ignored: list[str]


@dataclass(frozen=True)
class Target:
    """What a source's columns are checked against: a feature table, or a Feast view."""

    name: str
    join_keys: dict[str, ValueType]
    features: dict[str, ValueType]
    kind: str = "table"


def table_target(spec: TableSpec, entity_types: dict[str, ValueType]) -> Target:
    return Target(spec.name, {k: entity_types[k] for k in spec.entities},
                  {f.name: f.value_type for f in spec.features.values()})


def _map_columns(target: Target, names: list[str], timestamp_column: str,
                 created_timestamp_column: str | None) -> _Columns:
    for option, column in (("timestamp_column", timestamp_column),
                           ("created_timestamp_column", created_timestamp_column)):
        if column is not None and (not isinstance(column, str) or column in target.features
                                   or column in target.join_keys):
            raise ConfigurationError(
                f"{option} must name a timestamp column that is not a join key or feature of"
                f" {target.kind} {target.name!r}, got {column!r}")
    wanted: list[tuple[str, str, ValueType | None]] = [(k, k, t) for k, t in target.join_keys.items()]
    wanted.append((timestamp_column, EVENT_TIMESTAMP, None))
    if created_timestamp_column is not None:
        wanted.append((created_timestamp_column, CREATED_TIMESTAMP, None))
    wanted += [(name, name, value_type) for name, value_type in target.features.items()]
    present = set(names)
    missing = [(c, t) for c, _, t in wanted if c not in present]
    if missing:
        column, value_type = missing[0]
        what = ("join key" if column in target.join_keys else "feature" if column in target.features
                else "timestamp")
        expected = value_type.name if value_type else "timestamp"
        raise SchemaError(
            f"the source lacks {what} column {column!r} ({expected}) of {target.kind} {target.name!r};"
            f" missing: {[c for c, _ in missing]}; it has {names}")
    used = {c for c, _, _ in wanted}
    return _Columns([c for c, _, _ in wanted], [k for _, k, _ in wanted], [t for _, _, t in wanted],
                    [n for n in names if n not in used])


def _check_types(target: Target, columns: _Columns, schema: Any) -> None:
    pa = _pa()
    for column, value_type in zip(columns.source, columns.types):
        arrow_type = schema.field(column).type
        if value_type is None:
            ok = pa.types.is_timestamp(arrow_type) or pa.types.is_null(arrow_type)
            expected, what = "timestamp", "timestamp"
        else:
            ok = _accepts(value_type, arrow_type)
            expected = f"{value_type.name} ({_expected(value_type)})"
            what = "join key" if column in target.join_keys else "feature"
        if not ok:
            raise SchemaError(
                f"column {column!r} has Arrow type {arrow_type}, which cannot hold {what}"
                f" {column!r} of {target.kind} {target.name!r}: expected {expected}")


def open_source(target: Target, source: Any, timestamp_column: str,
                created_timestamp_column: str | None = None) -> tuple[_Source, _Columns, bool]:
    """The source opened, its columns mapped onto the target and their types checked before
    anything is read (a CSV has no types: its cells are parsed per chunk, each bad cell a bad
    row). Returns the source, the column mapping and whether it is a CSV."""
    src = _open(source)
    columns = _map_columns(target, list(src.schema.names), timestamp_column, created_timestamp_column)
    csv = isinstance(src, _CsvSource)
    if not csv:
        _check_types(target, columns, src.schema)
    else:
        lists = [c for c, t in zip(columns.source, columns.types) if t is not None and t.is_list]
        if lists:
            raise SchemaError(f"column {lists[0]!r} is a list feature; a CSV file cannot hold lists,"
                              " use Parquet or a DataFrame")
    return src, columns, csv


# ------------------------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------------------------


class _Source:
    """A schema, a row count when known, and record batches of the needed columns."""

    schema: Any
    total: int | None

    def batches(self, columns: _Columns, chunk_rows: int) -> Iterator[Any]:
        raise NotImplementedError


class _TableSource(_Source):
    def __init__(self, table: Any):
        self.table = table
        self.schema = table.schema
        self.total = table.num_rows

    def batches(self, columns, chunk_rows):
        return iter(self.table.select(columns.source).to_batches(max_chunksize=chunk_rows))


class _ParquetSource(_Source):
    def __init__(self, path: str):
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path)
        self.schema = self.file.schema_arrow
        self.total = self.file.metadata.num_rows

    def batches(self, columns, chunk_rows):
        return self.file.iter_batches(batch_size=chunk_rows, columns=columns.source)


class _CsvSource(_Source):
    """Every needed column is read as text and parsed per chunk (_parse_csv), so one bad cell is
    one bad row with its number, not a reader error that ends the file."""

    def __init__(self, path: str):
        import pyarrow.csv as pcsv

        self.path = path
        with pcsv.open_csv(path) as reader:  # reads the header and infers from the first block
            names = reader.schema.names
        self.schema = _pa().schema([(n, _pa().string()) for n in names])
        self.total = None

    def batches(self, columns, chunk_rows):
        import pyarrow.csv as pcsv

        pa = _pa()
        convert = pcsv.ConvertOptions(
            include_columns=columns.source, strings_can_be_null=True,
            column_types={c: pa.string() for c in columns.source})
        return iter(pcsv.open_csv(self.path, convert_options=convert))


def _open(source: Any) -> _Source:
    pa = _pa()
    if isinstance(source, pa.Table):
        return _TableSource(source)
    if isinstance(source, pa.RecordBatch):
        return _TableSource(pa.Table.from_batches([source]))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ConfigurationError(f"no such file: {path}")
        lower = path.lower()
        try:
            if lower.endswith((".parquet", ".pq", ".parq")):
                return _ParquetSource(path)
            if lower.endswith((".csv", ".csv.gz", ".csv.bz2")):
                return _CsvSource(path)
            with open(path, "rb") as f:
                magic = f.read(4)
            return _ParquetSource(path) if magic == b"PAR1" else _CsvSource(path)
        except (pa.ArrowException, OSError) as e:
            raise ConfigurationError(f"cannot read {path}: {e}") from e
    if type(source).__name__ == "DataFrame" and hasattr(source, "iloc"):
        try:
            table = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise SchemaError(f"the DataFrame does not convert to Arrow: {e}") from e
        return _TableSource(table)
    raise ConfigurationError(
        "source must be a Parquet or CSV file path, a pandas DataFrame or a pyarrow Table,"
        f" got {type(source).__name__}")


def _chunks(batches: Iterator[Any], chunk_rows: int) -> Iterator[Any]:
    """Record batches regrouped into tables of exactly chunk_rows rows (the last may be short)."""
    pa = _pa()
    buffer: list[Any] = []
    size = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        buffer.append(batch)
        size += batch.num_rows
        while size >= chunk_rows:
            table = pa.Table.from_batches(buffer)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            buffer = rest.to_batches() if rest.num_rows else []
            size = rest.num_rows
    if size:
        yield pa.Table.from_batches(buffer)


# ------------------------------------------------------------------------------------------------
# Arrow columns -> Python values
# ------------------------------------------------------------------------------------------------


def _values(column: Any, value_type: ValueType | None, csv: bool) -> list:
    """One column's Python values; timestamps as datetimes in microseconds."""
    pa = _pa()
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if csv:
        return _parse_csv(column, value_type)
    arrow_type = column.type
    if value_type is None or value_type is ValueType.UNIX_TIMESTAMP:
        if pa.types.is_timestamp(arrow_type) and arrow_type.unit != "us":
            column = pc.cast(column, pa.timestamp("us", arrow_type.tz), safe=False)
    elif value_type is ValueType.UNIX_TIMESTAMP_LIST:
        value = arrow_type.value_type
        if pa.types.is_timestamp(value) and value.unit != "us":
            column = pc.cast(column, pa.list_(pa.timestamp("us", value.tz)), safe=False)
    return column.to_pylist()


def _csv_target(value_type: ValueType | None) -> Any:
    pa = _pa()
    if value_type is None or value_type is ValueType.UNIX_TIMESTAMP:
        return "timestamp"
    return {ValueType.INT64: pa.int64(), ValueType.INT32: pa.int64(), ValueType.FLOAT: pa.float64(),
            ValueType.DOUBLE: pa.float64(), ValueType.BOOL: pa.bool_(), ValueType.BYTES: pa.binary(),
            ValueType.STRING: None}.get(value_type, "list")


def _parse_csv(column: Any, value_type: ValueType | None) -> list:
    """Text cells parsed into the type; a cell that does not parse stays text, so the row's type
    check rejects it and names the value."""
    target = _csv_target(value_type)
    if target is None:
        return column.to_pylist()
    if target == "list":
        raise SchemaError(f"a CSV file cannot hold {value_type.name} values; use Parquet")
    try:
        return _cast(column, target)
    except Exception:  # some cell does not parse: go cell by cell
        values = []
        for text in column.to_pylist():
            try:
                values.append(_cast(_pa().array([text], _pa().string()), target)[0])
            except Exception:
                values.append(text)
        return values


def _cast(column: Any, target: Any) -> list:
    pa = _pa()
    import pyarrow.compute as pc

    if target != "timestamp":
        return pc.cast(column, target).to_pylist()
    try:  # with a zone offset (Z, +02:00)
        return pc.cast(column, pa.timestamp("us", "UTC")).to_pylist()
    except pa.ArrowInvalid:  # without: UTC, as a naive datetime is everywhere else
        return pc.cast(column, pa.timestamp("us")).to_pylist()


# ------------------------------------------------------------------------------------------------
# The ingest loop
# ------------------------------------------------------------------------------------------------


_ROW_REF = re.compile(r"\b(entity )?row (\d+)\b")


def _renumber(message: str, offset: int, columns: _Columns) -> str:
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
        for chunk in _chunks(src.batches(columns, chunk_rows), chunk_rows):
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


def _plan_chunk(registry, spec, chunk, columns: _Columns, csv: bool, start: int,
                result: IngestResult) -> WritePlan | None:
    """The chunk's write plan, built from its Arrow columns (pack_arrow) when they are clean, or
    by the row loop, which names bad rows. None when the chunk is rejected (recorded in result)."""
    from .pack_arrow import Unsupported  # needs numpy and pyarrow, the files extra

    try:
        return _plan_columns(registry, spec, chunk, columns, csv)
    except (Unsupported, _pa().ArrowException):  # an Arrow kernel missing for an unusual type
        pass
    n = chunk.num_rows
    values = [_values(chunk.column(c), t, csv) for c, t in zip(columns.source, columns.types)]
    rows = [dict(zip(columns.targets, cells)) for cells in zip(*values)]
    try:
        return plan_write(registry, spec, rows)
    except FeastLuaError:
        result.rejected += n
        result.rejected_chunks.append((start, start + n))
        result.rejections.extend(_bad_rows(registry, spec, rows, start, columns))
        return None


def _plan_columns(registry, spec, chunk, columns: _Columns, csv: bool) -> WritePlan:
    from .pack_arrow import plan_arrow

    arrays = {}
    for source, target, value_type in zip(columns.source, columns.targets, columns.types):
        column = chunk.column(source)
        arrays[target] = _csv_array(column, value_type) if csv else column
    return plan_arrow(registry, spec, arrays, lambda array, value_type: _values(array, value_type, False))


def _csv_array(column: Any, value_type: ValueType | None) -> Any:
    """A CSV text column parsed into the type as a whole; a cell that does not parse means the
    row loop, which names it."""
    pa = _pa()
    import pyarrow.compute as pc

    from .pack_arrow import Unsupported

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    target = _csv_target(value_type)
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
