"""Faults under load: script cache loss, restarts, stopped servers, out of memory.

Each test runs its own redis-server, so the fault stays inside it. Long forms: stress/faults.py.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import redis
from helpers_faults import REFS, TABLE, FaultLoad, flush_scripts_under_load, row
from helpers_redis import snapshot

from feast_lua import Client, Entity, Feature, FeatureTable, RedisUnavailableError, ScriptError, ValueType
from feast_lua.loader import load_scripts
from feast_lua.server import RedisServer


@contextmanager
def stopped(server: RedisServer):
    """The server frozen with SIGSTOP, as a hung host or a long GC pause looks to a client."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    except Exception as e:
        return time.monotonic() - start, e
    return time.monotonic() - start, None


# --- Script cache loss ----------------------------------------------------------------------------

def test_script_flush_in_a_loop_under_load_gives_no_wrong_answer_and_no_failure():
    flushes, counts = flush_scripts_under_load(2.0)
    assert flushes > 200
    assert counts.reads > 50 and counts.writes > 50, counts
    assert counts.wrong_answers == 0, counts.wrong
    assert counts.unexpected == []
    assert counts.failed == 0, counts


def restart_under_load(retries: int, restarts: int = 3):
    """Restarts a persistent server (AOF, fsync always: an acknowledged write survives) several
    times under load. Returns the load's counts."""
    args = ["--appendonly", "yes", "--appendfsync", "always"]
    with RedisServer(extra_args=args) as server:
        load = FaultLoad(server.url, retries=retries, socket_timeout=2, socket_connect_timeout=2)
        load.setup()
        with load:
            for _ in range(restarts):
                load.wait_for(reads=load.counts.reads + 10, writes=load.counts.writes + 5)
                server.restart()
            # Recovery needs no manual step: the same clients go on reading and writing.
            load.wait_for(reads=load.counts.reads + 20, writes=load.counts.writes + 10)
        with Client(server.url) as client:
            client.write_rows(TABLE.name, [row(0, 10**6)])
            assert client.get_online_features(REFS, [{"driver_id": 0}]).to_dict()[REFS[0]] == [10**6]
        return load.counts


def test_restart_under_load_with_retries_rides_through():
    counts = restart_under_load(retries=10)
    assert counts.wrong_answers == 0, counts.wrong
    assert counts.unexpected == []
    # Requests in flight reconnect and succeed within the retry budget.
    assert counts.failed == 0, counts


def test_restart_under_load_without_retries_raises_only_the_documented_error():
    counts = restart_under_load(retries=0)
    assert counts.wrong_answers == 0, counts.wrong
    assert counts.unexpected == []  # every failure is a RedisUnavailableError
    assert counts.reads > 0 and counts.writes > 0


# --- Timeouts and stopped servers -----------------------------------------------------------------

SEED = [Entity("driver_id", ValueType.INT64), TABLE]


def seeded_server(*extra_args: str) -> RedisServer:
    server = RedisServer(extra_args=list(extra_args)).start()
    with Client(server.url) as client:
        client.apply(SEED)
        client.write_rows(TABLE.name, [row(1, 1)])
    return server


@pytest.fixture
def frozen_server():
    """A stopped server's kernel still completes TCP handshakes (into the listen backlog), so
    connects succeed and each attempt waits one socket_timeout for the reply."""
    server = seeded_server()
    yield server
    server.close()


@pytest.fixture
def full_backlog_server():
    """With a listen backlog of 1, connects hang once a couple are pending: socket_connect_timeout
    is what ends them."""
    server = seeded_server("--tcp-backlog", "1")
    yield server
    server.close()


def read_one(client: Client):
    return client.get_online_features(REFS, [{"driver_id": 1}]).to_dict()[REFS[0]][0]


def test_read_timeout_is_configurable_and_retries_are_bounded(frozen_server):
    clients = {r: Client(frozen_server.url, socket_timeout=0.3, retries=r) for r in (0, 2)}
    for client in clients.values():
        assert read_one(client) == 1  # connected, registry cached
    with stopped(frozen_server):
        for retries, client in clients.items():
            elapsed, error = timed(lambda c=client: read_one(c))
            assert isinstance(error, RedisUnavailableError), error
            assert "Timeout" in str(error)
            # Each attempt waits one socket_timeout; backoff adds well under a second.
            attempts = retries + 1
            assert 0.3 * attempts - 0.05 <= elapsed <= 0.3 * attempts + 1.5, (retries, elapsed)
    for client in clients.values():  # resumed: the same clients work, no manual step
        assert read_one(client) == 1
        client.close()


