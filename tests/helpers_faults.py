"""A checked read/write load for fault injection: tests/test_faults.py runs short forms,
stress/faults.py long ones (docs/RELIABILITY.md).

One writer thread stores version v = 1, 2, 3, ... into every entity of table `counters`
(x = v, y = -v, s = "v<v>", event timestamp BASE + v seconds) with Client.write_rows, split into
several write calls. Reader threads read every entity with Client.get_online_features, split into
several read calls, and check each entity row against what the writer did:

* its three values encode one version (a row is written whole, so anything else is wrong);
* that version is at least the one the writer had acknowledged before the read was sent (an
  acknowledged write must never be lost or hidden) and at most the highest one sent.

Anything else is a wrong answer. A request that raises is a failed request: RedisUnavailableError
is the documented error for an unreachable Redis; any other exception is counted as unexpected.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis

from feast_lua import Client, Entity, Feature, FeatureTable, FieldStatus, RedisUnavailableError, ValueType

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
ENTITY = Entity("driver_id", ValueType.INT64)
TABLE = FeatureTable("counters", ["driver_id"], [
    Feature("x", ValueType.INT64), Feature("y", ValueType.INT64), Feature("s", ValueType.STRING)])
REFS = ["counters:x", "counters:y", "counters:s"]


def row(entity: int, version: int) -> dict[str, object]:
    return {"driver_id": entity, "x": version, "y": -version, "s": f"v{version}",
            "event_timestamp": BASE + timedelta(seconds=version)}


@dataclass
class FaultCounts:
    reads: int = 0
    writes: int = 0
    failed_reads: int = 0
    failed_writes: int = 0
    wrong_answers: int = 0
    unexpected: list[str] = field(default_factory=list)  # failures other than RedisUnavailableError
    wrong: list[str] = field(default_factory=list)  # the first few wrong answers

    @property
    def requests(self) -> int:
        return self.reads + self.writes + self.failed_reads + self.failed_writes

    @property
    def failed(self) -> int:
        return self.failed_reads + self.failed_writes


class FaultLoad:
    """Start with `with FaultLoad(url, ...) as load:`; the counts are in load.counts after exit."""

    def __init__(self, url: str, entities: int = 20, readers: int = 2, rows_per_call: int = 5,
                 **client_options):
        self.url = url
        self.entities = entities
        self.client_options = client_options
        self.rows_per_call = rows_per_call
        self.counts = FaultCounts()
        self.lock = threading.Lock()
        self.acked = 0  # every entity holds at least this version
        self.sent = 0  # no entity holds more than this
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._writer, daemon=True)]
        self.threads += [threading.Thread(target=self._reader, daemon=True) for _ in range(readers)]

    def setup(self) -> None:
        with self._client() as client:
            client.apply([ENTITY, TABLE])

    def _client(self) -> Client:
        client = Client(self.url, **self.client_options)
        client.max_rows_per_write = self.rows_per_call
        client.max_cells_per_call = self.rows_per_call * len(REFS)
        return client

    def _fail(self, kind: str, error: Exception) -> None:
        with self.lock:
            setattr(self.counts, f"failed_{kind}", getattr(self.counts, f"failed_{kind}") + 1)
            if not isinstance(error, RedisUnavailableError):
                self.counts.unexpected.append(f"{kind}: {type(error).__name__}: {error}")

    def _writer(self) -> None:
        client = self._client()
        version = self.acked
        while not self.stop_event.is_set():
            version += 1
            with self.lock:
                self.sent = max(self.sent, version)
            try:
                client.write_rows(TABLE.name, [row(i, version) for i in range(self.entities)])
            except Exception as e:
                self._fail("writes", e)
                time.sleep(0.005)
                continue
            with self.lock:
                self.acked = max(self.acked, version)
                self.counts.writes += 1
        client.close()

    def _reader(self) -> None:
        client = self._client()
        rows = [{"driver_id": i} for i in range(self.entities)]
        while not self.stop_event.is_set():
            with self.lock:
                low = self.acked
            try:
                response = client.get_online_features(REFS, rows)
            except Exception as e:
                self._fail("reads", e)
                time.sleep(0.005)
                continue
            with self.lock:
                high = self.sent
            self._check(response, low, high)
        client.close()

    def _check(self, response, low: int, high: int) -> None:
        values = response.to_dict(include_statuses=True)
        statuses = values["statuses"]
        wrong = []
        for i in range(self.entities):
            cells = [values[ref][i] for ref in REFS]
            if low == 0 and statuses[REFS[0]][i] is FieldStatus.NOT_FOUND:
                continue  # nothing acknowledged yet
            x, y, s = cells
            ok = (all(statuses[ref][i] is FieldStatus.PRESENT for ref in REFS)
                  and isinstance(x, int) and y == -x and s == f"v{x}" and low <= x <= high)
            if not ok:
                wrong.append(f"entity {i}: {cells} (expected one version in {low}..{high})")
        with self.lock:
            self.counts.reads += 1
            if wrong:
                self.counts.wrong_answers += 1
                self.counts.wrong += wrong[: max(0, 5 - len(self.counts.wrong))]

    def __enter__(self) -> FaultLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads), "load threads did not stop"

    def wait_for(self, reads: int, writes: int, timeout: float = 30.0) -> None:
        """Waits until the load has made some progress (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.counts.reads >= reads and self.counts.writes >= writes:
                    return
            time.sleep(0.01)
        raise AssertionError(f"the load made no progress: {self.counts}")


def flush_scripts_under_load(seconds: float) -> tuple[int, FaultCounts]:
    """SCRIPT FLUSH every 2 ms for `seconds` under the checked load of a fresh server; returns the
    number of flushes and the load's counts (the test's short form and stress/'s long form)."""
    from feast_lua.server import RedisServer

    with RedisServer() as server:
        load = FaultLoad(server.url)
        load.setup()
        admin = redis.Redis.from_url(server.url)
        flushes = 0
        with load:
            load.wait_for(reads=5, writes=5)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                admin.script_flush()
                flushes += 1
                time.sleep(0.002)
            load.wait_for(reads=load.counts.reads + 5, writes=load.counts.writes + 5)
        admin.close()
        return flushes, load.counts
