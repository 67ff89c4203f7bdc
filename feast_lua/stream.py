"""Stream ingestion: a Redis Streams consumer-group worker that applies events newest-wins.

An event is one XADD entry (docs/PROTOCOL.md, "Stream events"):

    XADD <stream> * table driver_trips row '{"driver_id": 1001, "rating": 4.8, ...,
                                              "event_timestamp": "2021-04-12T10:59:42.123456Z"}'
    (optional field: project; default: the client's project)

`StreamWorker` reads events with XREADGROUP (any number of workers share a group), reclaims
entries a dead worker left pending with XAUTOCLAIM (after `min_idle_ms`), and applies them with
the `stream_write` script, which writes the rows newest-wins AND XACKs their ids in one atomic
call, and only while they are still pending: an event is applied exactly once even when a worker
dies mid-batch or a slow worker's entries were claimed by another. A malformed event (not JSON,
unknown project or table, missing or extra columns, a value of the wrong type or range) goes to
the dead-letter stream with the reason, XADD and XACK in one MULTI/EXEC, and never blocks the
group; the good events of the same batch still apply.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
from redis.crc import key_slot

from . import topology
from .core import WRITE_HEAD_ARGS
from .errors import ConfigurationError, FeastLuaError, RedisUnavailableError, ScriptError
from .registry import TableSpec
from .types import ValueType
from .values import from_us
from .write import CREATED_TIMESTAMP, EVENT_TIMESTAMP, plan_write, split_calls

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

FIELD_TABLE = b"table"
FIELD_PROJECT = b"project"
FIELD_ROW = b"row"
DEAD_LETTER_SUFFIX = ":dead-letter"
DEFAULT_BATCH = 100
DEFAULT_BLOCK_MS = 1_000
DEFAULT_MIN_IDLE_MS = 60_000


class EventError(FeastLuaError, ValueError):
    """A malformed stream event; its message is the dead-letter reason."""


class StreamError(FeastLuaError):
    """Redis refused a stream command (e.g. NOPERM, or WRONGTYPE for the stream key)."""


@dataclass
class StepResult:
    read: int = 0  # entries handled this step (claimed or newly read)
    claimed: int = 0  # of them, reclaimed from another (dead or slow) consumer with XAUTOCLAIM
    written: int = 0
    skipped: int = 0  # not newer than the stored row
    not_pending: int = 0  # already acked elsewhere: left alone
    dead_lettered: int = 0
    reasons: list[tuple[bytes, str]] = field(default_factory=list)  # (id, reason) dead-lettered

    def add(self, other: StepResult) -> None:
        for name in ("read", "claimed", "written", "skipped", "not_pending", "dead_lettered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.extend(other.reasons)

    def summary(self) -> str:
        return (f"events read {self.read} (reclaimed {self.claimed}), written {self.written},"
                f" skipped as older {self.skipped}, already acked {self.not_pending},"
                f" dead-lettered {self.dead_lettered}")


# ------------------------------------------------------------------------------------------------
# Event decoding: JSON values -> the Python values plan_write takes
# ------------------------------------------------------------------------------------------------


def parse_timestamp(value: object, column: str) -> datetime:
    """An RFC 3339 string with a zone offset (Z or +hh:mm), or an integer of µs since the epoch."""
    if isinstance(value, bool):
        raise EventError(f"{column!r} must be an RFC 3339 string or integer epoch µs, got {value!r}")
    if isinstance(value, int):
        try:
            return from_us(value)
        except OverflowError:
            raise EventError(f"{column!r} {value} is outside years 1685-2255") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(f"{column!r} {value!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise EventError(f"{column!r} {value!r} lacks a zone offset (Z or +hh:mm)")
        return parsed
    raise EventError(f"{column!r} must be an RFC 3339 string or integer epoch µs, got {value!r}")


def _from_json(value: object, value_type: ValueType, column: str) -> object:
    """BYTES arrive as base64 strings and UNIX_TIMESTAMP like event_timestamp; the rest as JSON
    gives them (plan_write checks every type and range)."""
    if value is None:
        return None
    if value_type.is_list:
        if not isinstance(value, list):
            return value  # plan_write names the mismatch
        return [_from_json(v, value_type.element, column) for v in value]
    if value_type is ValueType.BYTES:
        if not isinstance(value, str):
            raise EventError(f"{column!r} is BYTES: expected a base64 string, got {value!r}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise EventError(f"{column!r} is BYTES: {value!r} is not base64") from None
    if value_type is ValueType.UNIX_TIMESTAMP:
        return parse_timestamp(value, column)
    return value


def decode_row(spec: TableSpec, entity_types: Mapping[str, ValueType], text: bytes) -> dict:
    """An event's `row` field as the dict plan_write takes, or EventError."""
    try:
        row = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise EventError(f"row is not JSON: {e}") from None
    if not isinstance(row, dict):
        raise EventError(f"row must be a JSON object, got {type(row).__name__}")
    out: dict[str, object] = {}
    for name, value in row.items():
        if name in (EVENT_TIMESTAMP, CREATED_TIMESTAMP):
            out[name] = None if value is None else parse_timestamp(value, name)
        elif name in entity_types:
            out[name] = _from_json(value, entity_types[name], name)
        elif name in spec.features:
            out[name] = _from_json(value, spec.features[name].value_type, name)
        else:
            out[name] = value  # plan_write refuses the extra column by name
    return out


