"""What every benchmark here shares on the feast-lua side (main venv only).

All scripts load bench_data's tables through feast-lua's public API (Client.apply +
Client.write_rows) and, where they compare with Feast's layout, through feast_layout or the real
feast; this module holds the feast-lua half and the small helpers: a throwaway Redis, the
statistics they read from it, percentiles and the environment line.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_data as data  # noqa: E402
import redis  # noqa: E402

from feast_lua import Client, Entity, Feature, FeatureTable, ValueType  # noqa: E402
from feast_lua.server import RedisServer  # noqa: E402

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def event_us_now() -> int:
    """An event time 5 minutes ago, in epoch microseconds, with a non-zero microsecond part."""
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    return (now - EPOCH) // timedelta(microseconds=1) // 1000 * 1000 + 123


def as_datetime(event_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=event_us)


def table_def(table: str) -> FeatureTable:
    join_key, _ = data.TABLES[table]
    return FeatureTable(
        name=table,
        entities=[join_key],
        features=[Feature(n, ValueType[data.feature_type(i)])
                  for i, n in enumerate(data.feature_names(table))],
        max_age=timedelta(seconds=data.MAX_AGE_S),
    )


def apply_tables(client: Client, tables) -> None:
    join_keys = sorted({data.TABLES[t][0] for t in tables})
    client.apply([*(Entity(k, ValueType.INT64) for k in join_keys), *(table_def(t) for t in tables)])


def rows_at(table: str, ids, event: datetime) -> list[dict]:
    """write_rows' input: bench_data's rows of `table` for `ids`, all at event time `event`."""
    out = []
    for e in ids:
        row = data.row(table, e)
        row["event_timestamp"] = event
        out.append(row)
    return out


def write_lua(client: Client, table: str, ids, event_us: int, batch: int = 20_000) -> None:
    """write_rows in batches of `batch` rows (the client splits them into its own calls)."""
    event = as_datetime(event_us)
    ids = list(ids)
    for start in range(0, len(ids), batch):
        client.write_rows(table, rows_at(table, ids[start:start + batch], event))


def load_both_layouts(client: Client, raw, table: str, entities: int, event_us: int) -> None:
    """`entities` rows of `table` in feast-lua's layout (write_rows) and in Feast's
    (feast_layout.py, byte for byte), then a sample of both checked."""
    import feast_layout

    apply_tables(client, [table])
    write_lua(client, table, range(entities), event_us)
    layout = feast_layout.ViewLayout(table)
    layout.write(raw, range(entities), event_us)
    ids = range(0, entities, 997)
    join_key = data.TABLES[table][0]
    reply = client.get_online_features(refs(table), [{join_key: e} for e in ids]).to_dict()
    for i, name in enumerate(layout.names):
        assert reply[f"{table}:{name}"] == [data.read_back(i, e) for e in ids], name
    assert not layout.mismatches(raw, ids, event_us)


class ReadContenders:
    """Contenders a, b and c of one request shape, as the read benchmarks time them. A subclass
    sets client, raw, feast, refs, rows, `commands` ((key, fields) per HMGET) and `name`
    (the request's name in the Feast process)."""

    def a(self) -> dict:
        return self.client.get_online_features(self.refs, self.rows).to_dict(include_statuses=True)

    def b(self) -> list:
        pipe = self.raw.pipeline(transaction=False)
        for key, fields in self.commands:
            pipe.hmget(key, fields)
        return pipe.execute()

    def c_times(self, n: int) -> list[float]:
        return self.feast.ask("run", name=self.name, n=n)["ms"]


def stop_workers(queues, procs) -> None:
    """Tells each benchmark worker process to finish, and ends those that do not."""
    for q in queues:
        q.put(None)
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.terminate()


def refs(table: str) -> list[str]:
    return [f"{table}:{n}" for n in data.feature_names(table)]


def percentile(samples, q: float) -> float:
    """Nearest rank: with fewer than 100 samples p99 is the maximum."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def library_version() -> str:
    """The commit of the library code measured, marked when its files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "feast_lua", "lua", "templates"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def environment(url: str) -> str:
    import hiredis
    import msgpack

    info = redis.Redis.from_url(url).info("server")
    return (f"Redis {info['redis_version']}, Python {sys.version.split()[0]}, "
            f"redis-py {redis.__version__}, hiredis {hiredis.__version__}, "
            f"msgpack {'.'.join(map(str, msgpack.version))}, library at {library_version()}")


@contextlib.contextmanager
def redis_url(url: str | None, extra_args: list[str] | None = None):
    """The given Redis, or a throwaway redis-server from docker/redis.conf for the block.

    Every script takes --redis-url for the first; that Redis is written to."""
    if url:
        yield url
        return
    with RedisServer(extra_args=extra_args) as server:
        yield server.url


def main_thread_cpu_us(r: redis.Redis) -> float:
    """redis-server's main-thread CPU (user + sys) in microseconds: commands, I/O and parsing."""
    cpu = r.info("cpu")
    return (cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"]) * 1e6


SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


def command_usec(r: redis.Redis) -> tuple[float, dict[str, int]]:
    """INFO commandstats: the usec of the commands a client sent, and every command's calls.

    Commands that a script runs are listed too (with calls and usec of their own), but their
    time is already inside the script command's usec, so when any script command ran only the
    script commands' usec is summed. INFO and CONFIG (the benchmark's own) are left out.
    """
    stats = r.info("commandstats")
    usec, calls = {}, {}
    for name, s in stats.items():
        command = name.removeprefix("cmdstat_")
        if command == "info" or command.startswith("config"):
            continue
        usec[command] = s["usec"]
        calls[command] = s["calls"]
    scripts = [c for c in usec if c in SCRIPT_COMMANDS]
    return float(sum(usec[c] for c in scripts or usec)), calls


def script_usec(r: redis.Redis) -> tuple[int, float]:
    """Script calls (EVALSHA, EVALSHA_RO, ...) and their usec since the last CONFIG RESETSTAT."""
    usec, calls = command_usec(r)
    count = sum(calls.get(c, 0) for c in SCRIPT_COMMANDS)
    return count, usec if count else 0.0
