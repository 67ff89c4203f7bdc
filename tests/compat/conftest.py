"""The real feast package, in its own venv (benchmarks/.feast-venv, built on first use), driven
through benchmarks/feast_side.py on the session's Redis. Every test here is marked `compat`; the
default test run leaves them out (pyproject.toml) and CI runs them (`.ci/run`). Each test module
here sets `pytestmark = pytest.mark.compat`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import feast_venv  # noqa: E402


@pytest.fixture(scope="session")
def feast_python() -> Path:
    """Builds the venv when it is missing (minutes, once); a failure to build fails the tests
    rather than skipping them, so CI cannot pass without running them."""
    return feast_venv.ensure_venv()


@pytest.fixture(scope="module")
def feast(feast_python, redis_server):
    with feast_venv.FeastSide(feast_python) as side:
        side.redis_address = f"127.0.0.1:{redis_server.port}"
        yield side
