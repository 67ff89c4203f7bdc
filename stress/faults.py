"""Fault injection, long form (docs/RELIABILITY.md; short forms in tests/test_faults.py).

    .venv/bin/python stress/faults.py [--flush-seconds 30] [--restarts 20] [--stops 20]

Three phases, each against its own throwaway redis-server on a loopback port, each under the
checked read/write load of tests/helpers_faults.py (a writer thread, two reader threads, every
request split into several script calls):

1. SCRIPT FLUSH in a loop (every 2 ms) for --flush-seconds;
2. --restarts restarts of a persistent server (AOF, fsync always), twice: with the client's
   retries (10) and with none;
3. --stops SIGSTOP pauses of 0.05 to 1.5 s, with socket_timeout 0.25 s and 3 retries, so short
   pauses are ridden out and long ones end in RedisUnavailableError.

Prints faults injected, requests, failed requests (all must be RedisUnavailableError) and wrong
answers (must be 0); exits non-zero on any wrong answer or unexpected error.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers_faults import FaultCounts, FaultLoad, flush_scripts_under_load  # noqa: E402

from feast_lua.server import RedisServer  # noqa: E402


def flush_phase(seconds: float) -> tuple[int, FaultCounts]:
    return flush_scripts_under_load(seconds)


def restart_phase(restarts: int, retries: int) -> tuple[int, FaultCounts]:
    with RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]) as server:
        load = FaultLoad(server.url, retries=retries, socket_timeout=2, socket_connect_timeout=2)
        load.setup()
        with load:
            for _ in range(restarts):
                load.wait_for(reads=load.counts.reads + 20, writes=load.counts.writes + 5)
                time.sleep(random.uniform(0, 0.3))
                server.restart()
            load.wait_for(reads=load.counts.reads + 20, writes=load.counts.writes + 10)
        return restarts, load.counts


def stop_phase(stops: int) -> tuple[int, FaultCounts]:
    with RedisServer() as server:
        load = FaultLoad(server.url, retries=3, socket_timeout=0.25, socket_connect_timeout=0.25)
        load.setup()
        with load:
            for _ in range(stops):
                load.wait_for(reads=load.counts.reads + 20, writes=load.counts.writes + 5)
                os.kill(server.process.pid, signal.SIGSTOP)
                try:
                    time.sleep(random.uniform(0.05, 1.5))
                finally:
                    os.kill(server.process.pid, signal.SIGCONT)
            load.wait_for(reads=load.counts.reads + 20, writes=load.counts.writes + 10)
        return stops, load.counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flush-seconds", type=float, default=30.0)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--stops", type=int, default=20)
    args = parser.parse_args()
    phases = [
        ("SCRIPT FLUSH loop", "flushes", lambda: flush_phase(args.flush_seconds)),
        ("restarts, retries=10", "restarts", lambda: restart_phase(args.restarts, 10)),
        ("restarts, retries=0", "restarts", lambda: restart_phase(args.restarts, 0)),
        ("SIGSTOP pauses", "stops", lambda: stop_phase(args.stops)),
    ]
    ok = True
    totals = {"faults": 0, "requests": 0, "failed": 0, "wrong": 0}
    for name, unit, phase in phases:
        start = time.monotonic()
        faults, counts = phase()
        print(f"{name}: {faults:,} {unit} in {time.monotonic() - start:.0f} s; "
              f"{counts.requests:,} requests ({counts.reads:,} reads, {counts.writes:,} writes ok); "
              f"failed {counts.failed:,} ({counts.failed_reads:,} reads, {counts.failed_writes:,} "
              f"writes), unexpected errors {len(counts.unexpected)}, wrong answers "
              f"{counts.wrong_answers}", flush=True)
        for line in counts.unexpected[:5] + counts.wrong[:5]:
            print(f"  {line}")
        ok &= counts.wrong_answers == 0 and not counts.unexpected
        totals["faults"] += faults
        totals["requests"] += counts.requests
        totals["failed"] += counts.failed
        totals["wrong"] += counts.wrong_answers
    print(f"total: {totals['faults']:,} faults injected, {totals['requests']:,} requests, "
          f"{totals['failed']:,} failed (RedisUnavailableError), {totals['wrong']} wrong answers")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
