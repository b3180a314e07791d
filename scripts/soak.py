"""Soak: the pools load at 64 concurrent clients for a bounded time; do memory and connections
stay flat, and does every connection come back?

It runs the pools question's closed loop (threads on a sync psycopg engine, each client
renaming its own users and committing) over and over until the time is up, and every few
seconds samples this process's resident memory and the server connections the pool holds
(from pg_stat_activity). At the end it checks that the pool has every connection checked in,
that the server holds no more than the pool's idle ones, and that none remain after dispose.

Usage: python scripts/soak.py [--seconds 600] [--clients 64] [--pool-size 20]
       [--max-overflow 10] [--postgres URL]   (no URL: the embedded server)
Exit status: 0 when memory and connections stayed flat and every connection came back.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from sqlabench.backends import POSTGRES_URL_ENV, REGISTRY, postgres_target
from sqlabench.database import exclusive_use, prepare_postgres, seed, setup_engine
from sqlabench.measure import StatementCounter
from sqlabench.models import DataSize
from sqlabench.scenario import sync_engine

ROOT = Path(__file__).resolve().parents[1]
GROWTH_LIMIT = 0.10
"""Memory counts as flat when the last quarter's median is within 10% of the second's."""


def load_pools() -> Any:
    from sqlabench.questions import pools

    return pools


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_connections(admin: Any, application: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = :a AND datname = current_database()"
                ),
                {"a": application},
            ).scalar_one()
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--max-overflow", type=int, default=10)
    parser.add_argument("--requests-per-client", type=int, default=20, help="per round")
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_URL_ENV))
    args = parser.parse_args()
    pools = load_pools()
    point = pools.Point(args.pool_size, args.max_overflow, args.clients)
    backend = REGISTRY["psycopg"]

    with contextlib.ExitStack() as stack:
        target = stack.enter_context(postgres_target(args.postgres))
        stack.enter_context(exclusive_use(target))
        prepare_postgres(target)
        seed(target, DataSize(args.clients * pools.IDS_PER_CLIENT, 0))
        admin = setup_engine(target)
        stack.callback(admin.dispose)
        engine = sync_engine(
            backend, target, StatementCounter(), stack,
            **pools.pool_options(point), **pools.named_connections(backend),
        )  # fmt: skip

        samples: list[tuple[float, float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(
                    (time.monotonic(), rss_mb(), server_connections(admin, pools.APPLICATION_NAME))
                )
                stop.wait(args.sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        requests = timeouts = rounds = 0
        errors: list[str] = []
        while time.monotonic() - started < args.seconds:
            load = pools.sync_load(engine, point, args.requests_per_client)
            requests += load.completed
            timeouts += load.timeouts
            errors += load.errors
            rounds += 1
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - started

        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
        idle = engine.pool.checkedin()  # type: ignore[attr-defined]
        on_server = server_connections(admin, pools.APPLICATION_NAME)
        engine.dispose()
        # a closed connection's server process takes a moment to exit and leave the view
        deadline = time.monotonic() + 10
        while (after_dispose := server_connections(admin, pools.APPLICATION_NAME)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)

    quarter = max(1, len(samples) // 4)
    early = statistics.median(s[1] for s in samples[quarter : 2 * quarter] or samples)
    late = statistics.median(s[1] for s in samples[-quarter:])
    growth = (late - early) / early
    connections = [s[2] for s in samples]
    limit = point.connections_needed()
    memory_flat = growth <= GROWTH_LIMIT
    connections_flat = max(connections) <= limit
    returned = checked_out == 0 and on_server <= idle and after_dispose == 0

    print(
        f"soak: {args.clients} clients, pool {args.pool_size}+{args.max_overflow}, "
        f"{elapsed:.0f} s, {rounds} rounds, {requests:,} requests "
        f"({requests / elapsed:,.0f}/s), {timeouts} timeouts, {len(errors)} errors"
    )
    print(
        f"memory (RSS): {early:.1f} MiB early, {late:.1f} MiB late, growth {growth:+.1%} "
        f"-> {'flat' if memory_flat else 'GROWING'}"
    )
    print(
        f"server connections: min {min(connections)}, max {max(connections)} "
        f"(pool allows {limit}) -> {'flat' if connections_flat else 'TOO MANY'}"
    )
    print(
        f"at the end: {checked_out} checked out, {idle} idle in the pool, {on_server} on the "
        f"server; {after_dispose} after dispose -> "
        f"{'every connection returned' if returned else 'CONNECTIONS LEAKED'}"
    )
    ok = memory_flat and connections_flat and returned and not errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
