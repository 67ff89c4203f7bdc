"""The Feast venv, built on demand, and the subprocess that runs feast_side.py in it.

feast-lua does not depend on feast. The benchmarks that compare against it build a separate
venv, benchmarks/.feast-venv (gitignored), with `pip install feast[redis]==FEAST_VERSION`, once,
and reuse it afterwards: a stamp file records what was installed, so a half-built venv is
rebuilt. Building it takes a minute or a few (pandas, pyarrow, numpy, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".feast-venv"
# The newest feast at the time of writing; it supports Python 3.10-3.12 and ships
# entity_key_serialization_version 3 (the only one it still writes).
FEAST_VERSION = "0.67.0"
REQUIREMENT = f"feast[redis]=={FEAST_VERSION}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path = DEFAULT_VENV, rebuild: bool = False) -> Path:
    """The Feast venv's python, building the venv first when it is missing or incomplete."""
    stamp = venv / ".feast-lua-bench-stamp"
    if not rebuild and stamp.exists() and stamp.read_text().strip() == REQUIREMENT:
        return venv_python(venv)
    print(f"building {venv} with {REQUIREMENT} (once; takes a few minutes)...", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, REQUIREMENT], check=True)
    stamp.write_text(REQUIREMENT + "\n")
    return venv_python(venv)


class FeastError(RuntimeError):
    pass


class FeastSide:
    """feast_side.py in a subprocess: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, python: Path, timeout_s: float = 600.0):
        env = dict(os.environ, FEAST_USAGE="False", PYTHONUNBUFFERED="1")
        env.pop("VIRTUAL_ENV", None)
        self.timeout_s = timeout_s
        self.process = subprocess.Popen(
            [str(python), str(HERE / "feast_side.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=None, env=env, text=True, bufsize=1)

    def ask(self, op: str, **args: object) -> dict:
        if self.process.poll() is not None:
            raise FeastError(f"feast_side.py exited with {self.process.returncode}")
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise FeastError(f"feast_side.py ended without answering {op!r}")
        reply = json.loads(line)
        if "error" in reply:
            raise FeastError(f"feast {op} failed: {reply['error']}\n{reply.get('trace', '')}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> FeastSide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
