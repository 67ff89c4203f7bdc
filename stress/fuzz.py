"""Fuzz tests, long form (docs/RELIABILITY.md; the suite runs tests/test_fuzz.py at scale 1).

    .venv/bin/python stress/fuzz.py [--scale 25]

Runs tests/test_fuzz.py (and the out-of-order write property of tests/test_consistency.py)
with FEAST_LUA_EXAMPLES_SCALE=--scale, that is 200 x scale hostile cases per fuzz test, and
prints how many cases each test tried. Exits with pytest's status.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=25.0)
    args = parser.parse_args()
    env = {**os.environ, "FEAST_LUA_EXAMPLES_SCALE": str(args.scale)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rxX",
               "--hypothesis-show-statistics", "tests/test_fuzz.py",
               "tests/test_consistency.py::test_stored_state_is_the_newest_write_whatever_the_order"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")
    cases: dict[str, int] = {}  # per test, summed over hypothesis's phases
    test = None
    for line in result.stdout.splitlines():
        if line.startswith("tests/") and line.endswith(":"):
            test = line[:-1].split("::")[-1]
        found = re.search(r"(\d+) passing, (\d+) failing", line)
        if found and test:
            cases[test] = cases.get(test, 0) + int(found.group(1)) + int(found.group(2))
    for test, count in cases.items():
        print(f"{test}: {count:,} cases")
    print(f"total: {sum(cases.values()):,} hypothesis cases")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
