"""`feast-lua apply`, `ingest`, `get` and `stream-worker`: the data commands of the CLI.

    feast-lua apply SPEC.yaml                          register entities and feature tables
    feast-lua ingest TABLE FILE                        write a Parquet or CSV file newest-wins
    feast-lua get TABLE:FEATURE... --entity K=V[,K=V]  print features as a table
    feast-lua stream-worker --stream S --group G --consumer C   apply stream events newest-wins

Each takes --redis-url (default $REDIS_URL, else redis://localhost:6379) and --project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timedelta

from .errors import ConfigurationError
from .types import FieldStatus, ValueType

DEFAULT_REDIS_URL = "redis://localhost:6379"
EXIT_REJECTED = 3  # ingest finished, but some chunks were rejected


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", metavar="URL",
                        help=f"redis:// or rediss:// URL (default: $REDIS_URL, else {DEFAULT_REDIS_URL})")


def redis_url(args: argparse.Namespace) -> str:
    return args.redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def _client(args: argparse.Namespace):
    from .client import Client

    return Client(redis_url(args))


def apply_command(args: argparse.Namespace) -> int:
    from .specs import load_specs

    specs = load_specs(args.spec)
    project = args.project or specs.project
    with _client(args) as client:
        registry = client.apply(specs.objects, project=project)
    print(f"applied {len(specs.entities)} entities and {len(specs.tables)} feature tables to project"
          f" {registry.project!r} (registry version {registry.version})")
    for table in specs.tables:
        spec = registry.tables[table.name]
        features = ", ".join(f"{f.name} {f.value_type.name}" for f in spec.features.values())
        print(f"  {table.name} ({', '.join(spec.entities)}): {features}")
    return 0


def ingest_command(args: argparse.Namespace) -> int:
    ttl = None if args.ttl is None else timedelta(seconds=args.ttl)
    progress = False if args.no_progress else None
    with _client(args) as client:
        result = client.ingest(
            args.table, args.file, project=args.project, timestamp_column=args.timestamp_column,
            created_timestamp_column=args.created_timestamp_column, chunk_rows=args.chunk_rows,
            ttl=ttl, progress=progress, on_error=args.on_error)
    for rejection in result.rejections:
        print(f"rejected row {rejection.row}: {rejection.reason}", file=sys.stderr)
    for start, stop in result.rejected_chunks:
        print(f"rejected chunk: rows {start} to {stop - 1}", file=sys.stderr)
    if result.ignored_columns:
        print(f"ignored columns: {', '.join(result.ignored_columns)}")
    print(result.summary())
    return EXIT_REJECTED if result.rejected else 0


def stream_worker_command(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .stream import StepResult, StreamWorker

    ttl = None if args.ttl is None else timedelta(seconds=args.ttl)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    total = StepResult()
    try:
        with _client(args) as client:
            if args.project:
                client.project = client._project(args.project)
            worker = StreamWorker(client, args.stream, args.group, args.consumer,
                                  dead_letter_stream=args.dead_letter, batch=args.batch,
                                  block_ms=args.block_ms, min_idle_ms=args.min_idle_ms, ttl=ttl)
            batches = 0
            while not stop.is_set() and (args.max_batches is None or batches < args.max_batches):
                step = worker.step()
                batches += 1
                total.add(step)
                for entry_id, reason in step.reasons:
                    print(f"dead-lettered {entry_id.decode()}: {reason}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(total.summary())
    return 0


def _entity_rows(args: argparse.Namespace, types: dict[str, ValueType]) -> list[dict]:
    rows = []
    for text in args.entity:
        row: dict[str, object] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigurationError(f"--entity takes KEY=VALUE[,KEY=VALUE...], got {text!r}")
            value_type = types.get(key)
            if value_type in (ValueType.INT64, ValueType.INT32):
                try:
                    row[key] = int(value)
                except ValueError:
                    raise ConfigurationError(
                        f"--entity {key}={value}: {key} is {value_type.name}, not an integer") from None
            elif value_type is ValueType.BYTES:
                row[key] = value.encode()
            else:
                row[key] = value  # STRING, or a key no entity has: get_online_features names it
        rows.append(row)
    return rows


def _show(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def get_command(args: argparse.Namespace) -> int:
    with _client(args) as client:
        types = {e.name: e.value_type for e in client.list_entities(args.project)}
        rows = _entity_rows(args, types)
        response = client.get_online_features(args.refs, rows, project=args.project)
    data = response.to_dict(include_statuses=True, include_event_timestamps=True)
    statuses = data["statuses"]
    stamps = data["event_timestamps"]
    keys = list(rows[0])
    if args.json:
        out = [{**{k: _plain(row.get(k)) for k in keys},
                **{ref: {"value": _plain(data[ref][i]), "status": statuses[ref][i].name,
                         "event_timestamp": _plain(stamps[ref][i])} for ref in args.refs}}
               for i, row in enumerate(rows)]
        print(json.dumps(out, indent=2))
        return 0
    header = [*keys, *args.refs]
    table = [header]
    for i, row in enumerate(rows):
        cells = [_show(row.get(k)) for k in keys]
        for ref in args.refs:
            status = statuses[ref][i]
            cells.append(_show(data[ref][i]) if status is FieldStatus.PRESENT else status.name)
        table.append(cells)
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    for n, cells in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _connection(parser: argparse.ArgumentParser) -> None:
    add_redis_url(parser)
    parser.add_argument("--project", metavar="P", help="the project (default: default)")


def add_commands(groups) -> None:
    """Adds apply, ingest, get and stream-worker to the top-level subparsers."""
    apply = groups.add_parser(
        "apply", help="register entities and feature tables from a YAML spec",
        description="Register the entities and feature tables of a YAML spec file (shape: "
                    "project, entities [name, value_type, description], feature_tables [name, "
                    "entities, max_age, features [name, value_type]]; see feast_lua/specs.py). "
                    "Re-applying a table updates it in place.")
    apply.add_argument("spec", metavar="SPEC", help="the YAML file")
    _connection(apply)
    apply.set_defaults(func=apply_command)

    ingest = groups.add_parser(
        "ingest", help="write a Parquet or CSV file into a feature table, newest-wins",
        description="Write a Parquet or CSV file into a feature table, newest-wins, in chunks. "
                    "The columns are checked against the table before anything is written; a chunk "
                    "with a bad row is rejected whole and its bad rows are reported by their "
                    "0-based row numbers. Exit status 0 when every chunk was written, 3 when some "
                    "were rejected, 1 on an error (nothing written when raised before the first "
                    "chunk).")
    ingest.add_argument("table", metavar="TABLE", help="the feature table")
    ingest.add_argument("file", metavar="FILE", help="a .parquet or .csv file")
    _connection(ingest)
    ingest.add_argument("--timestamp-column", metavar="C", default="event_timestamp",
                        help="the event timestamp column (default: event_timestamp)")
    ingest.add_argument("--created-timestamp-column", metavar="C",
                        help="a created timestamp column, which breaks ties between equal event timestamps")
    ingest.add_argument("--chunk-rows", metavar="N", type=int, default=10_000,
                        help="rows per chunk (default: 10000)")
    ingest.add_argument("--ttl", metavar="SECONDS", type=float,
                        help="expire each written entity key after this many seconds")
    ingest.add_argument("--on-error", choices=["skip", "stop"], default="skip",
                        help="after a rejected chunk: go on with the next (skip, the default) or stop")
    ingest.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it shows only when stderr is a terminal anyway)")
    ingest.set_defaults(func=ingest_command)

    get = groups.add_parser(
        "get", help="print online features for entities as a table",
        description="Print the online features of entities as a table: a value when PRESENT, "
                    "else its status (NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE).")
    get.add_argument("refs", metavar="TABLE:FEATURE", nargs="+", help="feature refs")
    get.add_argument("--entity", metavar="KEY=VALUE[,KEY=VALUE]", action="append", required=True,
                     help="one entity row (repeat for more), e.g. --entity driver_id=1001")
    _connection(get)
    get.add_argument("--json", action="store_true",
                     help="print JSON rows with value, status and event timestamp per ref")
    get.set_defaults(func=get_command)

    worker = groups.add_parser(
        "stream-worker", help="apply events from a Redis stream, newest-wins, as a consumer group worker",
        description="Consume a Redis stream in a consumer group (created at start when missing, "
                    "from the stream's first entry) and apply each event newest-wins: its row is "
                    "written and its id XACKed in one atomic script call, so an event is applied "
                    "exactly once even when a worker dies mid-batch. Entries another consumer "
                    "left pending longer than --min-idle-ms are reclaimed (XAUTOCLAIM). A "
                    "malformed event goes to the dead-letter stream with the reason, and is "
                    "acked. An event is an XADD entry with fields table, row (a JSON object) and "
                    "optionally project (docs/PROTOCOL.md, \"Stream events\"). Runs until "
                    "--max-batches, Ctrl-C or SIGTERM; prints a summary.")
    worker.add_argument("--stream", metavar="S", required=True, help="the stream key")
    worker.add_argument("--group", metavar="G", required=True, help="the consumer group")
    worker.add_argument("--consumer", metavar="C", required=True,
                        help="this worker's consumer name, unique within the group")
    worker.add_argument("--dead-letter", metavar="D",
                        help="the dead-letter stream (default: S:dead-letter)")
    _connection(worker)
    worker.add_argument("--batch", metavar="N", type=int, default=100,
                        help="entries per read (default: 100)")
    worker.add_argument("--block-ms", metavar="MS", type=int, default=1000,
                        help="how long a read waits for new entries (default: 1000)")
    worker.add_argument("--min-idle-ms", metavar="MS", type=int, default=60_000,
                        help="reclaim entries pending this long at another consumer (default: 60000)")
    worker.add_argument("--ttl", metavar="SECONDS", type=float,
                        help="expire each written entity key after this many seconds")
    worker.add_argument("--max-batches", metavar="N", type=int,
                        help="stop after N reads (default: run until stopped)")
    worker.set_defaults(func=stream_worker_command)
