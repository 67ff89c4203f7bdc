"""Reading sources for ingestion: Parquet and CSV files, pandas DataFrames and pyarrow Tables, as
Arrow chunks of the columns a table (or Feast view) needs, with the columns checked first.

Both layouts' ingestion (feast_lua/ingest.py, feast_lua/feast_layout/ingest.py) read through
here: `open_source` maps and type-checks the columns, `chunks` regroups record batches into
chunks of a fixed size, and `column_values` turns a chunk's column into Python values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, SchemaError
from .registry import TableSpec
from .types import ValueType
from .write import CREATED_TIMESTAMP, EVENT_TIMESTAMP


def arrow():
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
    pa = arrow()
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
    check = getattr(arrow().types, f"is_{kind}_view", None)
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
class Columns:
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
                 created_timestamp_column: str | None) -> Columns:
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
    return Columns([c for c, _, _ in wanted], [k for _, k, _ in wanted], [t for _, _, t in wanted],
                    [n for n in names if n not in used])


def _check_types(target: Target, columns: Columns, schema: Any) -> None:
    pa = arrow()
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
                created_timestamp_column: str | None = None) -> tuple[_Source, Columns, bool]:
    """The source opened, its columns mapped onto the target and their types checked before
    anything is read (a CSV has no types: its cells are parsed per chunk, each bad cell a bad
    row). Returns the source, the column mapping and whether it is a CSV."""
    src = _open(source)
    columns = _map_columns(target, list(src.schema.names), timestamp_column, created_timestamp_column)
    csv = isinstance(src, CsvSource)
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

    def batches(self, columns: Columns, chunk_rows: int) -> Iterator[Any]:
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


class CsvSource(_Source):
    """Every needed column is read as text and parsed per chunk (_parse_csv), so one bad cell is
    one bad row with its number, not a reader error that ends the file."""

    def __init__(self, path: str):
        import pyarrow.csv as pcsv

        self.path = path
        with pcsv.open_csv(path) as reader:  # reads the header and infers from the first block
            names = reader.schema.names
        self.schema = arrow().schema([(n, arrow().string()) for n in names])
        self.total = None

    def batches(self, columns, chunk_rows):
        import pyarrow.csv as pcsv

        pa = arrow()
        convert = pcsv.ConvertOptions(
            include_columns=columns.source, strings_can_be_null=True,
            column_types={c: pa.string() for c in columns.source})
        return iter(pcsv.open_csv(self.path, convert_options=convert))


def _open(source: Any) -> _Source:
    pa = arrow()
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
                return CsvSource(path)
            with open(path, "rb") as f:
                magic = f.read(4)
            return _ParquetSource(path) if magic == b"PAR1" else CsvSource(path)
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


def chunks(batches: Iterator[Any], chunk_rows: int) -> Iterator[Any]:
    """Record batches regrouped into tables of exactly chunk_rows rows (the last may be short)."""
    pa = arrow()
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


def column_values(column: Any, value_type: ValueType | None, csv: bool) -> list:
    """One column's Python values; timestamps as datetimes in microseconds."""
    pa = arrow()
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


def csv_target(value_type: ValueType | None) -> Any:
    pa = arrow()
    if value_type is None or value_type is ValueType.UNIX_TIMESTAMP:
        return "timestamp"
    return {ValueType.INT64: pa.int64(), ValueType.INT32: pa.int64(), ValueType.FLOAT: pa.float64(),
            ValueType.DOUBLE: pa.float64(), ValueType.BOOL: pa.bool_(), ValueType.BYTES: pa.binary(),
            ValueType.STRING: None}.get(value_type, "list")


def _parse_csv(column: Any, value_type: ValueType | None) -> list:
    """Text cells parsed into the type; a cell that does not parse stays text, so the row's type
    check rejects it and names the value."""
    target = csv_target(value_type)
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
                values.append(_cast(arrow().array([text], arrow().string()), target)[0])
            except Exception:
                values.append(text)
        return values


def _cast(column: Any, target: Any) -> list:
    pa = arrow()
    import pyarrow.compute as pc

    if target != "timestamp":
        return pc.cast(column, target).to_pylist()
    try:  # with a zone offset (Z, +02:00)
        return pc.cast(column, pa.timestamp("us", "UTC")).to_pylist()
    except pa.ArrowInvalid:  # without: UTC, as a naive datetime is everywhere else
        return pc.cast(column, pa.timestamp("us")).to_pylist()
