"""ACL users, AUTH and TLS against a real redis-server configured as docker/redis.conf's
security section says (docs/SECURITY.md): TLS only, client certificates required, the default
user off, and one user per role."""

from __future__ import annotations

import json
import time

import pytest
import redis
from conftest import NOW, SEED_REFS, driver, driver_trips, trip_row
from helpers_redis import snapshot
from helpers_security import USERS, SecureRedisServer, conf_lines

from feast_lua import Client, ConfigurationError, FeastLuaError, RedisUnavailableError, ScriptError
from feast_lua.keys import entity_key
from feast_lua.loader import load_scripts
from feast_lua.registry_store import registry_key
from feast_lua.resources import checkout_root
from feast_lua.types import ValueType

SCRIPTS = load_scripts()
KEY = entity_key("default", {"driver_id": (ValueType.INT64, 1)})
REGISTRY = registry_key("default")


@pytest.fixture(scope="module")
def server():
    try:
        secure = SecureRedisServer()
    except RuntimeError as e:  # no openssl
        pytest.skip(str(e))
    with secure:
        yield secure


def client_as(server: SecureRedisServer, user: str, **options) -> Client:
    password = USERS[user]
    url = f"rediss://{user}:{password}@127.0.0.1:{server.port}"
    return Client(url, **{**server.tls_options(), **options})


@pytest.fixture
def ops(server):
    r = server.raw("ops")
    r.flushall()
    r.script_flush()
    with client_as(server, "feast-admin") as admin:
        admin.apply([driver, driver_trips])
    with client_as(server, "feast-writer") as writer:
        writer.write_rows("driver_trips", [trip_row(1), trip_row(2)])
    yield r
    r.close()


def rating(client: Client, driver_id: int = 1):
    response = client.get_online_features(SEED_REFS, [{"driver_id": driver_id}])
    return response.to_dict()["driver_trips:rating"][0]


def test_the_documented_acl_lines_are_the_ones_tested():
    lines = conf_lines("ACL")
    assert [line.split()[1] for line in lines] == ["default", "feast-serving", "feast-writer",
                                                    "feast-admin", "feast-stream", "ops"]
    root = checkout_root()
    if root is None:
        pytest.skip("docs/ ships only in a source checkout")
    doc = (root / "docs" / "SECURITY.md").read_text()
    for line in lines:
        assert line in doc, f"docs/SECURITY.md lacks: {line}"


def test_serving_user_can_serve_and_reloads_the_read_script_itself(server, ops):
    with client_as(server, "feast-serving") as serving:
        assert rating(serving) == 4.5
        ops.script_flush()  # as after a restart: the serving user loads the script on NOSCRIPT
        assert rating(serving) == 4.5
        assert serving.list_feature_tables()[0].name == "driver_trips"


def test_serving_user_cannot_write_delete_or_apply_through_the_client(server, ops):
    before = snapshot(ops)
    with client_as(server, "feast-serving") as serving:
        with pytest.raises(ScriptError, match="no permissions"):
            serving.write_rows("driver_trips", [trip_row(1, rating=1.0)])
        with pytest.raises(ScriptError, match="no permissions"):
            serving.apply([driver])
    assert snapshot(ops) == before


OTHER_SCRIPT = b"#!lua flags=no-writes\nreturn redis.call('HGET', KEYS[1], 'driver_trips')"


