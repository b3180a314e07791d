"""How well does the latency proxy hold its RTT with many connections busy?

Starts the path a run would (`injected_latency`: the proxy, its hop measured and held back,
the path checked), then, for each number of connections N, lets N - 1 asyncpg connections in
another process query `SELECT 1` through it as fast as they can while a psycopg connection
here times 750 round trips of its own. Prints, per N: what the proxy says it held per
request/reply pair (p50, p99; `rtt_seen_ms`, as benchmarks record it), what the probe client
timed (p50, p99: the held delay, the server's time and the client's own delays), the round
trips per second through the proxy, and the CPU the proxy used, in cores.

Usage: python scripts/latency_accuracy.py [--rtt-ms 2] [--connections 1,16,64]
       [--postgres URL]   (no URL: the embedded server)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from sqlabench.backends import POSTGRES_URL_ENV, PostgresTarget, postgres_target
from sqlabench.latency import injected_latency

LOADER = """
import asyncio, sys, asyncpg
async def one(dsn):
    connection = await asyncpg.connect(dsn)
    while True:
        await connection.fetchval("SELECT 1")
async def main(dsn, n):
    await asyncio.gather(*(one(dsn) for _ in range(n)))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
PROBES = 750


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=2.0)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_URL_ENV))
    args = parser.parse_args()
    with postgres_target(args.postgres) as server, injected_latency(server, args.rtt_ms) as path:
        assert path is not None and path.proxy._process is not None
        pid = path.proxy._process.pid
        assert isinstance(path.target, PostgresTarget)  # the proxy stands before PostgreSQL
        dsn = path.target.dsn()
        realtime = os.sched_getscheduler(pid) == os.SCHED_FIFO
        print(
            f"{args.rtt_ms:g} ms asked; proxy at {'real-time' if realtime else 'normal'} "
            f"priority, its hop {path.measured.proxy_overhead_ms:.3f} ms held back"
        )
        print("conns  held p50  held p99  probe p50  probe p99  round trips/s  proxy cores")
        for connections in (int(n) for n in args.connections.split(",")):
            loader = None
            if connections > 1:
                loader = subprocess.Popen([sys.executable, "-c", LOADER, dsn, str(connections - 1)])
                time.sleep(3)
            path.proxy.seen()
            cpu, started = cpu_seconds(pid), time.monotonic()
            times = []
            with psycopg.connect(dsn, autocommit=True) as conn:
                for _ in range(PROBES):
                    begun = time.perf_counter()
                    conn.execute("SELECT 1").fetchone()
                    times.append((time.perf_counter() - begun) * 1e3)
            took = time.monotonic() - started
            used = (cpu_seconds(pid) - cpu) / took
            seen = path.proxy.seen()
            if loader is not None:
                loader.kill()
                loader.wait()
            times.sort()
            print(
                f"{connections:5d} {seen['p50']:9.3f} {seen['p99']:9.3f} "
                f"{statistics.median(times):10.3f} {times[int(0.99 * len(times))]:10.3f} "
                f"{seen['round_trips'] / took:14,.0f} {used:12.2f}"
            )


if __name__ == "__main__":
    main()
