"""Script loading, NOSCRIPT recovery, the rendered lua/ and what the wheel ships."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import redis
from conftest import SEED_REFS, trip_row

from feast_lua import Client, ConfigurationError, RedisUnavailableError
from feast_lua.loader import load_scripts
from feast_lua.render import check, render_all
from feast_lua.resources import lua_dir
from feast_lua.server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def test_lua_dir_matches_the_templates():
    assert check(lua_dir()) == []


def test_check_mode_fails_on_a_difference(tmp_path):
    for name, text in render_all().items():
        (tmp_path / name).write_text(text)
    assert check(tmp_path) == []
    (tmp_path / "read.lua").write_text((tmp_path / "read.lua").read_text() + "-- edited\n")
    (tmp_path / "stray.lua").write_text("")
    assert check(tmp_path) == ["read.lua", "stray.lua"]
    result = subprocess.run([sys.executable, "-m", "feast_lua.render", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_scripts_carry_headers_and_the_read_script_is_read_only():
    scripts = load_scripts()
    assert set(scripts) == {"read", "write", "stream_write", "registry_put", "feast_read", "feast_write"}
    for script in scripts.values():
        text = script.source.decode()
        for word in ("KEYS", "ARGV", "Reply", "Errors"):
            assert word in text.split("]]")[0], (script.name, word)
    assert scripts["read"].source.startswith(b"#!lua flags=no-writes\n")
    assert not scripts["write"].source.startswith(b"#!lua flags=no-writes")
    assert scripts["feast_read"].source.startswith(b"#!lua flags=no-writes\n")
    assert not scripts["feast_write"].source.startswith(b"#!lua flags=no-writes")


def test_read_script_runs_with_evalsha_ro(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(1)])
    plan_call = seeded.get_online_features(SEED_REFS, [{"driver_id": 1}])
    assert plan_call.to_dict()["driver_trips:rating"] == [4.5]
    sha = load_scripts()["read"].sha
    key = next(k for k in raw.scan_iter() if b"registry" not in k)
    reply = raw.execute_command("EVALSHA_RO", sha, 1, key, 1, 1, b"driver_trips", 1, 0, 1, 1, 2)
    assert reply.startswith(b"\x94")


def test_noscript_after_script_flush_is_recovered(seeded, raw):
    seeded.write_rows("driver_trips", [trip_row(1)])
    for _ in range(3):
        raw.script_flush()
        d = seeded.get_online_features(SEED_REFS, [{"driver_id": 1}]).to_dict()
        assert d["driver_trips:rating"] == [4.5]
        raw.script_flush()
        assert seeded.write_rows("driver_trips", [trip_row(2)]).written in (0, 1)
    seeded.max_cells_per_call = 3  # a pipeline of calls, all answered NOSCRIPT
    raw.script_flush()
    d = seeded.get_online_features(SEED_REFS, [{"driver_id": i} for i in range(5)]).to_dict()
    assert d["driver_trips:rating"] == [None, 4.5, 4.5, None, None]


def test_server_restart_between_calls_is_recovered():
    with RedisServer() as server:
        client = Client(server.url)
        from conftest import driver, driver_trips

        client.apply([driver, driver_trips])
        client.write_rows("driver_trips", [trip_row(1)])
        assert client.get_online_features(SEED_REFS, [{"driver_id": 1}]).to_dict()
        redis.Redis.from_url(server.url).save()  # keep the data across the restart
        server.stop()
        server.start()
        assert redis.Redis.from_url(server.url).script_exists(load_scripts()["read"].sha) == [False]
        d = client.get_online_features(SEED_REFS, [{"driver_id": 1}]).to_dict()
        assert d["driver_trips:rating"] == [4.5]
        client.close()


def test_unreachable_redis_raises_a_clear_error():
    with RedisServer() as server:
        url = server.url
    client = Client(url, socket_connect_timeout=0.5)
    with pytest.raises(RedisUnavailableError, match="unreachable"):
        client.get_online_features(SEED_REFS, [{"driver_id": 1}])
    assert isinstance(RedisUnavailableError("x"), ConnectionError)


def test_decode_responses_is_refused(redis_server):
    with pytest.raises(ConfigurationError, match="decode_responses"):
        Client(redis=redis.Redis.from_url(redis_server.url, decode_responses=True))
    with pytest.raises(ConfigurationError, match="decode_responses"):
        Client(redis_server.url + "?decode_responses=True")


def test_constructor_forms(redis_server, seeded):
    seeded.write_rows("driver_trips", [trip_row(1)])
    port = int(redis_server.url.rsplit(":", 1)[1])
    for client in (Client(host="127.0.0.1", port=port), Client(redis=redis.Redis(port=port))):
        assert client.get_online_features(SEED_REFS, [{"driver_id": 1}]).to_dict()
        client.close()
    with pytest.raises(ConfigurationError):
        Client(redis_server.url, host="127.0.0.1")


def test_wheel_ships_scripts_templates_and_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("feast_lua-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("feast_lua/lua/read.lua", "feast_lua/lua/write.lua", "feast_lua/lua/manifest.json",
                 "feast_lua/lua/registry_put.lua", "feast_lua/lua/stream_write.lua",
                 "feast_lua/templates/read.lua.j2",
                 "feast_lua/templates/_macros.lua.j2", "feast_lua/redis.conf"):
        assert name in names