def test_writes_and_registry_refreshes_time_out_with_the_documented_error(frozen_server):
    client = Client(frozen_server.url, socket_timeout=0.3, socket_connect_timeout=0.3, retries=1)
    assert read_one(client) == 1
    admin = redis.Redis.from_url(frozen_server.url)
    before = snapshot(admin)
    with stopped(frozen_server):
        for fn in (lambda: read_one(client),  # leaves the pool without a live connection
                   lambda: client.write_rows(TABLE.name, [row(1, 2)]),
                   lambda: client.write_rows(TABLE.name, [row(1, 3)]),
                   lambda: client.list_feature_tables(),
                   lambda: client.apply(SEED)):
            elapsed, error = timed(fn)
            assert isinstance(error, RedisUnavailableError), repr(error)
            # Reconnecting may time out too: at most (retries + 1)**2 waits of 0.3 s.
            assert elapsed < 0.3 * 4 + 1.5
    # Resumed. Redis may still run what was queued before the timeouts (the writes of versions 2
    # and 3): the row is one of the rows sent, never a mix, and sending again is harmless.
    assert read_one(client) in (1, 2, 3)
    result = client.write_rows(TABLE.name, [row(1, 3)])
    assert result.written + result.skipped == 1
    assert read_one(client) == 3
    assert set(snapshot(admin)) == set(before)
    client.close()
    admin.close()


def test_connect_timeout_is_configurable(full_backlog_server):
    frozen_server = full_backlog_server
    fillers = []
    with stopped(frozen_server):
        for _ in range(10):
            s = socket.socket()
            s.settimeout(0.2)
            fillers.append(s)
            try:
                s.connect(("127.0.0.1", frozen_server.port))
            except OSError:
                break
        else:
            pytest.fail("the listen backlog never filled up")
        for retries in (0, 2):
            client = Client(frozen_server.url, socket_connect_timeout=0.3, socket_timeout=5, retries=retries)
            elapsed, error = timed(lambda c=client: read_one(c))
            assert isinstance(error, RedisUnavailableError), repr(error)
            assert "connecting" in str(error)
            assert elapsed < 0.3 * (retries + 1) ** 2 + 1.5, (retries, elapsed)
            client.close()
    for s in fillers:
        s.close()
    with Client(frozen_server.url, socket_connect_timeout=0.3) as client:
        assert read_one(client) == 1


def test_requests_in_flight_through_a_short_stop_succeed_by_retrying(frozen_server):
    client = Client(frozen_server.url, socket_timeout=0.25, retries=6)
    assert read_one(client) == 1
    for fn, check in ((lambda: read_one(client), lambda got: got == 1),
                      (lambda: client.write_rows(TABLE.name, [row(1, 5)]),
                       lambda got: got.written + got.skipped == 1)):
        os.kill(frozen_server.process.pid, signal.SIGSTOP)
        resume = threading.Timer(0.6, os.kill, (frozen_server.process.pid, signal.SIGCONT))
        resume.start()
        try:
            got = fn()
        finally:
            resume.join()
        assert check(got), got
    assert read_one(client) == 5
    client.close()


# --- Out of memory ----------------------------------------------------------------------------------

def test_out_of_memory_refuses_writes_clearly_and_reads_keep_working():
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        client = Client(server.url)
        client.apply(SEED)
        client.write_rows(TABLE.name, [row(i, 1) for i in range(100)])
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] + 256 * 1024)
        error = None
        for batch in range(200):  # fill memory until Redis refuses a write
            try:
                client.write_rows(TABLE.name, [row(1000 + batch * 500 + i, 1) for i in range(500)])
            except ScriptError as e:
                error = e
                break
        assert error is not None, "maxmemory was never reached"
        for text in ("out of memory", "maxmemory", "write"):
            assert text in str(error), str(error)
        # A refused write frees its own query buffer, which may take Redis back under the limit
        # for a moment; pin the limit below what is used, so every write below is refused.
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] // 2)

        before = snapshot(admin)
        with pytest.raises(ScriptError, match="out of memory"):
            client.write_rows(TABLE.name, [row(1, 2)])
        with pytest.raises(ScriptError, match="out of memory"):
            client.apply(FeatureTable("more", ["driver_id"], [Feature("z", ValueType.INT64)]))
        assert snapshot(admin) == before  # nothing was written

        # Reads keep working, also when the script must be loaded again first.
        admin.script_flush()
        assert read_one(client) == 1
        assert client.get_online_features(REFS, [{"driver_id": i} for i in range(100)]).to_dict()[
            REFS[1]] == [-1] * 100
        # That is the read script's no-writes flag at work: the same body without it is refused.
        read = load_scripts()["read"].source
        unflagged = read.replace(b"#!lua flags=no-writes\n", b"#!lua\n", 1)
        assert unflagged != read
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            admin.eval(unflagged, 1, b"k", 1, 1, b"counters", 1, 0, 1, 1, 0)

        admin.config_set("maxmemory", 0)  # memory freed or raised: writes work again
        assert client.write_rows(TABLE.name, [row(1, 2)]).written == 1
        assert read_one(client) == 2
        client.close()
        admin.close()
