"""Torn-read test, long form (docs/RELIABILITY.md; the short form is tests/test_consistency.py).

    .venv/bin/python stress/torn_reads.py [--cycles 100000] [--pipeline-cycles 20000]
                                          [--readers 2] [--writers 2] [--entities 40]

Writer processes update entities whose five features sit in three tables (two Redis hashes),
one version per update, each update one MULTI/EXEC of write script calls. Reader processes
request every feature of every entity at once and count entities whose features come from two
versions. First through feast-lua (half of the readers split each request into calls of 10 rows)
until --cycles read requests; then Feast's way, a non-transactional pipeline of HMGETs per
table, until --pipeline-cycles read requests. Exits non-zero if feast-lua tore a read or the
pipeline never did. Runs its own throwaway redis-server on a loopback port.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers_load import REFS, Counts, run_load, setup  # noqa: E402

from feast_lua.server import RedisServer  # noqa: E402

CHUNK_SECONDS = 20.0


def run(url: str, kind: str, cycles: int, args, split: int | None) -> tuple[Counts, float]:
    total = Counts()
    start = time.monotonic()
    while total.reads < cycles:
        # Each chunk's writers start above every version stored so far.
        base = int(time.time() * 1e6) - 1_700_000_000_000_000
        counts = run_load(url, kind, CHUNK_SECONDS, readers=args.readers, writers=args.writers,
                          entities=args.entities, max_cells_per_call=split, version_base=base)
        total.add(counts)
        print(f"  {kind}: {total.reads:,} reads, {total.writes:,} writes, "
              f"{total.torn_responses:,} torn responses so far", flush=True)
        if counts.errors:
            break
    return total, time.monotonic() - start


def report(kind: str, counts: Counts, seconds: float) -> None:
    print(f"{kind}: {counts.reads:,} read requests ({counts.entity_checks:,} entity rows checked) "
          f"and {counts.writes:,} write transactions ({counts.rows_written:,} rows) in {seconds:.0f} s")
    print(f"{kind}: torn responses {counts.torn_responses:,}, torn entity rows "
          f"{counts.torn_entities:,}, regressions {counts.regressions:,}, errors {len(counts.errors)}")
    for example in counts.examples[:3]:
        print(f"  e.g. {example}")
    for error in counts.errors[:5]:
        print(f"  error: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100_000, help="feast-lua read requests")
    parser.add_argument("--pipeline-cycles", type=int, default=20_000, help="pipeline read requests")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--entities", type=int, default=40)
    args = parser.parse_args()
    with RedisServer() as server:
        setup(server.url, args.entities)
        lua, lua_s = run(server.url, "feast_lua", args.cycles, args, 10 * len(REFS))
        pipe, pipe_s = run(server.url, "pipeline", args.pipeline_cycles, args, None)
    report("feast-lua", lua, lua_s)
    report("pipeline", pipe, pipe_s)
    ok = (lua.torn_responses == 0 and lua.regressions == 0 and not lua.errors and not pipe.errors
          and pipe.torn_responses > 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