# ------------------------------------------------------------------------------------------------
# The worker
# ------------------------------------------------------------------------------------------------


@dataclass
class _Event:
    id: bytes
    fields: dict
    key: bytes = b""
    packed: bytes = b""
    slots: int = 0  # the table's slot count, for the write budget


class StreamWorker:
    """One consumer of a consumer group; run as many as you like, under distinct `consumer` names.

    `step()` handles one batch: first entries other consumers left pending for `min_idle_ms`
    (XAUTOCLAIM), else new entries (XREADGROUP, blocking up to `block_ms`). `run()` repeats it
    until `max_batches` steps or until `stop` (a threading.Event, or a callable returning True).
    The group is created at the first step when missing (XGROUP CREATE ... `start_id` MKSTREAM;
    "0": every entry already in the stream, "$": only new ones).
    """

    def __init__(
        self,
        client: Client,
        stream: str | bytes,
        group: str | bytes,
        consumer: str | bytes,
        dead_letter_stream: str | bytes | None = None,
        batch: int = DEFAULT_BATCH,
        block_ms: int = DEFAULT_BLOCK_MS,
        min_idle_ms: int = DEFAULT_MIN_IDLE_MS,
        ttl: Any = None,
        start_id: str = "0",
    ):
        from .client import _ttl_ms

        for name, value, low in (("batch", batch, 1), ("block_ms", block_ms, 0),
                                 ("min_idle_ms", min_idle_ms, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in (("stream", stream), ("group", group), ("consumer", consumer)):
            if not isinstance(value, (str, bytes)) or not value:
                raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
        self.client = client
        self.redis = client.redis
        self.stream = _bytes(stream)
        self.group = _bytes(group)
        self.consumer = _bytes(consumer)
        self.dead_letter_stream = _bytes(dead_letter_stream) if dead_letter_stream else (
            self.stream + DEAD_LETTER_SUFFIX.encode())
        self.batch = batch
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.ttl_ms = _ttl_ms(ttl)
        self.start_id = start_id
        self._group_ready = False
        self._claim_cursor = b"0-0"

    # -- reading ---------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Entries pending longer than min_idle_ms, taken over from whichever consumer had them."""
        cursor, entries, *_ = self.redis.xautoclaim(
            self.stream, self.group, self.consumer, self.min_idle_ms, self._claim_cursor,
            count=self.batch)
        self._claim_cursor = cursor
        return [(i, f) for i, f in entries if f is not None]

    def _read(self) -> list[tuple[bytes, dict]]:
        reply = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                      count=self.batch, block=self.block_ms or None)
        return [(i, f) for _, entries in (reply or []) for i, f in entries if f is not None]

    def step(self) -> StepResult:
        """One batch: reclaimed entries if any, else new ones; returns what became of them."""
        try:
            if not self._group_ready:
                self.ensure_group()
            entries = self._claim()
            claimed = len(entries)
            if not entries:
                entries = self._read()
            result = self.process(entries)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise RedisUnavailableError(f"Redis is unreachable while consuming a stream: {e}") from e
        except redis.exceptions.ResponseError as e:
            raise StreamError(f"stream {self.stream!r}, group {self.group!r}: {e}") from e
        result.claimed = claimed
        return result

    def run(self, max_batches: int | None = None,
            stop: threading.Event | Callable[[], bool] | None = None) -> StepResult:
        total = StepResult()
        steps = 0
        while max_batches is None or steps < max_batches:
            if stop is not None and (stop.is_set() if hasattr(stop, "is_set") else stop()):
                break
            total.add(self.step())
            steps += 1
        return total

    # -- applying --------------------------------------------------------------------------------

    def process(self, entries: list[tuple[bytes, dict]]) -> StepResult:
        """Applies entries this consumer holds pending: good events through stream_write, grouped
        by (project, table) in stream order; malformed ones to the dead-letter stream."""
        result = StepResult(read=len(entries))
        groups: dict[tuple[str, str], list[_Event]] = {}
        dead: list[tuple[bytes, dict, str]] = []
        for entry_id, fields in entries:
            try:
                project, table, event = self._plan(entry_id, fields)
            except FeastLuaError as e:
                dead.append((entry_id, fields, str(e)))
                continue
            groups.setdefault((project, table), []).append(event)
        client = self.client
        for (_, table), events in groups.items():
            # The same blocking budget as Client.write_rows: rows, cells and bytes per call.
            spans = split_calls([len(e.packed) for e in events], max(e.slots for e in events),
                                client.max_rows_per_write, client.max_cells_per_write,
                                client.max_bytes_per_write)
            for start, stop in spans:
                self._apply(table, events[start:stop], result, dead)
        if dead:
            self._dead_letter(dead)
            result.dead_lettered += len(dead)
            result.reasons.extend((i, reason) for i, _, reason in dead)
        return result

    def _plan(self, entry_id: bytes, fields: dict) -> tuple[str, str, _Event]:
        table = fields.get(FIELD_TABLE)
        if table is None:
            raise EventError("the entry has no 'table' field")
        if FIELD_ROW not in fields:
            raise EventError("the entry has no 'row' field")
        try:
            table_name = table.decode()
            project_raw = fields.get(FIELD_PROJECT)
            project = self.client._project(None if project_raw is None else project_raw.decode())
        except UnicodeDecodeError:
            raise EventError("'table' and 'project' must be UTF-8 names") from None
        spec = self.client._table(project, table_name)  # UnknownTableError etc. dead-letter
        registry = self.client.registry.get(project)
        entity_types = {name: registry.entities[name].value_type for name in spec.entities}
        row = decode_row(spec, entity_types, fields[FIELD_ROW])
        plan = plan_write(registry, spec, [row])
        return project, table_name, _Event(entry_id, fields, plan.keys[0], plan.rows[0], spec.slots)

    def _call(self, table: str, events: list[_Event]) -> list:
        if self.client.loader.slot_of is not None:
            return self._call_on_cluster(table, events)
        keys = [self.stream, *(e.key for e in events)]
        args = [self.group, table.encode(), self.ttl_ms, len(events), *(e.id for e in events),
                *(e.packed for e in events)]
        return self.client.loader.call("stream_write", keys, args)

    def _call_on_cluster(self, table: str, events: list[_Event]) -> list:
        """On a cluster the stream and the rows sit in different slots, so no one script can
        write and XACK together. The rows are written first (newest-wins, one call per slot),
        then the entries are acknowledged: at-least-once delivery, and a replayed event is
        skipped as not newer, so the stored state is the same as with exactly-once."""
        calls = topology.split_writes(
            [([e.key for e in events], [table.encode(), self.ttl_ms, *(e.packed for e in events)])],
            self.client.loader.slot_of, WRITE_HEAD_ARGS)
        replies = self.client.loader.call_many("write", calls)
        acked = self.redis.xack(self.stream, self.group, *(e.id for e in events))
        return [sum(r[0] for r in replies), sum(r[1] for r in replies), acked, len(events) - acked]

    def _apply(self, table: str, events: list[_Event], result: StepResult,
               dead: list[tuple[bytes, dict, str]]) -> None:
        try:
            replies = [self._call(table, events)]
        except ScriptError as e:
            if not _event_fault(e):
                raise  # NOGROUP, OOM, ...: nothing was written or acked; the events stay pending
            # A key of another type (WRONGTYPE) fails the whole call, which writes nothing: apply
            # the events one by one, so only the events that cannot be stored are dead-lettered.
            replies = []
            for event in events:
                try:
                    replies.append(self._call(table, [event]))
                except ScriptError as single:
                    if not _event_fault(single):
                        raise
                    dead.append((event.id, event.fields, f"not applied: {single}"))
        for written, skipped, _acked, not_pending in replies:
            result.written += written
            result.skipped += skipped
            result.not_pending += not_pending

    def _dead_letter(self, dead: list[tuple[bytes, dict, str]]) -> None:
        """XADD to the dead-letter stream and XACK, in one MULTI/EXEC per batch. On a cluster
        that needs both streams in one slot (a shared hash tag, e.g. "{events}" and
        "{events}:dead-letter"); otherwise the XADDs go first and the XACK after, so a worker
        that dies in between leaves the entries pending, to be dead-lettered again."""
        together = self.client.loader.slot_of is None or (
            key_slot(self.stream) == key_slot(self.dead_letter_stream))
        with self.redis.pipeline(transaction=together) as pipe:
            for entry_id, fields, reason in dead:
                entry: list[tuple[bytes, bytes]] = [
                    (b"id", entry_id), (b"stream", self.stream), (b"reason", reason.encode())]
                entry += list(fields.items())
                pipe.execute_command("XADD", self.dead_letter_stream, "*",
                                     *[part for pair in entry for part in pair])
            pipe.xack(self.stream, self.group, *[entry_id for entry_id, _, _ in dead])
            pipe.execute()


def _event_fault(error: ScriptError) -> bool:
    """A script error that one event causes, and that retrying it cannot cure."""
    return any(code in str(error) for code in ("WRONGTYPE", "BADROW"))


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
