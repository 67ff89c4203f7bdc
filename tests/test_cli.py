"""`feast-lua scripts list|show|load` against the shipped lua/ and a real throwaway redis-server."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feast_lua import cli
from feast_lua.server import free_port

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = json.loads((ROOT / "lua" / "manifest.json").read_text())["scripts"]


def run_cli(*args: str, text: bool = True) -> subprocess.CompletedProcess:
    """The real entry point, as a console script would run it (cwd: the checkout)."""
    return subprocess.run([sys.executable, "-m", "feast_lua.cli", *args], cwd=ROOT, capture_output=True,
                          text=text, timeout=60)


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^feast-lua = "feast_lua\.cli:main"$', section, re.M)
    assert callable(cli.main)


@pytest.mark.parametrize("args", [[], ["scripts"], ["scripts", "list"], ["scripts", "show"],
                                  ["scripts", "load"]], ids=lambda a: " ".join(a) or "top")
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: feast-lua")
    if args[-1:] == ["load"]:
        assert "--redis-url" in out and "REDIS_URL" in out


def test_subprocess_help_and_missing_command():
    assert run_cli("--help").returncode == 0
    done = run_cli()
    assert done.returncode == 2 and "required" in done.stderr
    assert run_cli("scripts").returncode == 2


def test_list_matches_manifest(capsys):
    assert cli.main(["scripts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "sha1", "flags"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {name: [spec["sha1"], spec["flags"] or "-"] for name, spec in MANIFEST.items()}
    assert rows["read"] == [MANIFEST["read"]["sha1"], "no-writes"]


def test_list_json(capsys):
    assert cli.main(["scripts", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {name: {"sha1": s["sha1"], "flags": s["flags"], "file": s["file"]}
                      for name, s in MANIFEST.items()}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_show_prints_exact_bytes(name, capsysbinary):
    assert cli.main(["scripts", "show", name]) == 0
    out = capsysbinary.readouterr().out
    assert out == (ROOT / "lua" / MANIFEST[name]["file"]).read_bytes()
    assert hashlib.sha1(out).hexdigest() == MANIFEST[name]["sha1"]


def test_show_through_subprocess_and_unknown_name():
    done = run_cli("scripts", "show", "read", text=False)
    assert done.returncode == 0
    assert hashlib.sha1(done.stdout).hexdigest() == MANIFEST["read"]["sha1"]
    done = run_cli("scripts", "show", "nope")
    assert done.returncode == 1 and "no script 'nope'" in done.stderr and done.stdout == ""


def test_load_into_a_fresh_server(raw, redis_server):
    shas = [spec["sha1"] for spec in MANIFEST.values()]
    assert raw.script_exists(*shas) == [False] * len(shas)
    done = run_cli("scripts", "load", "--redis-url", redis_server.url)
    assert done.returncode == 0, done.stderr
    printed = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()}
    assert printed == {name: spec["sha1"] for name, spec in MANIFEST.items()}
    assert raw.script_exists(*shas) == [True] * len(shas)


def test_load_takes_redis_url_from_the_environment(raw, redis_server, capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert cli.main(["scripts", "load"]) == 0
    assert capsys.readouterr().out.count("loaded") == len(MANIFEST)
    assert all(raw.script_exists(*[s["sha1"] for s in MANIFEST.values()]))


def test_load_fails_clearly_without_a_server():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}"
    done = run_cli("scripts", "load", "--redis-url", url)
    assert done.returncode == 1
    assert "SCRIPT LOAD" in done.stderr and "hunter2" not in done.stderr


def test_a_hand_edited_script_is_refused_and_nothing_loaded(raw, redis_server, tmp_path, monkeypatch,
                                                            capsys):
    folder = tmp_path / "lua"
    shutil.copytree(ROOT / "lua", folder)
    (folder / "write.lua").write_bytes((folder / "write.lua").read_bytes() + b"\n-- edited\n")
    monkeypatch.setattr(cli, "lua_dir", lambda: folder)
    assert cli.main(["scripts", "load", "--redis-url", redis_server.url]) == 1
    assert "write.lua has SHA-1" in capsys.readouterr().err
    assert raw.script_exists(*[s["sha1"] for s in MANIFEST.values()]) == [False] * len(MANIFEST)
    assert cli.main(["scripts", "list"]) == 1
    assert cli.main(["scripts", "show", "write"]) == 1
