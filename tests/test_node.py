"""The Node.js client in examples/node, written from docs/PROTOCOL.md alone, serves the same values
and statuses as the Python client, and passes the test vectors offline.

Skipped when `node` is not on PATH. `npm ci` runs once when examples/node/node_modules is missing
or older than package-lock.json (node_modules is kept between runs and ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from feast_lua import Client
from feast_lua.demo import REFS, run
from feast_lua.server import free_port

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "examples" / "node"
ENTITY_ROWS = [{"driver_id": i} for i in (1001, 1002, 1003, 1004)]

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="node is not on PATH (bash .ci/setup installs it)")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    installed = NODE_DIR / "node_modules" / ".package-lock.json"  # written by npm ci / install
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: install npm (bash .ci/setup does)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return NODE_DIR / "node_modules"


def node(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["node", script, *args], cwd=NODE_DIR, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def python_view(client: Client) -> dict:
    """The Python client's response in serve.js's JSON shape."""
    response = client.get_online_features(REFS, ENTITY_ROWS)
    out = response.to_dict(include_statuses=True, include_event_timestamps=True)
    out["statuses"] = {ref: [s.name for s in column] for ref, column in out["statuses"].items()}
    out["event_timestamps"] = {
        ref: [None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in column]
        for ref, column in out["event_timestamps"].items()}
    return out


def test_serve_matches_python(node_modules, raw, redis_server):
    with Client(redis_server.url) as client:
        run(client)
        want = python_view(client)
        raw.script_flush()  # serve.js must recover from NOSCRIPT by loading the script itself
        raw.config_resetstat()
        done = node("serve.js", "--redis-url", redis_server.url)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)
        assert got == want
        assert list(got) == list(want)  # the same column order
        assert got["driver_trips:rating"][0] == 4.800000190734863  # FLOAT is float32, as in Python
        assert got["statuses"] == {
            REFS[0]: ["PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
            REFS[1]: ["PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
            REFS[2]: ["PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND"]}
        stats = raw.info("commandstats")
        # The read went out as EVALSHA_RO (once NOSCRIPT, once after SCRIPT LOAD); no EVALSHA.
        assert stats["cmdstat_evalsha_ro"]["calls"] == 2
        assert stats["cmdstat_evalsha_ro"]["failed_calls"] == 1
        assert "cmdstat_evalsha" not in stats
        assert raw.script_exists(json.loads((ROOT / "lua" / "manifest.json").read_text())
                                 ["scripts"]["read"]["sha1"]) == [True]


def test_serve_unknown_project_and_dead_server(node_modules, raw, redis_server):
    done = node("serve.js", "--redis-url", redis_server.url, "--project", "nope")
    assert done.returncode == 1 and "no registry" in done.stderr
    done = node("serve.js", "--redis-url", f"redis://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "ECONNREFUSED" in done.stderr


def test_vectors_offline(node_modules):
    done = node("vectors.js")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vectors ok: 30 keys, 11 reads")


@pytest.mark.parametrize("tamper", ["key", "reply_status", "argv"])
def test_vectors_check_can_fail(node_modules, tmp_path, tamper):
    folder = tmp_path / "vectors"
    shutil.copytree(ROOT / "tests" / "vectors", folder)
    if tamper == "key":
        keys = json.loads((folder / "keys.json").read_text())
        keys["keys"][0]["key_hex"] = keys["keys"][0]["key_hex"][:-2] + "32"  # ...1001 -> ...1002
        (folder / "keys.json").write_text(json.dumps(keys))
    else:
        requests = json.loads((folder / "requests.json").read_text())
        call = next(s for s in requests["scenarios"] if s["name"] == "worked_example")["steps"][2]["calls"][0]
        if tamper == "argv":
            call["argv_hex"][4] = b"86400000001".hex()
        else:  # the reply says PRESENT where "expected" says OUTSIDE_MAX_AGE
            call["reply_hex"] = call["reply_hex"].replace("c40104", "c40101")
        (folder / "requests.json").write_text(json.dumps(requests))
    done = node("vectors.js", env={"FEAST_LUA_VECTORS": str(folder)})
    assert done.returncode != 0 and "AssertionError" in done.stderr