@pytest.mark.parametrize("command", [
    ("HSET", KEY, "driver_trips", b"x"),
    ("HDEL", KEY, "driver_trips"),
    ("DEL", KEY),
    ("UNLINK", KEY),
    ("EXPIRE", KEY, 1),
    ("SET", b"{}fl:x", b"y"),
    ("RENAME", KEY, b"{}fl:y"),
    ("HSET", REGISTRY, "version", 99),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("KEYS", "*"),
    ("SCAN", 0),
    ("GET", b"outside"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("ACL", "SETUSER", "feast-serving", "+@all"),
    ("SCRIPT", "FLUSH"),
    ("SCRIPT", "KILL"),
    ("EVAL", "return 1", 0),
    ("EVAL_RO", "return 1", 0),
    ("EVALSHA", SCRIPTS["read"].sha, 1, KEY, 1, 1, "driver_trips", 1, 0, 1, 1, 0),
    ("EVALSHA", SCRIPTS["write"].sha, 0, "driver_trips", 0),
    ("EVALSHA_RO", SCRIPTS["registry_put"].sha, 1, REGISTRY, 0, "{}"),
    ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() return 1 end)"),
    ("FCALL", "x", 0),
    ("SHUTDOWN", "NOSAVE"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("MIGRATE", "127.0.0.1", 1, KEY, 0, 100),
])
def test_serving_user_cannot_run_anything_else(server, ops, command):
    before = snapshot(ops)
    serving = server.raw("feast-serving")
    with pytest.raises(redis.exceptions.NoPermissionError):
        serving.execute_command(*command)
    serving.close()
    assert snapshot(ops) == before


def test_serving_user_cannot_run_a_script_it_loaded(server, ops):
    serving = server.raw("feast-serving")
    sha = serving.script_load(OTHER_SCRIPT)  # loading compiles; it does not run anything
    serving.script_load(SCRIPTS["read"].source)
    with pytest.raises(redis.exceptions.NoPermissionError):
        serving.execute_command("EVALSHA_RO", sha, 1, KEY)
    assert serving.execute_command("EVALSHA_RO", SCRIPTS["read"].sha, 1, KEY, 1, 1,
                                   "driver_trips", 1, 0, 1, 1, 0).startswith(b"\x94")
    serving.close()


def test_writer_user_writes_but_cannot_apply_or_delete(server, ops):
    with client_as(server, "feast-writer") as writer:
        assert writer.write_rows("driver_trips", [trip_row(3)]).written == 1
        assert rating(writer, 3) == 4.5
        before = snapshot(ops)
        with pytest.raises(ScriptError, match="no permissions"):
            writer.apply([driver])
        raw = server.raw("feast-writer")
        for command in (("DEL", KEY), ("HDEL", KEY, "driver_trips"), ("HSET", REGISTRY, "version", 9),
                        ("EVAL", "return 1", 0), ("FLUSHALL",), ("SCRIPT", "FLUSH")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                raw.execute_command(*command)
        raw.close()
        assert snapshot(ops) == before


def test_stream_user_runs_a_stream_worker_but_cannot_apply_or_delete(server, ops):
    from feast_lua.stream import StreamWorker

    ops.script_flush()  # the worker loads stream_write itself
    row = json.dumps({"driver_id": 5, "average_daily_rides": 1.0, "maximum_daily_rides": 2,
                      "rating": 3.0, "event_timestamp": NOW.isoformat()})
    ops.xadd("events:trips", {"table": "driver_trips", "row": row})
    ops.xadd("events:trips", {"table": "driver_trips", "row": "not json"})
    with client_as(server, "feast-stream") as client:
        result = StreamWorker(client, "events:trips", "workers", "w1", block_ms=0).step()
        assert (result.written, result.dead_lettered) == (1, 1)
        assert ops.xlen("events:trips:dead-letter") == 1
        before = snapshot(ops)
        with pytest.raises(ScriptError, match="no permissions"):
            client.write_rows("driver_trips", [trip_row(3)])
        with pytest.raises(ScriptError, match="no permissions"):
            client.apply([driver])
        raw = server.raw("feast-stream")
        for command in (("DEL", KEY), ("XTRIM", "events:trips", "MAXLEN", 0), ("XADD", "other", "*", "a", 1),
                        ("EVAL", "return 1", 0), ("FLUSHALL",), ("HSET", REGISTRY, "version", 9)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                raw.execute_command(*command)
        raw.close()
        assert snapshot(ops) == before
    with client_as(server, "feast-admin") as admin:
        assert rating(admin, 5) == 3.0


def test_admin_user_applies_and_loads_scripts_but_is_no_superuser(server, ops):
    ops.script_flush()
    with client_as(server, "feast-admin") as admin:
        admin.apply([driver, driver_trips])
        assert admin.write_rows("driver_trips", [trip_row(4)]).written == 1
        assert rating(admin, 4) == 4.5
    raw = server.raw("feast-admin")
    for command in (("DEL", KEY), ("FLUSHALL",), ("CONFIG", "GET", "*"), ("EVAL", "return 1", 0)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.execute_command(*command)
    raw.close()


def test_auth_is_required_and_checked(server, ops):
    anonymous = Client(server.url, **server.tls_options())
    with pytest.raises(RedisUnavailableError, match="(?i)auth"):
        rating(anonymous)
    start = time.monotonic()
    wrong = Client(f"rediss://feast-serving:wrong@127.0.0.1:{server.port}", **server.tls_options())
    with pytest.raises(RedisUnavailableError, match="invalid username-password"):
        rating(wrong)
    assert time.monotonic() - start < 5  # a few bounded retries, then the error
    # host/port form with username and password
    with Client(host="127.0.0.1", port=server.port, username="feast-serving",
                password=USERS["feast-serving"], **server.tls_options()) as serving:
        assert rating(serving) == 4.5


def test_tls_is_required_and_verified(server, ops):
    # Plain TCP to the TLS port: no answer that redis-py can read.
    plain = Client(f"redis://feast-serving:{USERS['feast-serving']}@127.0.0.1:{server.port}",
                   socket_timeout=1, socket_connect_timeout=1, retries=0)
    with pytest.raises(RedisUnavailableError):
        rating(plain)
    # A client that does not trust the server's CA refuses the server.
    untrusting = client_as(server, "feast-serving", ssl_ca_certs=str(server.certs["other-ca.crt"]),
                           retries=0)
    with pytest.raises(RedisUnavailableError, match="(?i)certificate"):
        rating(untrusting)
    # The server requires a client certificate (tls-auth-clients yes).
    no_cert = Client(f"rediss://feast-serving:{USERS['feast-serving']}@127.0.0.1:{server.port}",
                     ssl_ca_certs=str(server.certs["ca.crt"]), retries=0)
    with pytest.raises(RedisUnavailableError):
        rating(no_cert)
    with client_as(server, "feast-serving") as serving:
        assert rating(serving) == 4.5


def test_tls_options_need_a_tls_url():
    with pytest.raises(ConfigurationError, match="rediss://"):
        Client("redis://127.0.0.1:1", ssl_ca_certs="/nowhere/ca.crt")
    with pytest.raises(ConfigurationError, match="retries"):
        Client("redis://127.0.0.1:1", retries=-1)
    assert issubclass(ConfigurationError, FeastLuaError)
